import Foundation
import Manifest
import QemuCtlTestSupport
import Testing
@testable import KubeVirt
@testable import Reconcile

// MARK: - Fixtures

/// KubeVirt's OpenAPI definitions: `../shared/kubevirt/swagger.json` beside the repository.
private let swaggerPath = URL(fileURLWithPath: Fixtures.repoRoot).deletingLastPathComponent()
    .appendingPathComponent("shared/kubevirt/swagger.json").standardizedFileURL.path

/// Loads manifest text as `export kubevirt` does (source text kept for positions).
private func load(_ yaml: String, file: String = "case.yaml") throws -> (vms: [VirtualMachine], maps: [String: ManifestSourceMap]) {
    var loader = ManifestLoader()
    loader.keepsSourceText = true
    let set = loader.load(bytes: Array(yaml.utf8), file: file, baseDirectory: "/work")
    #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))")
    return (try set.get(), ManifestSourceMap.byVirtualMachine(in: set))
}

/// A manifest named `name` whose spec is `spec` (indented two spaces).
private func manifest(_ name: String, labels: String = "{}", spec: String) -> String {
    "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: \(name), labels: \(labels)}\nspec:\n\(spec)"
}

/// Exports the one VM of `yaml`.
private func export(_ yaml: String, options: KubeVirtExport.Options = .init()) throws -> KubeVirtExport.Result {
    let (vms, maps) = try load(yaml)
    let vm = try #require(vms.first)
    return KubeVirtExport.export(vm, sourceMap: maps[vm.name], options: options)
}

/// The exported object as Foundation values, to read fields by path.
private func object(_ result: KubeVirtExport.Result) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(result.document.json().utf8)) as? [String: Any])
}

/// The value at a dotted path with `[n]` indices: `spec.template.spec.volumes[0].name`.
private func value(_ root: Any, _ path: String) -> Any? {
    var current: Any? = root
    for part in path.split(separator: ".") {
        var key = Substring(part)
        var indices: [Int] = []
        while let open = key.lastIndex(of: "["), key.hasSuffix("]") {
            indices.insert(Int(key[key.index(after: open)..<key.index(before: key.endIndex)])!, at: 0)
            key = key[..<open]
        }
        current = (current as? [String: Any])?[String(key)]
        for i in indices {
            guard let list = current as? [Any], i < list.count else { return nil }
            current = list[i]
        }
    }
    return current
}

/// Runs `scripts/kubevirt-validate.py` (strict schema from swagger.json, plus the webhook's
/// name rules) over the JSON texts; returns its exit status and output.
private func validateWithKubeVirtSchema(_ documents: [String]) throws -> (status: Int32, output: String) {
    guard FileManager.default.fileExists(atPath: swaggerPath) else {
        Issue.record("KubeVirt's definitions are missing: \(swaggerPath) (clone the repository with ../shared beside it)")
        return (-1, "")
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kubevirt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var files: [String] = []
    for (i, text) in documents.enumerated() {
        let url = dir.appendingPathComponent("object-\(i).json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        files.append(url.path)
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", Fixtures.repoRoot + "/scripts/kubevirt-validate.py", swaggerPath] + files
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, output)
}

/// One case of the table: a manifest, options, and what the object must hold.
private struct Case: Sendable, CustomStringConvertible {
    var name: String
    var spec: String
    var labels = "{}"
    var options = KubeVirtExport.Options()
    /// Paths and the values they must have (`nil` value: the path must be absent).
    var expect: [(String, (any Sendable)?)]
    /// Paths of dropped fields, exactly, in order.
    var dropped: [String]
    var description: String { name }
}

private let cases: [Case] = [
    Case(name: "efi", spec: "  firmware: {type: efi}\n", expect: [
        ("spec.template.spec.domain.firmware.bootloader.efi.secureBoot", false),
        ("spec.template.spec.domain.features", nil),
        ("spec.template.spec.domain.firmware.bootloader.bios", nil),
    ], dropped: []),
    Case(name: "efi-secure-boot", spec: "  firmware: {type: efi, code: /usr/share/OVMF/OVMF_CODE_4M.secboot.fd}\n", expect: [
        ("spec.template.spec.domain.firmware.bootloader.efi.secureBoot", true),
        ("spec.template.spec.domain.features.smm.enabled", true),
    ], dropped: ["spec.firmware.code"]),
    Case(name: "bios", spec: "  firmware: {type: bios}\n", expect: [
        ("spec.template.spec.domain.firmware.bootloader.bios", [String: Int]()),
    ], dropped: []),
    Case(name: "cdrom-with-claim", spec: """
          cdroms:
            - {name: install, path: /isos/debian.iso, bootIndex: 0}
        """ + "\n", options: .init(claims: ["install": "debian-iso"]), expect: [
        ("spec.template.spec.domain.devices.disks[0].name", "install"),
        ("spec.template.spec.domain.devices.disks[0].cdrom.bus", "sata"),
        ("spec.template.spec.domain.devices.disks[0].cdrom.readonly", true),
        ("spec.template.spec.domain.devices.disks[0].bootOrder", 1),
        ("spec.template.spec.volumes[0].name", "install"),
        ("spec.template.spec.volumes[0].persistentVolumeClaim.claimName", "debian-iso"),
    ], dropped: []),
    Case(name: "cdrom-without-claim", spec: """
          cdroms:
            - {name: install, path: /isos/debian.iso, interface: scsi}
            - {name: empty}
        """ + "\n", expect: [
        ("spec.template.spec.domain.devices.disks[0].cdrom.bus", "scsi"),
        ("spec.template.spec.volumes[0].persistentVolumeClaim.claimName", "case-install"),
        ("spec.template.spec.domain.devices.disks[1]", nil),
    ], dropped: ["spec.cdroms[0].path", "spec.cdroms[1]"]),
    Case(name: "several-disks", spec: """
          disks:
            - {name: root, file: {path: /img/root.qcow2, format: qcow2}, create: {size: 20GiB}, bootIndex: 0}
            - {name: data, file: {path: /img/data.raw, format: raw}, readOnly: true, serial: DATA01, interface: scsi}
            - {name: scratch, file: {path: /img/scratch.qcow2, format: qcow2}, interface: ide, cache: writethrough}
            - {name: fast, file: {path: /img/fast.raw, format: raw}, interface: nvme, create: {size: 1536MiB}}
        """ + "\n", options: .init(claims: ["data": "db-data"]), expect: [
        ("spec.dataVolumeTemplates[0].metadata.name", "case-root"),
        ("spec.dataVolumeTemplates[0].spec.storage.resources.requests.storage", "20Gi"),
        ("spec.dataVolumeTemplates[0].spec.source.blank", [String: Int]()),
        ("spec.dataVolumeTemplates[1].metadata.name", "case-fast"),
        ("spec.dataVolumeTemplates[1].spec.storage.resources.requests.storage", "1536Mi"),
        ("spec.template.spec.domain.devices.disks[0].disk.bus", "virtio"),
        ("spec.template.spec.domain.devices.disks[0].bootOrder", 1),
        ("spec.template.spec.domain.devices.disks[1].disk.bus", "scsi"),
        ("spec.template.spec.domain.devices.disks[1].disk.readonly", true),
        ("spec.template.spec.domain.devices.disks[1].serial", "DATA01"),
        ("spec.template.spec.domain.devices.disks[2].disk.bus", "sata"),
        ("spec.template.spec.domain.devices.disks[2].cache", "writethrough"),
        ("spec.template.spec.domain.devices.disks[3].disk.bus", "virtio"),
        ("spec.template.spec.volumes[0].dataVolume.name", "case-root"),
        ("spec.template.spec.volumes[1].persistentVolumeClaim.claimName", "db-data"),
        ("spec.template.spec.volumes[2].persistentVolumeClaim.claimName", "case-scratch"),
        ("spec.template.spec.volumes[3].dataVolume.name", "case-fast"),
    ], dropped: ["spec.disks[0].file.path", "spec.disks[2].file.path", "spec.disks[3].interface", "spec.disks[3].file.path"]),
    Case(name: "nic-models", spec: """
          networks:
            - {name: net0, user: {net: 10.10.0.0/24, hostname: box, domain: example.org}, model: e1000, mac: "52:54:00:00:00:01", bootIndex: 2}
            - {name: net1, bridge: {name: br0}, model: rtl8139, link: down}
            - {name: net2, tap: {ifname: tap9}, model: virtio-net-pci}
            - {name: net3, bridge: {name: br1}, model: i82559er}
            - {name: net4, user: {}}
        """ + "\n", expect: [
        ("spec.template.spec.domain.devices.interfaces[0].model", "e1000"),
        ("spec.template.spec.domain.devices.interfaces[0].masquerade", [String: Int]()),
        ("spec.template.spec.domain.devices.interfaces[0].macAddress", "52:54:00:00:00:01"),
        ("spec.template.spec.domain.devices.interfaces[0].bootOrder", 3),
        ("spec.template.spec.networks[0].pod.vmNetworkCIDR", "10.10.0.0/24"),
        ("spec.template.spec.hostname", "box"),
        ("spec.template.spec.dnsConfig.searches[0]", "example.org"),
        ("spec.template.spec.domain.devices.interfaces[1].model", "rtl8139"),
        ("spec.template.spec.domain.devices.interfaces[1].bridge", [String: Int]()),
        ("spec.template.spec.domain.devices.interfaces[1].state", "down"),
        ("spec.template.spec.networks[1].multus.networkName", "br0"),
        ("spec.template.spec.domain.devices.interfaces[2].model", "virtio"),
        ("spec.template.spec.networks[2].multus.networkName", "net2"),
        ("spec.template.spec.domain.devices.interfaces[3].model", "virtio"),
        ("spec.template.spec.domain.devices.interfaces[4]", nil),
    ], dropped: ["spec.networks[1].bridge", "spec.networks[2].tap", "spec.networks[3].bridge", "spec.networks[3].model",
                 "spec.networks[4].user"]),
    Case(name: "hotplug-maxima", spec: "  arch: amd64\n  cpu: {count: 2, maxCount: 8, model: host}\n  memory: {size: 1GiB, max: 4GiB}\n", expect: [
        ("spec.template.spec.domain.cpu.sockets", 2),
        ("spec.template.spec.domain.cpu.cores", 1),
        ("spec.template.spec.domain.cpu.threads", 1),
        ("spec.template.spec.domain.cpu.maxSockets", 8),
        ("spec.template.spec.domain.cpu.model", "host-passthrough"),
        ("spec.template.spec.domain.memory.guest", "1Gi"),
        ("spec.template.spec.domain.memory.maxGuest", "4Gi"),
    ], dropped: []),
    Case(name: "memory-hotplug-below-1Gi", spec: "  arch: amd64\n  memory: {size: 512MiB, max: 2GiB}\n", expect: [
        ("spec.template.spec.domain.memory.guest", "512Mi"),
        ("spec.template.spec.domain.memory.maxGuest", nil),
    ], dropped: ["spec.memory.max"]),
    Case(name: "memory-hotplug-on-arm64", spec: "  arch: arm64\n  machine: {type: virt}\n  memory: {size: 2GiB, max: 4GiB}\n", expect: [
        ("spec.template.spec.domain.memory.maxGuest", nil),
    ], dropped: ["spec.memory.max"]),
    Case(name: "topology-in-whole-sockets", spec: "  cpu: {count: 4, maxCount: 8, cores: 2, threads: 2, features: [+avx2, -x2apic]}\n", expect: [
        ("spec.template.spec.domain.cpu.sockets", 1),
        ("spec.template.spec.domain.cpu.maxSockets", 2),
        ("spec.template.spec.domain.cpu.cores", 2),
        ("spec.template.spec.domain.cpu.threads", 2),
        ("spec.template.spec.domain.cpu.features[0].name", "avx2"),
        ("spec.template.spec.domain.cpu.features[0].policy", "require"),
        ("spec.template.spec.domain.cpu.features[1].policy", "disable"),
    ], dropped: []),
    Case(name: "no-hotplug", spec: "  cpu: {count: 3}\n  memory: {size: 768MiB}\n", expect: [
        ("spec.template.spec.domain.cpu.sockets", 3),
        ("spec.template.spec.domain.cpu.maxSockets", nil),
        ("spec.template.spec.domain.memory.guest", "768Mi"),
        ("spec.template.spec.domain.memory.maxGuest", nil),
    ], dropped: []),
    Case(name: "labels", spec: "  runState: running\n", labels: "{app: web, example.com/tier: front-end}", expect: [
        ("metadata.labels.app", "web"),
        ("spec.template.metadata.labels.app", "web"),
        ("spec.runStrategy", "Always"),
        ("spec.template.spec.startStrategy", nil),
    ], dropped: []),
    Case(name: "paused", spec: "  runState: paused\n", expect: [
        ("spec.runStrategy", "Always"), ("spec.template.spec.startStrategy", "Paused"),
    ], dropped: []),
    Case(name: "stopped", spec: "  runState: stopped\n", options: .init(namespace: "vms"), expect: [
        ("spec.runStrategy", "Halted"), ("metadata.namespace", "vms"),
    ], dropped: []),
    Case(name: "devices", spec: """
          usbTablet: true
          rng: true
          serial: {log: true}
          guestAgent: true
          audio: {model: ac97}
          rtc: {driftFix: slew}
          display: {vnc: {listen: none}}
          usb:
            devices:
              - {name: key, type: keyboard}
              - {name: stick, type: host, vendor: "0x0781", product: "0x5567"}
        """ + "\n", expect: [
        ("spec.template.spec.domain.devices.inputs[0].type", "tablet"),
        ("spec.template.spec.domain.devices.inputs[0].bus", "usb"),
        ("spec.template.spec.domain.devices.rng", [String: Int]()),
        ("spec.template.spec.domain.devices.logSerialConsole", true),
        ("spec.template.spec.domain.devices.autoattachMemBalloon", false),
        ("spec.template.spec.domain.devices.autoattachGraphicsDevice", nil),
        ("spec.template.spec.domain.devices.autoattachPodInterface", false),
        ("spec.template.spec.domain.devices.sound.model", "ac97"),
        ("spec.template.spec.domain.clock.timer.rtc.tickPolicy", "catchup"),
    ], dropped: ["spec.usb.devices[0]", "spec.usb.devices[1]"]),
    Case(name: "serial-only", spec: "  balloon: true\n  networks: [{name: n, user: {}}]\n", expect: [
        ("spec.template.spec.domain.devices.autoattachGraphicsDevice", false),
        ("spec.template.spec.domain.devices.autoattachPodInterface", nil),
        ("spec.template.spec.domain.devices.autoattachMemBalloon", true),
    ], dropped: []),
    Case(name: "arm64", spec: "  arch: arm64\n  machine: {type: virt}\n", expect: [
        ("spec.template.spec.architecture", "arm64"), ("spec.template.spec.domain.machine.type", "virt"),
    ], dropped: []),
    Case(name: "cloud-init-inline-and-agent-readiness", spec: """
          guestAgent: true
          cloudInit:
            sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nza me@host"]
            networkConfig: {inline: "version: 2\\n"}
          readiness: {guestAgent: true}
        """ + "\n", expect: [
        ("spec.template.spec.domain.devices.disks[0].name", "cloudinitdisk"),
        ("spec.template.spec.domain.devices.disks[0].disk.bus", "virtio"),
        ("spec.template.spec.volumes[0].name", "cloudinitdisk"),
        ("spec.template.spec.volumes[0].cloudInitNoCloud.userData", "#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nza me@host\"\n"),
        ("spec.template.spec.volumes[0].cloudInitNoCloud.networkData", "version: 2\n"),
        ("spec.template.spec.readinessProbe.guestAgentPing", [String: Int]()),
    ], dropped: []),
    Case(name: "cloud-init-secrets-and-tcp-readiness", spec: """
          networks:
            - {name: net0, user: {hostfwd: ["tcp:127.0.0.1:2222-:22"]}}
          cloudInit:
            userData: {file: /secrets/user-data}
            sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nza me@host"]
            networkConfig: {env: NETWORK_CONFIG}
            metaData: {zone: a}
            instanceID: web-2
          readiness: {tcpPort: 22}
        """ + "\n", expect: [
        ("spec.template.spec.volumes[0].cloudInitNoCloud.secretRef.name", "case-userdata"),
        ("spec.template.spec.volumes[0].cloudInitNoCloud.networkDataSecretRef.name", "case-networkdata"),
        ("spec.template.spec.volumes[0].cloudInitNoCloud.userData", nil),
        ("spec.template.spec.readinessProbe.tcpSocket.port", 22),
    ], dropped: ["spec.networks[0].user.hostfwd[0]", "spec.cloudInit.userData", "spec.cloudInit.sshAuthorizedKeys", "spec.cloudInit.networkConfig",
                 "spec.cloudInit.metaData", "spec.cloudInit.instanceID"]),
    Case(name: "serial-readiness", spec: "  serial: {log: true}\n  readiness: {serialMatch: \"login:\"}\n", expect: [
        ("spec.template.spec.readinessProbe", nil),
    ], dropped: ["spec.readiness.serialMatch"]),
    Case(name: "unsupported-arch-and-machine", spec: "  arch: riscv64\n  machine: {type: pc, accel: tcg}\n", expect: [
        ("spec.template.spec.architecture", nil), ("spec.template.spec.domain.machine", nil),
    ], dropped: ["spec.arch", "spec.machine.type", "spec.machine.accel"]),
]

/// Whether `actual` (from JSONSerialization) equals `expected`.
private func same(_ actual: Any?, _ expected: (any Sendable)?) -> Bool {
    switch expected {
    case nil: actual == nil
    case let s as String: actual as? String == s
    case let b as Bool: actual as? Bool == b
    case let i as Int: actual as? Int == i
    case let m as [String: Int]: (actual as? [String: Any]).map { $0.isEmpty && m.isEmpty } ?? false
    default: false
    }
}

// MARK: - Tests

@Suite("KubeVirt export", .offPool)
struct KubeVirtExportTests {
    @Test func kubevirtDefinitionsArePresentBesideTheRepository() {
        #expect(FileManager.default.fileExists(atPath: swaggerPath),
                "\(swaggerPath) is missing: the tests need ../shared beside the repository (CI clones it there)")
    }

    @Test func everyExampleExportsToAnObjectKubeVirtsSchemaAcceptsStrictly() throws {
        var loader = ManifestLoader()
        loader.keepsSourceText = true
        let cwd = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(Fixtures.repoRoot)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        let set = loader.load(paths: ["examples"])
        let vms = try set.get()
        // Every VirtualMachine document of every example (recursively), counted without the loader.
        let files = (FileManager.default.enumerator(atPath: "examples")?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
        let documents = try files.reduce(0) { n, f in
            n + (try String(contentsOfFile: "examples/" + f, encoding: .utf8)).split(separator: "\n").filter { $0 == "kind: VirtualMachine" }.count
        }
        #expect(vms.count == documents && documents >= 9, "\(vms.count) VMs loaded, \(documents) documents")
        let maps = ManifestSourceMap.byVirtualMachine(in: set)
        #expect(Set(maps.keys) == Set(vms.map(\.name)), "every VM finds its document")
        let exported = vms.map { KubeVirtExport.export($0, sourceMap: maps[$0.name]).document.json() }
        let (status, output) = try validateWithKubeVirtSchema(exported)
        #expect(status == 0, "\(output)")
        #expect(output.contains("ok: \(vms.count) objects"), "\(output)")
    }

    @Test func theValidatorIsStrictAndChecksTheWebhooksRules() throws {
        let good = try export(manifest("probe", spec: """
              networks: [{name: nic0, user: {}}]
              disks: [{name: disk0, file: {path: /d.raw, format: raw}, create: {size: 1GiB}}]
            """ + "\n"))
        let text = good.document.json()
        /// `text` with the last occurrence of `a` replaced by `b`.
        func replacingLast(_ a: String, _ b: String) -> String {
            guard let r = text.range(of: a, options: .backwards) else { return text }
            return text.replacingCharacters(in: r, with: b)
        }
        // An unknown field, a disk without a volume, an interface without a network, a bad run strategy.
        let unknown = replacingLast("\"runStrategy\": \"Always\"", "\"runStrategy\": \"Always\", \"throttle\": 1")
        let noVolume = replacingLast("\"name\": \"disk0\"", "\"name\": \"disk1\"")
        let noNetwork = replacingLast("\"name\": \"nic0\"", "\"name\": \"nic1\"")
        let badStrategy = replacingLast("\"Always\"", "\"Sometimes\"")
        let smallHotplug = replacingLast("\"guest\": \"512Mi\"", "\"guest\": \"512Mi\", \"maxGuest\": \"1Gi\"")
        for bad in [unknown, noVolume, noNetwork, badStrategy, smallHotplug] {
            #expect(bad != text)
            let (status, output) = try validateWithKubeVirtSchema([bad])
            #expect(status == 1, "accepted: \(bad)\n\(output)")
        }
        let (status, output) = try validateWithKubeVirtSchema([text])
        #expect(status == 0, "\(output)")
    }

    @Test func everyCaseOfTheTableIsAcceptedStrictly() throws {
        let documents = try cases.map { c in try export(manifest("case", labels: c.labels, spec: c.spec), options: c.options).document.json() }
        let (status, output) = try validateWithKubeVirtSchema(documents)
        #expect(status == 0, "\(output)")
        #expect(output.contains("ok: \(cases.count) objects"), "\(output)")
    }

    @Test(arguments: cases)
    fileprivate func mappedValuesAndDroppedFields(_ c: Case) throws {
        let result = try export(manifest("case", labels: c.labels, spec: c.spec), options: c.options)
        let object = try object(result)
        #expect(value(object, "apiVersion") as? String == "kubevirt.io/v1")
        #expect(value(object, "kind") as? String == "VirtualMachine")
        #expect(value(object, "metadata.name") as? String == "case")
        #expect((value(object, "metadata.labels") as? [String: String])?["app.kubernetes.io/managed-by"] == "qemuctl")
        for (path, expected) in c.expect {
            #expect(same(value(object, path), expected), "\(path): \(String(describing: value(object, path)))")
        }
        #expect(result.dropped.map(\.path) == c.dropped, "\(result.dropped.map(\.description))")
        for d in result.dropped {
            #expect(d.location.file == "case.yaml" && d.location.line >= 5, "\(d)")
            #expect(!d.reason.isEmpty && !d.reason.contains("\n"))
        }
    }

    @Test func labelsWithPrefixesCarryOverUnchanged() throws {
        let c = cases.first { $0.name == "labels" }!
        let object = try object(try export(manifest("case", labels: c.labels, spec: c.spec)))
        let labels = try #require(value(object, "metadata.labels") as? [String: String])
        #expect(labels == ["app": "web", "example.com/tier": "front-end", "app.kubernetes.io/managed-by": "qemuctl"])
        #expect(value(object, "spec.template.metadata.labels") as? [String: String] == labels)
    }

    @Test func droppedFieldsPointAtTheLineAndColumnWhereTheyAreWritten() throws {
        let text = try String(contentsOfFile: Fixtures.repoRoot + "/examples/server.yaml", encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        func line(_ containing: String) -> Int { (lines.firstIndex { $0.contains(containing) } ?? -10) + 1 }
        let (vms, maps) = try load(text, file: "examples/server.yaml")
        let result = KubeVirtExport.export(vms[0], sourceMap: maps["web-1"])
        func report(_ path: String) -> KubeVirtExport.Dropped? { result.dropped.first { $0.path == path } }
        let throttle = try #require(report("spec.disks[1].throttle"))
        #expect(throttle.location == SourceLocation(file: "examples/server.yaml", line: line("throttle:"), column: 7))
        #expect(throttle.reason.contains("I/O limits"))
        let forward = try #require(report("spec.networks[0].user.hostfwd[1]"))
        #expect(forward.location.line == line("tcp:127.0.0.1:8080-:80") && forward.location.column == 13)
        #expect(forward.reason.contains("Service"))
        let password = try #require(report("spec.display.vnc.passwordFrom"))
        #expect(password.location.line == line("passwordFrom:"))
        #expect(report("spec.cdroms[0]")?.location.line == line("- name: installer"))
        #expect(report("spec.disks[1].discard")?.location.line == line("discard: true"))
        // Mapped fields are not reported.
        #expect(report("spec.guestAgent") == nil && report("spec.rng") == nil && report("spec.memory.max") == nil)
        #expect(result.dropped.count == 10, "\(result.dropped.map(\.description))")
    }

    @Test func withoutASourceMapReportsPointAtTheVM() throws {
        let (vms, _) = try load(manifest("nomap", spec: "  disks: [{name: d, file: {path: /d.raw, format: raw}, throttle: {bps: 1MiB}}]\n"))
        let result = KubeVirtExport.export(vms[0], sourceMap: nil)
        #expect(result.dropped.map(\.path) == ["spec.disks[0].throttle", "spec.disks[0].file.path"])
        #expect(result.dropped.allSatisfy { $0.location == vms[0].source })
    }

    @Test func claimsByVMAndDriveWinOverClaimsByDrive() throws {
        let yaml = manifest("web", spec: "  disks: [{name: root, file: {path: /r.raw, format: raw}}]\n")
        let result = try export(yaml, options: .init(claims: ["root": "generic", "web/root": "specific"]))
        #expect(value(try object(result), "spec.template.spec.volumes[0].persistentVolumeClaim.claimName") as? String == "specific")
        #expect(result.usedClaims == ["web/root"])
        #expect(result.dropped.isEmpty)
        let qcow = try export(manifest("web", spec: "  disks: [{name: root, file: {path: /r.q, format: qcow2}}]\n"),
                              options: .init(claims: ["root": "generic"]))
        #expect(qcow.dropped.map(\.path) == ["spec.disks[0].file.format"])
    }

    @Test func yamlOutputReadsBackAsTheJSONOutput() throws {
        var results = try cases.map { c in try export(manifest("case", labels: c.labels, spec: c.spec), options: c.options) }
        // Label keys and values YAML 1.1 would read as booleans or null, and strings that look like numbers.
        results.append(try export(manifest("tricky", labels: "{\"on\": \"yes\", \"y\": \"n\", \"null\": \"0x10\", \"e\": \"1e3\"}",
                                           spec: "  runState: stopped\n")))
        #expect(results.last!.document.yaml().contains("    \"on\": \"yes\"\n"), "\(results.last!.document.yaml())")
        for result in results {
            let yaml = result.document.yaml()
            let (documents, diagnostics) = ManifestSchema.jsonDocuments(ofYAML: Array(yaml.utf8), file: "out.yaml")
            #expect(diagnostics.isEmpty && documents.count == 1)
            let fromYAML = try JSONSerialization.jsonObject(with: Data(documents[0].utf8)) as? NSDictionary
            let fromJSON = try JSONSerialization.jsonObject(with: Data(result.document.json().utf8)) as? NSDictionary
            #expect(fromYAML != nil && fromYAML == fromJSON, "\(yaml)")
        }
    }

    @Test func namesKubernetesWouldRefuseAreNotExported() throws {
        let result = try export(manifest("names", spec: """
              networks:
                - {name: net0, user: {hostname: Web_1}}
                - {name: net1, bridge: {name: Br_LAN}}
            """ + "\n"))
        let object = try object(result)
        #expect(value(object, "spec.template.spec.hostname") == nil)
        #expect(value(object, "spec.template.spec.networks[1].multus.networkName") as? String == "net1")
        #expect(result.dropped.map(\.path) == ["spec.networks[0].user.hostname", "spec.networks[1].bridge"])
        let (status, output) = try validateWithKubeVirtSchema([result.document.json()])
        #expect(status == 0, "\(output)")
    }

    @Test func generatedNamesAreListedForTheCollisionCheck() throws {
        let result = try export(manifest("g", spec: """
              disks:
                - {name: a, file: {path: /a.raw, format: raw}, create: {size: 1GiB}}
                - {name: b, nbd: {unix: /nbd.sock}}
                - {name: c, file: {path: /c.raw, format: raw}}
              cdroms: [{name: d, path: /d.iso}]
            """ + "\n"), options: .init(claims: ["c": "given"]))
        #expect(result.generatedNames == ["g-a", "g-b", "g-d"])
    }

    @Test func quantitiesUseTheLargestBinaryUnitThatDivides() {
        #expect(KubeVirtExport.quantity(2 << 30) == "2Gi")
        #expect(KubeVirtExport.quantity(1536 << 20) == "1536Mi")
        #expect(KubeVirtExport.quantity(3 << 40) == "3Ti")
        #expect(KubeVirtExport.quantity(1000) == "1000")
        #expect(KubeVirtExport.quantity(4096) == "4Ki")
    }

    @Test func everyManifestFieldHasAMappingRowAndEveryRowAField() {
        let fields = Set(FieldTable.all.map(\.path))
        for path in fields {
            #expect(KubeVirtMapping.row(for: path) != nil, "\(path) has no row in KubeVirtMapping.table")
        }
        for row in KubeVirtMapping.table {
            #expect(fields.contains(row.field), "row \(row.field) names no manifest field")
        }
        #expect(Set(KubeVirtMapping.table.map(\.field)).count == KubeVirtMapping.table.count, "a field has two rows")
        #expect(KubeVirtMapping.row(for: "spec.disks[].throttle.bps")?.field == "spec.disks[].throttle")
        #expect(KubeVirtMapping.row(for: "spec.disks[].throttle.bps")?.kubevirt == nil)
    }

    @Test func docsHoldTheGeneratedMappingTable() throws {
        let docs = try String(contentsOfFile: Fixtures.repoRoot + "/docs/kubevirt.md", encoding: .utf8)
        #expect(docs.contains(KubeVirtMapping.markdown()), "regenerate the table in docs/kubevirt.md from KubeVirtMapping.markdown()")
    }

    @Test func sourceMapsFindEachDocumentOfAFileAndTheNearestWrittenField() throws {
        let text = try String(contentsOfFile: Fixtures.repoRoot + "/examples/multi.yaml", encoding: .utf8)
        let maps = ManifestSourceMap.documents(ofYAML: Array(text.utf8), file: "m.yaml")
        #expect(maps.count == 3, "the empty document has no map")
        let lines = text.components(separatedBy: "\n")
        let nbdLine = (lines.firstIndex { $0.contains("nbd: {unix") } ?? -10) + 1
        #expect(maps[2].locations["spec.disks[0].nbd"] == SourceLocation(file: "m.yaml", line: nbdLine, column: 7))
        #expect(maps[2].nearest("spec.disks[0].nbd.tls") == maps[2].locations["spec.disks[0].nbd"])
        #expect(maps[2].nearest("spec.audio.model") == maps[2].locations["spec"])
        #expect(maps[0].writes("spec.disks[0].throttle") && !maps[2].writes("spec.disks[0].throttle"))
        let (vms, byVM) = try load(text, file: "m.yaml")
        #expect(byVM["ci-cache"]?.locations["spec.disks[0].nbd"]?.line == nbdLine)
        #expect(vms.allSatisfy { byVM[$0.name]?.nameValue == $0.source })
    }
}
