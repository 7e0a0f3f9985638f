import Foundation
import Manifest
import QemuCtl
import QemuCtlTestSupport
import Reconcile
import Testing

/// A descriptor directory with a plain and a Secure Boot (enrolled keys) OVMF, fake images.
private struct Descriptors {
    let dir: TempDir
    var directories: [String] { [dir.file("fw")] }
    func img(_ n: String) -> String { dir.file("img/" + n) }

    init() throws {
        dir = try TempDir("fwm")
        for d in ["fw", "img"] { try FileManager.default.createDirectory(atPath: dir.file(d), withIntermediateDirectories: true) }
        for f in ["CODE.fd", "VARS.fd", "CODE.sb.fd", "VARS.ms.fd"] { try f.write(toFile: img(f), atomically: true, encoding: .utf8) }
        func write(_ name: String, _ code: String, _ vars: String, _ machines: String, _ features: String) throws {
            try """
                {"interface-types": ["uefi"],
                 "mapping": {"device": "flash", "executable": {"filename": "\(img(code))", "format": "raw"},
                             "nvram-template": {"filename": "\(img(vars))", "format": "raw"}},
                 "targets": [{"architecture": "x86_64", "machines": [\(machines)]}], "features": [\(features)]}
                """.write(toFile: dir.file("fw/" + name), atomically: true, encoding: .utf8)
        }
        try write("40-sb.json", "CODE.sb.fd", "VARS.ms.fd", #""pc-q35-*""#, #""secure-boot", "enrolled-keys", "requires-smm""#)
        try write("60-plain.json", "CODE.fd", "VARS.fd", #""pc-i440fx-*", "pc-q35-*""#, #""acpi-s3""#)
    }
}

private func load(_ spec: String, name: String = "vm1") -> ManifestSet {
    let yaml = "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: \(name)\nspec:\n" + spec
    return ManifestLoader().load(bytes: Array(yaml.utf8), file: "t.yaml", baseDirectory: "/base")
}

private func vm(_ spec: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> VirtualMachine {
    let set = load(spec)
    #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))", sourceLocation: sourceLocation)
    return try #require(set.virtualMachines.first, sourceLocation: sourceLocation)
}

@Suite struct FirmwareMappingTests {
    @Test func efiWithoutPathsGetsTheDescriptorsFirmwareAndAPerVMStoreInTheStateDirectory() throws {
        let d = try Descriptors()
        defer { d.dir.remove() }
        try VMConfigMapping.$firmwareDirectories.withValue(d.directories) {
            let c = try VMConfigMapping.config(for: vm("  firmware: {type: efi}\n"), uuid: nil, socketDirectory: "/run/qc")
            #expect(c.firmware == Firmware(code: d.img("CODE.fd"), vars: "/run/qc/vm1.efivars.fd", varsTemplate: d.img("VARS.fd")))
            let sb = try VMConfigMapping.config(for: vm("  firmware: {type: efi, secureBoot: true}\n"), uuid: nil, socketDirectory: "/run/qc")
            #expect(sb.firmware == Firmware(code: d.img("CODE.sb.fd"), vars: "/run/qc/vm1.efivars.fd",
                                            varsTemplate: d.img("VARS.ms.fd"), secureBoot: true))
            // An explicit code image gets its descriptor's template; explicit vars are used as given.
            let explicit = try VMConfigMapping.config(
                for: vm("  firmware: {type: efi, code: \(d.img("CODE.fd")), vars: my/vars.fd}\n"), uuid: nil, socketDirectory: "/run/qc")
            #expect(explicit.firmware == Firmware(code: d.img("CODE.fd"), vars: "/base/my/vars.fd", varsTemplate: d.img("VARS.fd")))
        }
    }

    @Test func noMatchingFirmwareIsAProblemThatSaysWhatToInstall() throws {
        let d = try Descriptors()
        defer { d.dir.remove() }
        try VMConfigMapping.$firmwareDirectories.withValue(d.directories) {
            // The plain firmware fits pc, the Secure Boot one does not (and the manifest refuses secureBoot there).
            let pc = try VMConfigMapping.config(for: vm("  machine: {type: pc}\n  firmware: {type: efi}\n"), uuid: nil, socketDirectory: "/s")
            #expect(pc.firmware?.code == d.img("CODE.fd"))
            let arm = #expect(throws: MappingError.self) {
                try VMConfigMapping.config(for: vm("  arch: arm64\n  firmware: {type: efi}\n"), uuid: nil, socketDirectory: "/s")
            }
            #expect(arm?.fields == ["spec.firmware.code"])
            #expect(arm?.description.contains("aarch64 uefi flash firmware for machine virt") == true)
            #expect(arm?.description.contains("apt-get install ovmf") == true)
        }
    }

    @Test func validateWarnsOnlyWhenAMissingVarsFileCannotBeCreated() throws {
        let d = try Descriptors()
        defer { d.dir.remove() }
        try VMConfigMapping.$firmwareDirectories.withValue(d.directories) {
            // Known code: the missing store will be created from its template, nothing to warn about.
            #expect(VMConfigMapping.firmwareWarnings(try vm("  firmware: {type: efi, code: \(d.img("CODE.fd")), vars: /nope/v.fd}\n")).isEmpty)
            #expect(VMConfigMapping.firmwareWarnings(try vm("  firmware: {type: efi, vars: /nope/v.fd}\n")).isEmpty)
            // Unknown code and a missing store: apply could not start the VM.
            let w = VMConfigMapping.firmwareWarnings(try vm("  firmware: {type: efi, code: /opt/CODE.fd, vars: /nope/v.fd}\n"))
            #expect(w.map(\.severity) == [.warning])
            #expect(w.first?.message.contains("firmware vars '/nope/v.fd' does not exist and no firmware descriptor") == true)
            // Unknown code, existing store: fine.
            #expect(VMConfigMapping.firmwareWarnings(try vm("  firmware: {type: efi, code: /opt/CODE.fd, vars: \(d.img("VARS.fd"))}\n")).isEmpty)
            #expect(VMConfigMapping.firmwareWarnings(try vm("  firmware: {type: bios}\n")).isEmpty)
            // Secure Boot on pc is the manifest's error (secureBootOutsideQ35IsRejectedByValidate), not a second warning.
            let pc = try #require(load("  machine: {type: pc}\n  firmware: {type: efi, secureBoot: true}\n").virtualMachines.first)
            #expect(VMConfigMapping.firmwareWarnings(pc).isEmpty)
        }
        let none = VMConfigMapping.$firmwareDirectories.withValue([]) { VMConfigMapping.firmwareWarnings(try! vm("  firmware: {type: efi}\n")) }
        #expect(none.first?.message.contains("no firmware descriptor offers x86_64 uefi flash firmware for machine q35") == true)
    }

    @Test(arguments: [
        ("  machine: {type: pc}\n  firmware: {type: efi, secureBoot: true}\n", "needs a q35 machine"),
        ("  machine: {type: pc-i440fx-7.2}\n  firmware: {type: efi, secureBoot: true}\n", "needs a q35 machine"),
        ("  arch: arm64\n  firmware: {type: efi, secureBoot: true}\n", "needs a q35 machine"),
        ("  firmware: {type: bios, secureBoot: true}\n", "'spec.firmware.secureBoot' needs 'type: efi'"),
    ])
    func secureBootOutsideQ35IsRejectedByValidate(_ c: (String, String)) {
        let set = load(c.0)
        #expect(set.hasErrors)
        #expect(set.diagnostics.contains { $0.severity == .error && $0.message.contains(c.1) }, "\(set.diagnostics)")
    }

    @Test func secureBootOnQ35IsValidAndPlannedAsARestart() throws {
        for spec in ["  firmware: {type: efi, secureBoot: true}\n", "  machine: {type: pc-q35-7.2}\n  firmware: {type: efi, secureBoot: true}\n"] {
            #expect(!load(spec).hasErrors, "\(spec)")
        }
        #expect(FieldTable.changeClass(at: "spec.firmware.secureBoot") == .restart)
    }
}
