import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Descriptor fixtures in a temporary tree: `usr/`, `etc/` and `user/` stand for the three directories
/// (general to specific), and `img/` holds the (small, fake) images the descriptors name.
private struct DescriptorTree {
    let dir: TempDir
    var directories: [String] { ["usr", "etc", "user"].map { dir.file($0) } }

    init() throws {
        dir = try TempDir("fwd")
        for d in ["usr", "etc", "user", "img"] {
            try FileManager.default.createDirectory(atPath: dir.file(d), withIntermediateDirectories: true)
        }
    }

    /// An image file `img/NAME` holding `content`; returns its path.
    @discardableResult
    func image(_ name: String, _ content: String = "image") throws -> String {
        try content.write(toFile: dir.file("img/" + name), atomically: true, encoding: .utf8)
        return dir.file("img/" + name)
    }

    /// Writes descriptor `name` into `where` (usr, etc, user) with the given parts.
    func descriptor(_ name: String, in place: String = "usr", code: String, template: String, arch: String = "x86_64",
                    machines: [String] = ["pc-i440fx-*", "pc-q35-*"], features: [String] = [],
                    interface: String = "uefi", device: String = "flash", mode: String? = nil, format: String = "raw") throws {
        let modeLine = mode.map { "\"mode\": \"\($0)\"," } ?? ""
        let json = """
            {
                "description": "fixture \(name)",
                "interface-types": ["\(interface)"],
                "mapping": {
                    "device": "\(device)", \(modeLine)
                    "executable": {"filename": "\(dir.file("img/" + code))", "format": "\(format)"},
                    "nvram-template": {"filename": "\(dir.file("img/" + template))", "format": "\(format)"}
                },
                "targets": [{"architecture": "\(arch)", "machines": [\(machines.map { "\"\($0)\"" }.joined(separator: ", "))]}],
                "features": [\(features.map { "\"\($0)\"" }.joined(separator: ", "))],
                "tags": []
            }
            """
        try json.write(toFile: dir.file("\(place)/\(name)"), atomically: true, encoding: .utf8)
    }

    /// Debian's three OVMF descriptors, with fixture images.
    func debianLike() throws {
        for f in ["CODE_4M.fd", "CODE_4M.secboot.fd", "CODE_4M.ms.fd", "VARS_4M.fd", "VARS_4M.ms.fd"] { try image(f, f) }
        try descriptor("40-edk2-x86_64-secure-enrolled.json", code: "CODE_4M.ms.fd", template: "VARS_4M.ms.fd",
                       machines: ["pc-q35-*"],
                       features: ["acpi-s3", "amd-sev", "enrolled-keys", "requires-smm", "secure-boot", "verbose-dynamic"])
        try descriptor("50-edk2-x86_64-secure.json", code: "CODE_4M.secboot.fd", template: "VARS_4M.fd",
                       machines: ["pc-q35-*"], features: ["acpi-s3", "amd-sev", "requires-smm", "secure-boot", "verbose-dynamic"])
        try descriptor("60-edk2-x86_64.json", code: "CODE_4M.fd", template: "VARS_4M.fd",
                       features: ["acpi-s3", "amd-sev", "verbose-dynamic"])
    }

    func img(_ name: String) -> String { dir.file("img/" + name) }
}

@Suite struct FirmwareDescriptorTests {
    @Test func parsesTheInteropFormat() throws {
        let json = """
            {"description": "UEFI firmware for x86_64", "interface-types": ["uefi"],
             "mapping": {"device": "flash",
                         "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
                         "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}},
             "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
             "features": ["secure-boot", "requires-smm"], "tags": [], "unknown-future-member": {"x": 1}}
            """
        let d = try FirmwareDescriptor(parsing: Array(json.utf8), path: "/etc/qemu/firmware/30-x.json")
        #expect(d.fileName == "30-x.json")
        #expect(d.summary == "UEFI firmware for x86_64")
        #expect(d.interfaceTypes == ["uefi"])
        #expect(d.flash == .init(executable: "/fw/CODE.fd", nvramTemplate: "/fw/VARS.fd"))
        #expect(d.targets == [.init(architecture: "x86_64", machines: ["pc-q35-*"])])
        #expect(d.features == ["secure-boot", "requires-smm"])
    }

    @Test func combinedStatelessAndMemoryMappingsHaveNoFlashPair() throws {
        for mapping in [
            #"{"device": "flash", "mode": "combined", "executable": {"filename": "/f.fd", "format": "raw"}}"#,
            #"{"device": "flash", "mode": "stateless", "executable": {"filename": "/f.fd", "format": "raw"}}"#,
            #"{"device": "memory", "filename": "/f.bin"}"#,
        ] {
            let json = #"{"interface-types": ["uefi"], "mapping": \#(mapping), "targets": [{"architecture": "x86_64"}]}"#
            let d = try FirmwareDescriptor(parsing: Array(json.utf8), path: "x.json")
            #expect(d.flash == nil, "\(mapping)")
        }
    }

    @Test(arguments: [
        ("not json", "x"), ("no mapping", #"{"interface-types": [], "targets": []}"#),
        ("no targets", #"{"interface-types": [], "mapping": {}}"#), ("array", "[]"),
    ])
    func invalidDescriptorsAreErrorsNamingTheFile(_ c: (String, String)) throws {
        let e = #expect(throws: FirmwareDiscoveryError.self) { try FirmwareDescriptor(parsing: Array(c.1.utf8), path: "/d/bad.json") }
        #expect(e?.code == .invalidDescriptor, "\(c.0)")
        #expect(e?.message.contains("/d/bad.json") == true, "\(c.0)")
    }

    @Test func machineGlobsAndAliases() {
        let d = FirmwareDescriptor(interfaceTypes: ["uefi"], flash: nil,
                                   targets: [.init(architecture: "x86_64", machines: ["pc-q35-*"])], features: [])
        #expect(d.supports(architecture: "x86_64", machineType: "pc-q35-7.2"))
        #expect(d.supports(architecture: "x86_64", machineType: "q35"))
        #expect(!d.supports(architecture: "x86_64", machineType: "pc"))
        #expect(!d.supports(architecture: "x86_64", machineType: "pc-i440fx-7.2"))
        #expect(!d.supports(architecture: "aarch64", machineType: "q35"))
        let versioned = FirmwareDescriptor(interfaceTypes: ["uefi"], flash: nil,
                                           targets: [.init(architecture: "x86_64", machines: ["pc-q35-2.?"])], features: [])
        #expect(versioned.supports(architecture: "x86_64", machineType: "pc-q35-2.4"))
        #expect(!versioned.supports(architecture: "x86_64", machineType: "pc-q35-2.12"))
        #expect(!versioned.supports(architecture: "x86_64", machineType: "q35"), "an alias is not a particular old version")
        #expect(FirmwareDescriptor.glob("*", matches: ""))
        #expect(FirmwareDescriptor.glob("a*b*c", matches: "aXXbYYc"))
        #expect(!FirmwareDescriptor.glob("a*b*c", matches: "aXXbYY"))
    }
}

@Suite struct FirmwareDiscoveryTests {
    @Test func plainRequestTakesTheFirstDescriptorWithoutSecureBootOrSMM() throws {
        let t = try DescriptorTree()
        defer { t.dir.remove() }
        try t.debianLike()
        let discovery = FirmwareDiscovery(directories: t.directories)
        #expect(discovery.descriptors.map(\.fileName) == ["40-edk2-x86_64-secure-enrolled.json", "50-edk2-x86_64-secure.json", "60-edk2-x86_64.json"])
        #expect(discovery.problems.isEmpty)
        for machine in ["q35", "pc-q35-7.2", "pc", "pc-i440fx-7.2"] {
            let d = try discovery.select(FirmwareRequest(architecture: .amd64, machineType: machine))
            #expect(d.fileName == "60-edk2-x86_64.json", "\(machine)")
        }
        let fw = try discovery.firmware(for: FirmwareRequest(architecture: .amd64, machineType: "q35"), vars: "/s/vm.efivars.fd")
        #expect(fw == Firmware(code: t.img("CODE_4M.fd"), vars: "/s/vm.efivars.fd", varsTemplate: t.img("VARS_4M.fd")))
    }

    @Test func secureBootTakesTheEnrolledKeysDescriptorOnQ35Only() throws {
        let t = try DescriptorTree()
        defer { t.dir.remove() }
        try t.debianLike()
        let discovery = FirmwareDiscovery(directories: t.directories)
        let fw = try discovery.firmware(for: FirmwareRequest(architecture: .amd64, machineType: "q35", secureBoot: true), vars: "/v")
        #expect(fw == Firmware(code: t.img("CODE_4M.ms.fd"), vars: "/v", varsTemplate: t.img("VARS_4M.ms.fd"), secureBoot: true))
        // 50-…-secure has secure-boot without enrolled-keys: never chosen for secureBoot, not even when 40 is gone.
        try Data().write(to: URL(fileURLWithPath: t.dir.file("user/40-edk2-x86_64-secure-enrolled.json")))
        let masked = FirmwareDiscovery(directories: t.directories)
        let e = #expect(throws: FirmwareDiscoveryError.self) {
            try masked.select(FirmwareRequest(architecture: .amd64, machineType: "q35", secureBoot: true))
        }
        #expect(e?.code == .noMatch)
        #expect(e?.message.contains("secure-boot, enrolled-keys, requires-smm") == true)
        #expect(e?.message.contains("50-edk2-x86_64-secure.json, 60-edk2-x86_64.json") == true)
        let pc = #expect(throws: FirmwareDiscoveryError.self) {
            try discovery.select(FirmwareRequest(architecture: .amd64, machineType: "pc", secureBoot: true))
        }
        #expect(pc?.code == .noMatch)
    }

    @Test func aMoreSpecificDirectoryOverridesByFileNameAndRankIsByFileNameAlone() throws {
        let t = try DescriptorTree()
        defer { t.dir.remove() }
        try t.debianLike()
        try t.image("ADMIN_CODE.fd"); try t.image("ADMIN_VARS.fd"); try t.image("USER_CODE.fd"); try t.image("USER_VARS.fd")
        // The administrator replaces 60-… (same name, more specific directory wins).
        try t.descriptor("60-edk2-x86_64.json", in: "etc", code: "ADMIN_CODE.fd", template: "ADMIN_VARS.fd")
        #expect(try FirmwareDiscovery(directories: t.directories).select(.init(architecture: .amd64, machineType: "q35"))
            .flash?.executable == t.img("ADMIN_CODE.fd"))
        // The user adds 10-…: it ranks first by name although its directory is searched last.
        try t.descriptor("10-mine.json", in: "user", code: "USER_CODE.fd", template: "USER_VARS.fd")
        let d = try FirmwareDiscovery(directories: t.directories).select(.init(architecture: .amd64, machineType: "q35"))
        #expect(d.flash?.executable == t.img("USER_CODE.fd"))
        #expect(d.path == t.dir.file("user/10-mine.json"))
    }

    @Test func unusableDescriptorsAreSkipped() throws {
        let t = try DescriptorTree()
        defer { t.dir.remove() }
        for f in ["A.fd", "B.fd", "C.fd", "D.fd", "GOOD.fd", "GOODV.fd"] { try t.image(f) }
        try t.descriptor("10-arm.json", code: "A.fd", template: "B.fd", arch: "aarch64", machines: ["virt-*"])
        try t.descriptor("11-bios.json", code: "A.fd", template: "B.fd", interface: "bios")
        try t.descriptor("12-qcow2.json", code: "C.fd", template: "D.fd", format: "qcow2")
        try t.descriptor("13-combined.json", code: "C.fd", template: "D.fd", mode: "combined")
        try t.descriptor("14-missing-image.json", code: "GONE.fd", template: "D.fd")
        try t.descriptor("15-smm-only.json", code: "C.fd", template: "D.fd", features: ["requires-smm"])
        try "{ not json".write(toFile: t.dir.file("etc/16-broken.json"), atomically: true, encoding: .utf8)
        try "ignored".write(toFile: t.dir.file("etc/17-notes.txt"), atomically: true, encoding: .utf8)
        try t.descriptor("90-good.json", code: "GOOD.fd", template: "GOODV.fd")
        let discovery = FirmwareDiscovery(directories: t.directories + [t.dir.file("does-not-exist")])
        #expect(discovery.problems.map(\.code) == [.invalidDescriptor])
        #expect(discovery.problems.first?.message.contains("16-broken.json") == true)
        #expect(!discovery.descriptors.map(\.fileName).contains("17-notes.txt"))
        #expect(try discovery.select(.init(architecture: .amd64, machineType: "q35")).fileName == "90-good.json")
        #expect(try discovery.select(.init(architecture: .arm64, machineType: "virt-7.2")).fileName == "10-arm.json")
    }

    @Test func templateForAnExplicitCodeImageFollowsSymbolicLinks() throws {
        let t = try DescriptorTree()
        defer { t.dir.remove() }
        try t.debianLike()
        let discovery = FirmwareDiscovery(directories: t.directories)
        #expect(discovery.template(forCode: t.img("CODE_4M.fd"), architecture: .amd64) == t.img("VARS_4M.fd"))
        #expect(discovery.template(forCode: t.img("CODE_4M.secboot.fd"), architecture: .amd64) == t.img("VARS_4M.fd"))
        try FileManager.default.createSymbolicLink(atPath: t.dir.file("link-to-code.fd"), withDestinationPath: t.img("CODE_4M.fd"))
        #expect(discovery.template(forCode: t.dir.file("link-to-code.fd"), architecture: .amd64) == t.img("VARS_4M.fd"))
        #expect(discovery.template(forCode: t.img("CODE_4M.fd"), architecture: .arm64) == nil)
        #expect(discovery.template(forCode: "/nowhere/CODE.fd", architecture: .amd64) == nil)
    }

    @Test func searchDirectoriesFollowTheSpecOrder() {
        #expect(FirmwareDiscovery.searchDirectories(environment: ["XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/u"])
            == ["/usr/share/qemu/firmware", "/etc/qemu/firmware", "/x/cfg/qemu/firmware"])
        #expect(FirmwareDiscovery.searchDirectories(environment: ["HOME": "/home/u"])
            == ["/usr/share/qemu/firmware", "/etc/qemu/firmware", "/home/u/.config/qemu/firmware"])
    }

    /// The host's own descriptors (Debian's `ovmf`, installed by `make deps`).
    @Test func theInstalledOVMFIsFound() throws {
        let discovery = FirmwareDiscovery.installed()
        let plain = try discovery.select(.init(architecture: .amd64, machineType: "q35"))
        #expect(plain.path.hasPrefix("/usr/share/qemu/firmware/"))
        let flash = try #require(plain.flash)
        #expect(FileManager.default.fileExists(atPath: flash.executable))
        #expect(FileManager.default.fileExists(atPath: flash.nvramTemplate))
        #expect(!plain.features.contains("secure-boot"))
        let secure = try discovery.select(.init(architecture: .amd64, machineType: "pc-q35-7.2", secureBoot: true))
        #expect(secure.features.isSuperset(of: ["secure-boot", "enrolled-keys", "requires-smm"]))
        #expect(secure.flash?.nvramTemplate != flash.nvramTemplate, "Secure Boot needs the template with keys enrolled")
        #expect(discovery.template(forCode: flash.executable, architecture: .amd64) == flash.nvramTemplate)
    }
}

@Suite struct FirmwareVariableStoreTests {
    @Test func createdOnceFromTheTemplateAndNeverOverwritten() throws {
        let dir = try TempDir("fwv")
        defer { dir.remove() }
        try "TEMPLATE".write(toFile: dir.file("VARS.fd"), atomically: true, encoding: .utf8)
        // The umask stays as it is (see InstanceTests.runtimeDirectoriesArePrivateWhateverTheUmask).
        #expect(Fixtures.processUmask().map { $0 & 0o077 != 0o077 } ?? false, "a umask masking group and others proves nothing")
        let fw = Firmware(code: "/c.fd", vars: dir.file("new/dir/vm.efivars.fd"), varsTemplate: dir.file("VARS.fd"))
        #expect(try fw.prepareVariableStore() == .created)
        #expect(try String(contentsOfFile: dir.file("new/dir/vm.efivars.fd"), encoding: .utf8) == "TEMPLATE")
        let mode = try FileManager.default.attributesOfItem(atPath: dir.file("new/dir/vm.efivars.fd"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try FileManager.default.attributesOfItem(atPath: dir.file("new/dir"))[.posixPermissions] as? Int == 0o700)
        // The guest changes its variables; a later start keeps them.
        try "GUEST-WROTE".write(toFile: dir.file("new/dir/vm.efivars.fd"), atomically: false, encoding: .utf8)
        #expect(try fw.prepareVariableStore() == .existing)
        #expect(try String(contentsOfFile: dir.file("new/dir/vm.efivars.fd"), encoding: .utf8) == "GUEST-WROTE")
        // No temporary file is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("new/dir")) == ["vm.efivars.fd"])
    }

    @Test func aSymbolicLinkAtTheStorePathIsNeitherFollowedNorReplaced() throws {
        let dir = try TempDir("fwl")
        defer { dir.remove() }
        try "TEMPLATE".write(toFile: dir.file("VARS.fd"), atomically: true, encoding: .utf8)
        // A dangling link planted where the store goes: following it would create the victim file.
        try FileManager.default.createSymbolicLink(atPath: dir.file("vm.efivars.fd"), withDestinationPath: dir.file("victim"))
        let fw = Firmware(code: "/c.fd", vars: dir.file("vm.efivars.fd"), varsTemplate: dir.file("VARS.fd"))
        #expect(try fw.prepareVariableStore() == .existing)
        #expect(!FileManager.default.fileExists(atPath: dir.file("victim")))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir.file("vm.efivars.fd")) == dir.file("victim"))
    }

    @Test func concurrentPreparationsMakeOneCopy() async throws {
        let dir = try TempDir("fwc")
        defer { dir.remove() }
        try Data(repeating: 0x5a, count: 540_672).write(to: URL(fileURLWithPath: dir.file("VARS.fd")))
        let fw = Firmware(code: "/c.fd", vars: dir.file("vm.efivars.fd"), varsTemplate: dir.file("VARS.fd"))
        let outcomes = await withTaskGroup(of: Firmware.VariableStoreState?.self) { group in
            for _ in 0..<8 { group.addTask { try? fw.prepareVariableStore() } }
            return await group.reduce(into: [Firmware.VariableStoreState?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == .created }.count == 1)
        #expect(outcomes.filter { $0 == .existing }.count == 7)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("vm.efivars.fd"))) == Data(repeating: 0x5a, count: 540_672))
    }

    @Test func aMissingStoreWithoutTemplateIsAnErrorNamingIt() throws {
        let e = #expect(throws: FirmwareDiscoveryError.self) {
            try Firmware(code: "/c.fd", vars: "/nonexistent/vm.efivars.fd").prepareVariableStore()
        }
        #expect(e?.code == .variableStore)
        #expect(e?.message.contains("/nonexistent/vm.efivars.fd does not exist and no template") == true)
        #expect(try Firmware(code: "/c.fd").prepareVariableStore() == .none, "no vars: nothing to prepare")
    }

    @Test func defaultStoreLivesInTheStateDirectoryOutsideTheRuntimeDirectory() {
        let p = Firmware.defaultVariableStorePath(vmName: "web-1", socketDirectory: "/srv/state/")
        #expect(p == "/srv/state/web-1.efivars.fd")
        #expect(!p.hasPrefix(RuntimeLayout(name: "web-1", socketDirectory: "/srv/state").runtimeDirectory + "/"))
    }
}

@Suite struct FirmwareArgvTests {
    private func launch() -> LaunchOptions {
        LaunchOptions(qmpSocketPath: "/run/q/vm.sock", runtimeDirectory: "/run/q/vm", accelerator: nil)
    }

    @Test func secureBootTurnsOnSMMAndTheSecureFlash() throws {
        var c = VMConfig(name: "sb")
        c.machine = Machine(type: "q35", accel: .tcg)
        c.firmware = Firmware(code: "/fw/CODE.fd", vars: "/s/sb.efivars.fd", varsTemplate: "/fw/VARS.fd", secureBoot: true)
        let args = try c.commandLine(launch()).arguments
        let machine = try #require(args.firstIndex(of: "-machine").map { args[$0 + 1] })
        #expect(machine == "type=q35,pflash0=efi-code,pflash1=efi-vars,smm=on")
        #expect(args.contains("driver=cfi.pflash01,property=secure,value=on"))
        #expect(args.contains(#"{"driver":"file","node-name":"efi-vars-file","filename":"/s/sb.efivars.fd"}"#))
        // The template is never given to QEMU: only the VM's own copy is.
        #expect(!args.contains { $0.contains("/fw/VARS.fd") })
        c.firmware?.secureBoot = false
        let plain = try c.commandLine(launch()).arguments
        #expect(!plain.contains("-global"))
        #expect(!plain.contains { $0.contains("smm=on") })
    }

    @Test func secureBootNeedsQ35AndAVariableStore() {
        var c = VMConfig(name: "sb")
        c.machine = Machine(type: "pc", accel: .tcg)
        c.firmware = Firmware(code: "/fw/CODE.fd", secureBoot: true)
        #expect(c.problems().map(\.path) == ["firmware.secureBoot", "firmware.secureBoot"])
        c.machine.type = "pc-q35-7.2"
        c.firmware?.vars = "/s/v.fd"
        #expect(c.problems().isEmpty)
    }
}
