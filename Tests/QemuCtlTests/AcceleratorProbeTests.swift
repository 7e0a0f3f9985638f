import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

@Suite(.timeLimit(.minutes(1)), .offPool) struct AcceleratorProbeTests {
    @Test func withoutKVMAutoFallsBackToTCGAndSaysWhy() async throws {
        let probe = AcceleratorProbe(kvmDevice: "/nonexistent/kvm")
        let choice = try await probe.probe(binary: QemuCtlTestSupport.Fixtures.qemu, requested: .auto)
        #expect(choice.accelerator == .tcg)
        #expect(choice.reasons.first?.contains("/nonexistent/kvm cannot be opened") == true)
        #expect(choice.reasons.last == "using tcg (software emulation)")
    }

    @Test func explicitKVMThatCannotWorkFailsClearly() async throws {
        let probe = AcceleratorProbe(kvmDevice: "/nonexistent/kvm")
        let error = await #expect(throws: QEMUDiscoveryError.self) {
            _ = try await probe.probe(binary: QemuCtlTestSupport.Fixtures.qemu, requested: .kvm)
        }
        #expect(error?.code == .acceleratorUnavailable)
        #expect(error?.message.contains("KVM was requested") == true)
    }

    @Test func theChoiceOnThisHostReallyStartsAVM() async throws {
        let kvmUsable = open("/dev/kvm", O_RDWR) >= 0
        let choice = try await AcceleratorProbe.shared.probe(binary: QemuCtlTestSupport.Fixtures.qemu, requested: .auto)
        if !kvmUsable { #expect(choice.accelerator == .tcg) }
        // Whatever was chosen (on our nested hosts: kvm with host,-arch-capabilities), QEMU runs with it.
        let dir = try TempDir("probe")
        defer { dir.remove() }
        var config = VMConfig(name: "probe")
        config.machine = Machine(type: "q35", accel: .auto)
        config.memory.sizeMiB = 64
        let vm = try await Instance.start(config, options: StartOptions(socketDirectory: dir.path, accelerator: choice))
        #expect(vm.state == .running)
        #expect(vm.accelerator == choice.accelerator)
        let kvm = try await vm.qmp.execute("query-kvm")
        #expect(kvm["enabled"]?.boolValue == (choice.accelerator == .kvm))
        try await vm.forceStop()
        // The probe is cached: a second call returns the same choice.
        #expect(try await AcceleratorProbe.shared.probe(binary: QemuCtlTestSupport.Fixtures.qemu, requested: .auto) == choice)
    }
}
