import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Every QEMU qemuctl runs gets a minimal environment, the accelerator probe's too: a secret given to qemuctl in
/// a variable (`passwordFrom: {env: …}`) is never in a QEMU's /proc/PID/environ (issue 6, item 5).
@Suite(.offPool) struct ChildEnvironmentTests {
    @Test func theAcceleratorProbeGetsNoInheritedEnvironment() async throws {
        let dir = try TempDir("penv")
        defer { dir.remove() }
        let canary = "CANARY-probe-\(UUID().uuidString.prefix(8))"
        setenv("QEMUCTL_TEST_PROBE_SECRET", canary, 1)
        defer { unsetenv("QEMUCTL_TEST_PROBE_SECRET") }
        // A stand-in for QEMU that records its environment and fails, so every probe trial runs it.
        let record = dir.file("env.txt")
        let binary = try dir.script("qemu-system-x86_64", "#!/bin/sh\nenv >> '\(record)'\nexit 1\n")
        // /dev/null opens read-write, so the probe goes on to try KVM with the binary.
        let choice = try await AcceleratorProbe(kvmDevice: "/dev/null").probe(binary: binary, requested: .auto)
        #expect(choice.accelerator == .tcg)
        let seen = try String(contentsOfFile: record, encoding: .utf8)
        #expect(seen.contains("PATH="), "the stand-in ran: \(seen)")
        #expect(!seen.contains(canary), "the probe inherited the secret")
        #expect(!seen.contains("QEMUCTL_TEST_PROBE_SECRET"))
    }
}
