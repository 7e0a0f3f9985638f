import Foundation
import Manifest
import Testing
@testable import Reconcile

/// The guard of issue 20: every field the reference documents (``FieldTable``, which generates
/// `docs/manifest-reference.md`) has a proof that QEMU does what the reference says, or an
/// explicit exception with its reason. A field added without either fails here.
///
/// Proofs are named, and each name is checked to exist:
/// - a golden argv case (`Tests/QemuCtlTests/GoldenCases.swift`), which `QEMUProofTests` starts
///   the real QEMU with;
/// - a live-change handler, which ``LiveChangesQEMUTests`` drives on the real QEMU (a field
///   the reference calls live must name its handler);
/// - a test function on the real QEMU elsewhere (`File.swift`, function name).
@Suite struct ReferenceProofTests {
    enum Proof: Sendable, CustomStringConvertible {
        /// Golden argv cases QEMU accepts.
        case golden(String)
        /// A ``LiveChanges`` handler (its type name) with a case in ``LiveChangesQEMUTests``.
        case live(String)
        /// A test on real QEMU: the file under `Tests/` and the test function's name.
        case test(String, String)
        /// Nothing on QEMU proves it, and why that is right.
        case exception(String)
        /// An object whose fields each need an entry of their own: it covers only itself.
        case container

        var description: String {
            switch self {
            case .golden(let n): "golden \(n)"
            case .live(let h): "live \(h)"
            case .test(let f, let n): "test \(f) \(n)"
            case .exception(let why): "exception: \(why)"
            case .container: "container"
            }
        }
    }

    /// Field path (or the path of an object or list, covering what is below it unless a longer
    /// path has an entry of its own) → its proofs.
    static let proofs: [(path: String, proofs: [Proof])] = [
        ("apiVersion", [.exception("the manifest's format version: read by the loader, never reaches QEMU")]),
        ("kind", [.exception("the manifest's document kind: read by the loader, never reaches QEMU")]),
        ("metadata", [.container]),
        ("metadata.name", [.golden("minimal")]),
        ("metadata.labels", [.exception("kept in qemuctl's record for selection; QEMU never sees labels")]),
        ("spec", [.container]),
        ("spec.runState", [.live("RunStateChange"), .golden("minimal")]),
        ("spec.restartPolicy", [.test("QemuCtlCLITests/ControllerTests.swift", "launchesRestartsByPolicyAppliesEditsReportsErrorsAndEndsOnSIGTERM"),
                                .test("QemuCtlCLITests/ControllerTests.swift", "aGuestPoweroffUnderOnFailureStaysDownAndACrashLoopBacksOff")]),
        ("spec.arch", [.golden("minimal"), .exception("only qemu-system-x86_64 is installed on the test host: the other architectures' binaries are found by name (DiscoveryTests), not run")]),
        ("spec.emulator", [.exception("the QEMU binary's path, not an option: MappingTests map it; every real-QEMU test runs the discovered binary")]),
        ("spec.machine", [.golden("minimal"), .golden("i440fx")]),
        ("spec.machine.hotplugPorts", [.golden("hotplug-ports")]),
        ("spec.machine.dumpGuestCore", [.golden("machine-options")]),
        ("spec.cpu", [.golden("cpu-topology-features"), .golden("probed-cpu")]),
        ("spec.cpu.count", [.live("VCPUCountChange"), .golden("cpu-topology-features")]),
        ("spec.memory", [.golden("minimal")]),
        ("spec.memory.size", [.live("MemorySizeChange"), .golden("minimal")]),
        ("spec.memory.max", [.golden("memory-hotplug")]),
        ("spec.memory.slots", [.golden("memory-hotplug")]),
        ("spec.memory.backend", [.golden("memory-backend-memfd"), .golden("memory-backend-file")]),
        ("spec.memory.path", [.golden("memory-backend-file")]),
        ("spec.memory.share", [.golden("memory-backend-memfd")]),
        ("spec.memory.prealloc", [.golden("memory-backend-file")]),
        ("spec.memory.lock", [.golden("memory-lock")]),
        ("spec.firmware", [.golden("efi-pflash"),
                           .test("QemuCtlCLITests/FirmwareApplyTests.swift", "efiManifestBootsOVMFAndAVariableTheGuestWroteSurvivesARelaunchAndADelete")]),
        ("spec.firmware.secureBoot", [.test("QemuCtlTests/FirmwareBootTests.swift", "secureBootRefusesTheUnsignedShell")]),
        ("spec.boot", [.golden("boot-kernel")]),
        ("spec.disks", [.live("DiskHotplug"), .golden("simple-config")]),
        ("spec.disks[].name", [.golden("simple-config")]),
        ("spec.disks[].file", [.golden("disk-file-options")]),
        ("spec.disks[].file.backing", [.test("QemuCtlCLITests/ImageCLITests.swift", "applyRefusesAnUndeclaredBackingFileAndStartsOnceDeclared"),
                                       .test("QemuCtlTests/ImageChainTests.swift", "declaredChainIsAttachedWithTheBaseReadOnlyAndNeverWritten")]),
        ("spec.disks[].nbd", [.golden("disk-nbd-unix"), .golden("disk-nbd-tcp-tls")]),
        ("spec.disks[].rbd", [.golden("disk-rbd")]),
        ("spec.disks[].iscsi", [.golden("disk-iscsi")]),
        ("spec.disks[].interface", [.golden("disk-interfaces")]),
        ("spec.disks[].serial", [.golden("disk-interfaces")]),
        ("spec.disks[].readOnly", [.golden("disk-read-only")]),
        ("spec.disks[].cache", [.golden("disk-file-options")]),
        ("spec.disks[].discard", [.golden("disk-file-options")]),
        ("spec.disks[].bootIndex", [.golden("disk-file-options")]),
        ("spec.disks[].pciAddress", [.golden("fixed-pci-slots")]),
        ("spec.disks[].create", [.test("QemuCtlTests/ImageCreationTests.swift", "qemuImgNeverSeesTheFinalPathAndTheImageAppearsWhole")]),
        ("spec.disks[].create.from", [.test("QemuCtlCLITests/ImageCLITests.swift", "applyMakesAnOverlayAttachesTheChainAndRecordsIt"),
                                      .test("QemuCtlTests/ImageChainTests.swift", "overlayIsAQcow2BackedByTheBaseWithItsFormatRecorded")]),
        ("spec.disks[].create.mode", [.test("QemuCtlTests/ImageChainTests.swift", "copyIsIndependentOfTheBase"),
                                      .test("QemuCtlCLITests/ImageCLITests.swift", "applyMakesAnOverlayAttachesTheChainAndRecordsIt")]),
        ("spec.disks[].throttle", [.live("DiskThrottleChange"), .golden("disk-throttle")]),
        ("spec.cdroms", [.golden("cdroms")]),
        ("spec.cdroms[].path", [.live("CDROMMediaChange"), .golden("cdroms")]),
        ("spec.networks", [.live("NICHotplug"), .golden("net-user")]),
        ("spec.networks[].name", [.golden("net-user")]),
        ("spec.networks[].user", [.golden("net-user")]),
        ("spec.networks[].user.hostname", [.golden("net-user-names")]),
        ("spec.networks[].user.domain", [.golden("net-user-names")]),
        ("spec.networks[].tap", [.golden("net-tap")]),
        ("spec.networks[].tap.vhost", [.exception("vhost-net needs /dev/vhost-net and a tap device (root): net-tap is skipped without them, and no CI host here has vhost-net")]),
        ("spec.networks[].bridge", [.golden("net-bridge")]),
        ("spec.networks[].socket", [.golden("net-socket")]),
        ("spec.networks[].socket.mcast", [.exception("a multicast socket needs a multicast route on the host, which test containers lack; the builder's syntax is in OptionInjectionTests")]),
        ("spec.networks[].stream", [.golden("net-stream")]),
        ("spec.networks[].vde", [.golden("net-vde")]),
        ("spec.networks[].model", [.golden("net-socket")]),
        ("spec.networks[].mac", [.golden("simple-config")]),
        ("spec.networks[].link", [.live("NICLinkChange")]),
        ("spec.networks[].bootIndex", [.golden("net-user")]),
        ("spec.networks[].pciAddress", [.golden("fixed-pci-slots"),
                                        .test("QemuCtlCLITests/PCISlotTests.swift", "aPinnedAddressIsUsedAndAClashIsAValidateErrorWithItsPlace")]),
        ("spec.display", [.golden("display-vnc-spice-passwords"), .golden("display-vnc-none-spice-tcp")]),
        ("spec.display.vnc.passwordFrom", [.live("DisplayPasswordChange"), .golden("display-vnc-spice-passwords")]),
        ("spec.display.spice.passwordFrom", [.live("DisplayPasswordChange"), .golden("display-vnc-spice-passwords")]),
        ("spec.serial", [.golden("serials")]),
        ("spec.guestAgent", [.golden("chardevs-virtio-serial-guest-agent")]),
        ("spec.cloudInit", [.test("QemuCtlCLITests/CloudGuestApplyTests.swift", "applyWaitsUntilTheCloudGuestIsReadyAndTheAgentConfirmsAHotAddedVCPU")]),
        ("spec.cloudInit.metaData", [.test("QemuCtlTests/NoCloudSeedTests.swift", "metaDataHoldsTheInstanceIDAndHostnameQuoted"),
                                     .test("QemuCtlTests/NoCloudSeedTests.swift", "theISOIsLabelledCidataAndHoldsTheFilesReadBack")]),
        ("spec.cloudInit.networkConfig", [.test("QemuCtlTests/NoCloudSeedTests.swift", "theISOIsLabelledCidataAndHoldsTheFilesReadBack")]),
        ("spec.readiness", [.test("QemuCtlCLITests/ReadinessCommandTests.swift", "applyWaitsForTheDeclaredProbeAndGetShowsIt"),
                            .test("QemuCtlCLITests/CloudGuestApplyTests.swift", "applyWaitsUntilTheCloudGuestIsReadyAndTheAgentConfirmsAHotAddedVCPU")]),
        ("spec.spiceAgent", [.golden("spice-agent-usb-tablet")]),
        ("spec.usbTablet", [.live("USBTabletChange"), .golden("spice-agent-usb-tablet")]),
        ("spec.usb", [.golden("usb-devices")]),
        ("spec.usb.devices", [.live("USBHotplug"), .golden("usb-devices")]),
        ("spec.balloon", [.golden("balloon-rtc")]),
        ("spec.rng", [.golden("rng")]),
        ("spec.rtc", [.golden("balloon-rtc")]),
        ("spec.audio", [.golden("audio-hda-wav"), .golden("audio-ac97-spice"), .golden("audio-sb16-pc")]),
    ]

    /// The entry covering `path`: its own, or that of the nearest object or list above it
    /// (a ``Proof/container`` covers only itself).
    static func entry(for path: String) -> (path: String, proofs: [Proof])? {
        proofs.filter { e in
            path == e.path || (!e.proofs.contains { if case .container = $0 { true } else { false } } && (path.hasPrefix(e.path + ".") || path.hasPrefix(e.path + "[")))
        }
        .max { $0.path.count < $1.path.count }
    }

    /// The repository's `Tests` directory.
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    static func source(_ relative: String) -> String? {
        try? String(contentsOf: testsDirectory.appendingPathComponent(relative), encoding: .utf8)
    }

    @Test func everyDocumentedFieldHasAProofOrAnException() {
        #expect(FieldTable.all.count > 150, "the table lost its fields")
        for (path, _) in FieldTable.all {
            #expect(Self.entry(for: path) != nil, "\(path) is documented, but nothing proves it: add a golden case, a live handler with a real-QEMU case, or an exception with its reason")
        }
    }

    @Test func everyEntryNamesADocumentedField() {
        let paths = Set(FieldTable.all.map(\.path))
        for e in Self.proofs {
            #expect(paths.contains(e.path), "\(e.path) is not in FieldTable: a stale proof")
            #expect(!e.proofs.isEmpty, "\(e.path) has no proof")
        }
        #expect(Set(Self.proofs.map(\.path)).count == Self.proofs.count, "a path is listed twice")
    }

    /// A field the reference calls live names the handler that makes it live, and that handler
    /// has a case on real QEMU; a live proof is only claimed where the table says live.
    @Test func liveFieldsAreProvenByTheirHandlerOnRealQEMU() throws {
        let driven = Set(LiveChangesQEMUTests.cases.map(\.handler))
        for (path, field) in FieldTable.all {
            let proofs = try #require(Self.entry(for: path)).proofs
            let claimed = proofs.compactMap { if case .live(let h) = $0 { h } else { nil } }
            if field.change == .live, let handler = LiveChanges.handler(for: path) {
                let name = String(describing: type(of: handler))
                #expect(claimed.contains(name), "\(path) is live (by \(name)), but its proofs are \(proofs)")
            }
            for h in claimed {
                #expect(driven.contains(h), "\(path): \(h) has no case in LiveChangesQEMUTests")
                #expect(LiveChanges.table.contains { String(describing: type(of: $0)) == h }, "\(path): no handler \(h)")
            }
        }
    }

    @Test func everyNamedProofExists() throws {
        let golden = try #require(Self.source("QemuCtlTests/GoldenCases.swift"), "GoldenCases.swift not found from \(Self.testsDirectory.path)")
        let proof = try #require(Self.source("QemuCtlTests/QEMUProofTests.swift"))
        #expect(proof.contains("arguments: GoldenCase.all"), "QEMUProofTests no longer starts QEMU with every golden case")
        for e in Self.proofs {
            for p in e.proofs {
                switch p {
                case .golden(let name):
                    let declared = golden.contains("GoldenCase(name: \"\(name)\"") || golden.contains("name: \"\(name)\",\n")
                    #expect(declared, "\(e.path): no golden case \(name)")
                case .test(let file, let name):
                    let text = Self.source(file)
                    #expect(text?.contains("func \(name)(") == true, "\(e.path): no test \(name) in \(file)")
                case .exception(let why):
                    #expect(why.count > 20, "\(e.path): an exception needs its reason")
                case .live, .container:
                    break
                }
            }
        }
    }

    // MARK: - Defaults

    /// Manifests with every optional object present and each list element holding only its
    /// required fields (one per backend kind), so every documented default is decoded.
    static let defaultsManifests: [String] = [
        """
        apiVersion: qemuctl/v1
        kind: VirtualMachine
        metadata: {name: d1}
        spec:
          machine: {type: q35}
          cpu: {}
          memory: {max: 1GiB}
          firmware: {}
          boot: {kernel: /k}
          disks:
            - {name: f, file: {path: /f.qcow2, format: qcow2}, throttle: {bps: 1MiB}}
            - {name: n, nbd: {host: h, export: e}}
            - {name: r, rbd: {pool: p, image: i}}
            - {name: i, iscsi: {portal: "h:3260", target: t}}
            - {name: o, file: {path: /o.qcow2, format: qcow2}, create: {from: {path: /base.qcow2, format: qcow2}}}
          cdroms: [{name: cd}]
          networks:
            - {name: u, user: {}}
            - {name: t, tap: {}}
            - {name: s, stream: {unix: /s}}
          display: {vnc: {}, spice: {}}
          serial: {}
          usb: {devices: [{name: k, type: keyboard}]}
          rtc: {}
          audio: {}
        """,
    ]

    /// Fields whose documented default is not a leaf of the flattened spec, and why.
    static let defaultsNotFlattened: [String: String] = [
        "spec.runState": "compared with QMP's status, not flattened (RunStateChange)",
    ]

    /// Every documented default is what the decoder gives a manifest that leaves the field out.
    @Test func everyDocumentedDefaultIsWhatAManifestWithoutTheFieldGets() throws {
        var leaves: [String: Set<String>] = [:]
        for yaml in Self.defaultsManifests {
            let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "d.yaml", baseDirectory: "/base")
            #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))")
            for vm in set.virtualMachines {
                let flat = FlatSpec(labels: [:], spec: vm.spec, secrets: [:])
                var all: [Leaf] = []
                for item in flat.items {
                    switch item {
                    case .leaf(let l): all.append(l)
                    case .collection(_, let elements): all += elements.flatMap(\.leaves)
                    }
                }
                for l in all {
                    // spec.disks[f].readOnly → spec.disks[].readOnly
                    let path = l.path.replacing(/\[[^\]]*\]/, with: "[]")
                    if let v = l.value { leaves[path, default: []].insert(v) }
                }
            }
        }
        var checked = 0
        for (path, field) in FieldTable.all {
            guard let d = field.defaultValue else { continue }
            let text: String = switch d {
            case .bool(let b): b ? "true" : "false"
            case .integer(let i): String(i)
            case .string(let s): s
            }
            if let why = Self.defaultsNotFlattened[path] {
                #expect(why.count > 20)
                continue
            }
            let seen = leaves[path] ?? []
            #expect(seen.contains(text) || seen.contains("\"\(text)\""),
                    "\(path): documented default \(text), a manifest without it gets \(seen.sorted())")
            checked += 1
        }
        #expect(checked > 30, "only \(checked) defaults checked")
    }
}
