import Foundation
import QemuCtlTestSupport
import Testing
@testable import QemuCtl

@Suite("QEMU discovery and architecture", .offPool)
struct DiscoveryTests {
    @Test func goarchMapping() throws {
        let table: [(String, String)] = [
            ("amd64", "qemu-system-x86_64"), ("386", "qemu-system-i386"), ("arm64", "qemu-system-aarch64"),
            ("arm", "qemu-system-arm"), ("riscv64", "qemu-system-riscv64"), ("ppc64", "qemu-system-ppc64"),
            ("ppc64le", "qemu-system-ppc64"), ("mips", "qemu-system-mips"), ("mips64", "qemu-system-mips64"),
            ("s390x", "qemu-system-s390x"),
        ]
        for (goarch, binary) in table { #expect(try QEMUArch(goarch: goarch).binaryName == binary) }
        let error = #expect(throws: QEMUDiscoveryError.self) { try QEMUArch(goarch: "sparc64") }
        #expect(error?.description == "unsupported architecture: sparc64")
        #expect(error?.code == .unsupportedArchitecture)
        #if arch(x86_64)
        #expect(QEMUArch.host == .amd64)
        #endif
    }

    @Test func searchOrder() {
        let dirs: Set<String> = ["/opt/qemu/bin"]
        let c = QEMUDiscovery.candidates(arch: .arm64, configuredPath: "/opt/qemu/bin", pathVariable: "/a:/b::/usr/bin",
                                         isDirectory: dirs.contains)
        #expect(c == ["/opt/qemu/bin/qemu-system-aarch64", "/a/qemu-system-aarch64", "/b/qemu-system-aarch64",
                      "/usr/bin/qemu-system-aarch64", "/pkg/main/app-emulation.qemu.core/bin/qemu-system-aarch64",
                      "/usr/local/bin/qemu-system-aarch64"])
        let file = QEMUDiscovery.candidates(arch: .amd64, configuredPath: "/opt/my-qemu", pathVariable: nil, isDirectory: { _ in false })
        #expect(file.first == "/opt/my-qemu")
    }

    @Test func findsConfiguredFileDirectoryThenPath() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qemuctl-disc-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bin = dir + "/qemu-system-riscv64"
        _ = FileManager.default.createFile(atPath: bin, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        #expect(try QEMUDiscovery.findBinary(arch: .riscv64, configuredPath: dir, environment: [:]) == bin)
        #expect(try QEMUDiscovery.findBinary(arch: .riscv64, configuredPath: bin, environment: [:]) == bin)
        #expect(try QEMUDiscovery.findBinary(arch: .riscv64, environment: ["PATH": "/nonexistent:" + dir]) == bin)
        #expect(try QEMUDiscovery.findBinary(goarch: "riscv64", environment: ["PATH": dir]) == bin)
    }

    @Test func notFoundSaysSoAndNamesThePackage() {
        let error = #expect(throws: QEMUDiscoveryError.self) {
            try QEMUDiscovery.findBinary(arch: .mips64, environment: ["PATH": "/nonexistent2"])
        }
        #expect(error?.code == .binaryNotFound)
        #expect(error?.message.hasPrefix("QEMU binary not found: qemu-system-mips64 (searched: /nonexistent2/qemu-system-mips64") == true)
        #expect(error?.message.contains("the package qemu-system-mips (apt-get install qemu-system-mips), or name a binary with spec.emulator") == true,
                "\(error?.message ?? "")")
        let arm = #expect(throws: QEMUDiscoveryError.self) { try QEMUDiscovery.findBinary(arch: .arm64, environment: ["PATH": "/nonexistent2"]) }
        #expect(arm?.message.contains("qemu-system-arm") == true)
    }

    @Test(.requiresQEMU) func aConfiguredEmulatorIsAPinNeverAFallback() {
        // /usr/bin/qemu-system-x86_64 exists and is on PATH: a missing pinned path must still fail.
        let file = #expect(throws: QEMUDiscoveryError.self) {
            try QEMUDiscovery.findBinary(arch: .amd64, configuredPath: "/opt/nonexistent/qemu-system-x86_64", environment: ["PATH": "/usr/bin"])
        }
        #expect(file?.code == .binaryNotFound)
        #expect(file?.message.contains("the configured QEMU /opt/nonexistent/qemu-system-x86_64 is not an executable file") == true, "\(file?.message ?? "")")
        // A directory without the architecture's binary is the same.
        let dir = #expect(throws: QEMUDiscoveryError.self) {
            try QEMUDiscovery.findBinary(arch: .amd64, configuredPath: "/tmp", environment: ["PATH": "/usr/bin"])
        }
        #expect(dir?.message.contains("/tmp/qemu-system-x86_64") == true)
    }

    @Test(.requiresQEMU) func findsTheInstalledQEMU() throws {
        #expect(try QEMUDiscovery.findBinary(arch: .amd64, environment: ["PATH": "/usr/bin"]) == "/usr/bin/qemu-system-x86_64")
    }
}

@Suite("Accelerator probe", .offPool)
struct AcceleratorProbeChoiceTests {
    @Test func tcgRunsNothing() async throws {
        let c = try await AcceleratorProbe().probe(binary: "/nonexistent/qemu", requested: .tcg)
        #expect(c.accelerator == .tcg && c.cpuModel == nil)
    }

    @Test func noKVMDeviceFallsBackOrFailsClearly() async throws {
        let probe = AcceleratorProbe(kvmDevice: "/nonexistent/kvm")
        let c = try await probe.probe(binary: "/usr/bin/qemu-system-x86_64", requested: .auto)
        #expect(c.accelerator == .tcg)
        #expect(c.reasons.first == "/nonexistent/kvm cannot be opened read-write: No such file or directory")
        let error = await #expect(throws: QEMUDiscoveryError.self) {
            try await probe.probe(binary: "/usr/bin/qemu-system-x86_64", requested: .kvm)
        }
        #expect(error?.code == .acceleratorUnavailable)
        #expect(error?.message == "KVM was requested but /nonexistent/kvm cannot be opened read-write: No such file or directory; use accel tcg or auto, or give this user access to /nonexistent/kvm")
    }

    /// A "QEMU" that refuses KVM the way a real one does: the probe must pass its words on.
    @Test func qemuRefusingKVMFallsBackOrFailsClearly() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qemuctl-probe-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fake = dir + "/qemu-system-x86_64"
        _ = FileManager.default.createFile(atPath: fake, contents: Data("""
            #!/bin/sh
            echo "qemu-system-x86_64: -accel kvm: error: failed to initialize kvm: Permission denied" >&2
            exit 1
            """.utf8), attributes: [.posixPermissions: 0o755])
        // /dev/null opens read-write, so the device check passes and QEMU itself decides.
        let probe = AcceleratorProbe(kvmDevice: "/dev/null")
        let c = try await probe.probe(binary: fake, requested: .auto)
        #expect(c.accelerator == .tcg)
        #expect(c.reasons.count == 5, "\(c.reasons)")  // device ok, 3 CPU models fail, fallback
        #expect(c.reasons.last == "using tcg (software emulation)")
        #expect(c.reasons[1] == "qemu -accel kvm -cpu host fails: qemu-system-x86_64: -accel kvm: error: failed to initialize kvm: Permission denied")
        let error = await #expect(throws: QEMUDiscoveryError.self) { try await probe.probe(binary: fake, requested: .kvm) }
        #expect(error?.message == "KVM was requested but QEMU cannot start a machine with it: qemu-system-x86_64: -accel kvm: error: failed to initialize kvm: Permission denied")
    }

    @Test(.requiresQEMU, .enabled(if: access("/dev/kvm", R_OK | W_OK) == 0, "needs /dev/kvm read-write"))
    func realKVMProbeChoosesAWorkingCPUModel() async throws {
        let probe = AcceleratorProbe()
        let qemu = "/usr/bin/qemu-system-x86_64"
        let c = try await probe.probe(binary: qemu, requested: .auto)
        print("probe:", c.reasons.joined(separator: " | "))
        #expect(c.accelerator == .kvm)
        // Whatever was chosen must start under KVM with our own argv.
        var config = VMConfig(name: "probe", arch: .amd64, machine: Machine(hotplugPorts: 0))
        config.machine.accel = .auto
        let dir = "/tmp/qemuctl-probe-run-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cmd = try config.commandLine(LaunchOptions(qmpSocketPath: dir + "/qmp.sock", runtimeDirectory: dir, accelerator: c))
        #expect(cmd.accelerator == .kvm)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemu)
        p.arguments = cmd.arguments
        p.standardError = FileHandle.nullDevice
        try p.run()
        let q = try TinyQMP(path: dir + "/qmp.sock", deadline: Date().addingTimeInterval(10))
        let kvm = try q.execute("query-kvm") as? [String: Any]
        #expect(kvm?["enabled"] as? Bool == true)
        _ = try? q.execute("quit")
        p.waitUntilExit()
        // Cached: the second probe runs no QEMU.
        let t0 = ContinuousClock.now
        #expect(try await probe.probe(binary: qemu, requested: .auto) == c)
        #expect(ContinuousClock.now - t0 < .milliseconds(250))  // running QEMU takes longer than this
    }
}
