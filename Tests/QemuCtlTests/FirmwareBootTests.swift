import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Real OVMF (Debian's `ovmf`, found through its firmware descriptors) booted by QEMU under TCG, its
/// console on a serial log file.
@Suite(.timeLimit(.minutes(3)), .offPool) struct FirmwareBootTests {
    /// A q35 VM with no disk: OVMF finds nothing to boot and starts its built-in UEFI shell.
    private func efiVM(_ name: String, in dir: TempDir, secureBoot: Bool = false) throws -> VMConfig {
        var c = TestVMs.bare(name)
        c.memory.sizeMiB = 128
        c.firmware = try FirmwareDiscovery.installed().firmware(
            for: FirmwareRequest(architecture: .amd64, machineType: "q35", secureBoot: secureBoot),
            vars: dir.file("\(name).efivars.fd"))
        c.serials = [Serial(name: "console", backend: .file(path: dir.file("\(name)-serial.log"), append: true))]
        return c
    }

    @Test func ovmfBootsToTheUEFIShellAndWritesItsOwnVariableStore() async throws {
        let dir = try TempDir("efi")
        defer { dir.remove() }
        let config = try efiVM("e1", in: dir)
        let fw = try #require(config.firmware)
        let template = try Data(contentsOf: URL(fileURLWithPath: try #require(fw.varsTemplate)))
        #expect(!FileManager.default.fileExists(atPath: dir.file("e1.efivars.fd")))
        let started = ContinuousClock.now
        let vm = try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("run")))
        defer { Task { try? await vm.forceStop() } }
        // The copy exists before QEMU runs, as a fresh copy of the template.
        #expect(FileManager.default.fileExists(atPath: dir.file("e1.efivars.fd")))
        // OVMF's boot manager and the shell's banner, on the serial console.
        try await waitForFile(dir.file("e1-serial.log"), containing: "UEFI Interactive Shell", timeout: 90)
        let bootTime = ContinuousClock.now - started
        let log = try String(contentsOfFile: dir.file("e1-serial.log"), encoding: .utf8)
        #expect(log.contains("BdsDxe: starting Boot"))
        #expect(bootTime < .seconds(90))
        print("OVMF reached the UEFI shell under TCG in \(bootTime)")
        // OVMF wrote its boot options into the VM's copy: the copy is writable and is the one in use,
        // and the template is untouched.
        let stop = try await vm.stop(timeout: .seconds(1))
        #expect(stop.step != .powerdown, "the UEFI shell does not act on the power button")
        let vars = try Data(contentsOf: URL(fileURLWithPath: dir.file("e1.efivars.fd")))
        #expect(vars.count == template.count)
        #expect(vars != template)
        #expect(try Data(contentsOf: URL(fileURLWithPath: fw.varsTemplate!)) == template)
    }

    /// The test guest's kernel, given with `-kernel`, is loaded by OVMF (as an EFI application through its
    /// EFI stub) and boots to the guest's ready line.
    @Test func theTestGuestKernelBootsUnderOVMF() async throws {
        let dir = try TempDir("efk")
        defer { dir.remove() }
        // loglevel=7 (KERN_INFO) after the guest's `quiet`: the kernel says which firmware started it.
        var config = TestVMs.guest("k1", in: dir, cmdline: "loglevel=7")
        config.firmware = try FirmwareDiscovery.installed().firmware(
            for: FirmwareRequest(architecture: .amd64, machineType: "q35"), vars: dir.file("k1.efivars.fd"))
        let vm = try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("run")))
        defer { Task { try? await vm.forceStop() } }
        try await waitForFile(dir.file("k1-serial.log"), containing: QemuCtlTestSupport.Fixtures.guestReadyMarker, timeout: 150)
        let log = try String(contentsOfFile: dir.file("k1-serial.log"), encoding: .utf8)
        #expect(log.contains("efi: EFI v2") && log.contains("by EDK II"), "the kernel was started by OVMF: \(log.prefix(3000))")
        try await vm.forceStop()
    }

    @Test func secureBootRefusesTheUnsignedShell() async throws {
        let dir = try TempDir("esb")
        defer { dir.remove() }
        let config = try efiVM("s1", in: dir, secureBoot: true)
        #expect(config.firmware?.secureBoot == true)
        let vm = try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("run")))
        defer { Task { try? await vm.forceStop() } }
        // With the enrolled keys, the built-in shell (not signed by them) is refused: Secure Boot is enforced.
        try await waitForFile(dir.file("s1-serial.log"), containing: "Security Violation", timeout: 90)
        let log = try String(contentsOfFile: dir.file("s1-serial.log"), encoding: .utf8)
        #expect(!log.contains("UEFI Interactive Shell"))
        try await vm.forceStop()
    }
}
