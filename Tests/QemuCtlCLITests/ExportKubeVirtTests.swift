import Foundation
import QemuCtlTestSupport
import Testing

/// A manifest whose every field has a KubeVirt equivalent (with `--pvc root=CLAIM`).
private let cleanManifest = """
    apiVersion: qemuctl/v1
    kind: VirtualMachine
    metadata: {name: clean, labels: {app: db}}
    spec:
      cpu: {count: 2, maxCount: 4}
      memory: {size: 1GiB, max: 2GiB}
      firmware: {type: efi}
      disks:
        - {name: root, file: {path: /images/clean.raw, format: raw}, bootIndex: 0}
      networks:
        - {name: net0, user: {}, model: e1000}
      guestAgent: true

    """

/// The same with a throttled disk (line 9, column 71 holds `throttle`).
private let throttledManifest = cleanManifest.replacingOccurrences(
    of: "bootIndex: 0}", with: "bootIndex: 0, throttle: {bps: 10MiB}}")

@Suite("qemuctl export kubevirt", .offPool)
struct ExportKubeVirtTests {
    @Test func examplesPrintOneVirtualMachineEachAndNameWhatIsDroppedWithExitThree() async throws {
        let r = try await QemuctlBinary.run(["export", "kubevirt", "-f", "examples/server.yaml", "-f", "examples/multi.yaml"])
        #expect(r.status == 3, "\(r.err)")
        let documents = r.out.components(separatedBy: "\n---\n")
        #expect(documents.count == 4)
        #expect(documents.allSatisfy { $0.hasPrefix("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n") || $0.contains("\napiVersion: kubevirt.io/v1\nkind: VirtualMachine\n") })
        #expect(r.out.contains("  name: web-1\n") && r.out.contains("  name: ci-cache\n"))
        // One line per dropped field: file:line:col, the field, the VM, the reason.
        let server = try String(contentsOfFile: Fixtures.repoRoot + "/examples/server.yaml", encoding: .utf8)
            .components(separatedBy: "\n")
        let throttle = (server.firstIndex { $0.contains("throttle:") } ?? -10) + 1
        let forward = (server.firstIndex { $0.contains("tcp:127.0.0.1:8080-:80") } ?? -10) + 1
        #expect(r.err.contains("examples/server.yaml:\(throttle):7: warning: spec.disks[1].throttle of VM 'web-1' is dropped: KubeVirt has no per-disk I/O limits"), "\(r.err)")
        #expect(r.err.contains("examples/server.yaml:\(forward):13: warning: spec.networks[0].user.hostfwd[1] of VM 'web-1' is dropped: port forwards"), "\(r.err)")
        #expect(r.err.contains("examples/multi.yaml:44:7: warning: spec.disks[0].nbd of VM 'ci-cache' is dropped"), "\(r.err)")
        #expect(r.err.contains("have no KubeVirt equivalent and were dropped"))
        // Reported in file, line, column order.
        let places = r.err.split(separator: "\n").filter { $0.hasPrefix("examples/server.yaml:") }.map {
            $0.split(separator: ":").dropFirst().prefix(2).map { Int($0)! }
        }
        #expect(places == places.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) } && places.count == 10)
    }

    @Test func strictFailsWithExitOneAndPrintsNothing() async throws {
        let r = try await QemuctlBinary.run(["export", "kubevirt", "--strict", "-f", "examples/server.yaml"])
        #expect(r.status == 1)
        #expect(r.out.isEmpty)
        #expect(r.err.contains(": error: spec.disks[1].throttle of VM 'web-1' is dropped"), "\(r.err)")
        #expect(!r.err.contains(": warning:"))
        #expect(r.err.hasPrefix("examples/server.yaml:"), "\(r.err)")
        #expect(r.err.contains("nothing printed (--strict)"))
    }

    @Test func nothingDroppedExitsZeroWithAQuietStderr() async throws {
        for strict in [false, true] {
            let r = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--pvc", "root=clean-root", "--namespace", "vms"]
                                                + (strict ? ["--strict"] : []), stdin: cleanManifest)
            #expect(r.status == 0, "\(r.err)")
            #expect(r.err.isEmpty, "\(r.err)")
            #expect(r.out.hasPrefix("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: clean\n  namespace: vms\n"))
            #expect(r.out.contains("claimName: clean-root"))
            #expect(r.out.contains("masquerade: {}") && r.out.contains("model: e1000"))
            #expect(r.out.contains("maxSockets: 4") && r.out.contains("maxGuest: \"2Gi\""))
        }
    }

    @Test func standardInputReportsPositionsInIt() async throws {
        let r = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--pvc", "root=clean-root"], stdin: throttledManifest)
        #expect(r.status == 3)
        let column = (throttledManifest.components(separatedBy: "\n")[8].range(of: "throttle")!.lowerBound.utf16Offset(
            in: throttledManifest.components(separatedBy: "\n")[8])) + 1
        #expect(r.err.hasPrefix("-:9:\(column): warning: spec.disks[0].throttle of VM 'clean' is dropped"), "\(r.err)")
        #expect(!r.out.isEmpty)
    }

    @Test func invalidManifestsGiveValidatesDiagnosticsAndNoOutput() async throws {
        let bad = cleanManifest.replacingOccurrences(of: "memory: {size: 1GiB", with: "memroy: {size: 1GiB")
        let export = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-"], stdin: bad)
        let validate = try await QemuctlBinary.run(["validate", "-f", "-"], stdin: bad)
        #expect(export.status == 1 && validate.status == 1)
        #expect(export.out.isEmpty)
        #expect(export.err == validate.err && export.err.contains("-:6:3: error: unknown key 'memroy'"), "\(export.err)")
        let missing = try await QemuctlBinary.run(["export", "kubevirt", "-f", "no/such/file.yaml"])
        #expect(missing.status == 2 && missing.out.isEmpty)
    }

    @Test func jsonOutputIsOneObjectOrAListOfThem() async throws {
        let one = try await QemuctlBinary.run(["export", "kubevirt", "-o", "json", "-f", "-", "--pvc", "root=clean-root"], stdin: cleanManifest)
        #expect(one.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(one.out.utf8)) as? [String: Any]
        #expect(object?["kind"] as? String == "VirtualMachine")
        let many = try await QemuctlBinary.run(["export", "kubevirt", "-o", "json", "-f", "examples/fleet"])
        #expect(many.status == 3)
        let list = try JSONSerialization.jsonObject(with: Data(many.out.utf8)) as? [String: Any]
        #expect(list?["kind"] as? String == "List" && list?["apiVersion"] as? String == "v1")
        #expect((list?["items"] as? [[String: Any]])?.compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
                == ["fleet-db-1", "fleet-web-1", "fleet-web-2"])
    }

    @Test func usageErrorsExitTwo() async throws {
        let unknownDrive = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--pvc", "nope=claim"], stdin: cleanManifest)
        #expect(unknownDrive.status == 2 && unknownDrive.out.isEmpty)
        #expect(unknownDrive.err.contains("--pvc nope=claim: no VM has a disk or CD-ROM 'nope'"), "\(unknownDrive.err)")
        let badClaim = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--pvc", "root=Bad_Claim"], stdin: cleanManifest)
        #expect(badClaim.status == 2 && badClaim.err.contains("is not a claim name"), "\(badClaim.err)")
        let badNamespace = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--namespace", "Not/A/Namespace"], stdin: cleanManifest)
        #expect(badNamespace.status == 2)
        let noFile = try await QemuctlBinary.run(["export", "kubevirt"])
        #expect(noFile.status == 2 && noFile.err.contains("give at least one -f PATH"))
    }

    @Test func mappingFlagPrintsTheTableOfTheDocs() async throws {
        let r = try await QemuctlBinary.run(["export", "kubevirt", "--mapping"])
        #expect(r.status == 0)
        #expect(r.out.hasPrefix("| qemuctl field | KubeVirt field | how |\n"))
        let docs = try String(contentsOfFile: Fixtures.repoRoot + "/docs/kubevirt.md", encoding: .utf8)
        #expect(docs.contains(r.out))
    }
}

@Suite("qemuctl export kubevirt: generated names", .offPool)
struct ExportKubeVirtNameTests {
    @Test func generatedVolumeNamesThatCollideAcrossVMsAreAnError() async throws {
        func vm(_ name: String, _ disk: String) -> String {
            "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: \(name)}\nspec:\n"
                + "  disks: [{name: \(disk), file: {path: /i/\(name).raw, format: raw}, create: {size: 1GiB}}]\n"
        }
        let clash = vm("a-b", "c") + "---\n" + vm("a", "b-c")
        let r = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-"], stdin: clash)
        #expect(r.status == 1 && r.out.isEmpty)
        #expect(r.err.contains("VMs 'a-b' and 'a' both need a volume named 'a-b-c'"), "\(r.err)")
        let fixed = try await QemuctlBinary.run(["export", "kubevirt", "-f", "-", "--pvc", "a/b-c=a-data"], stdin: clash)
        #expect(fixed.status == 3, "\(fixed.err)")
        #expect(fixed.out.contains("claimName: a-data") && fixed.out.contains("name: a-b-c"))
    }
}

@Suite("qemuctl import kubevirt", .offPool)
struct ImportKubeVirtTests {
    @Test func exportedVMsComeBackWithWhatDidNotCarryOverNamed() async throws {
        let exported = try await QemuctlBinary.run(["export", "kubevirt", "-f", "examples/server.yaml"])
        let r = try await QemuctlBinary.run(["import", "kubevirt", "-f", "-"], stdin: exported.out)
        #expect(r.status == 3, "\(r.err)")
        #expect(r.out.hasPrefix("apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: web-1\n"))
        #expect(r.err.contains("warning: spec.template.spec.volumes[0].dataVolume of VM 'web-1' is dropped"), "\(r.err)")
        let validate = try await QemuctlBinary.run(["validate", "-f", "-"], stdin: r.out)
        #expect(validate.status == 0, "\(validate.err)")
        let strict = try await QemuctlBinary.run(["import", "kubevirt", "--strict", "-f", "-"], stdin: exported.out)
        #expect(strict.status == 1 && strict.out.isEmpty)
        let pod = try await QemuctlBinary.run(["import", "kubevirt", "-f", "-"], stdin: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
        #expect(pod.status == 1 && pod.out.isEmpty && pod.err.contains("not a KubeVirt VirtualMachine"))
        let missing = try await QemuctlBinary.run(["import", "kubevirt", "-f", "/no/such.yaml"])
        #expect(missing.status == 2)
    }
}
