import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `qemuctl wait`: each condition on a real VM (the busybox test guest, which has the agent channel but no
/// agent), its exit statuses, and its usage errors.
@Suite(.timeLimit(.minutes(3)), .offPool) struct WaitCommandTests {
    @Test func waitsForEachConditionAndTimesOutWithStatus4() async throws {
        let w = try Workspace("wait")
        defer { w.cleanUp() }
        let vms = try w.manifest("w1", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: w1}
            spec:
              machine: {type: q35, accel: tcg}
              memory: {size: 128MiB}
              boot:
                kernel: \(Fixtures.guestKernel)
                initrd: \(Fixtures.guestInitrd)
                cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check
              serial: {log: true}
              guestAgent: true
              networks:
                - name: net0
                  user: {restrict: true, hostfwd: ["tcp:127.0.0.1:\(Int.random(in: 30000..<60000))-:22"]}
            """)
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.err)")

        let running = try await w.qemuctl("wait", "w1", "--for", "running", "--timeout", "30s")
        #expect(running.status == 0, "\(running.err)")
        #expect(running.out.hasPrefix("w1: running (after "), "\(running.out)")
        let marker = try await w.qemuctl("wait", "w1", "--for", "ready", "--probe", "serial:^\(Fixtures.guestReadyMarker)$", "--timeout", "90")
        #expect(marker.status == 0, "\(marker.err)")
        #expect(marker.out.hasPrefix("w1: ready"), "\(marker.out)")

        // No agent runs in this guest, and it has no network driver: both time out with status 4 (QEMU holds
        // the forwarded connection open, but no ssh banner comes).
        let agent = try await w.qemuctl("wait", "w1", "--for", "agent", "--timeout", "3s")
        #expect(agent.status == 4, "\(agent.out)\(agent.err)")
        #expect(agent.err.contains("w1: not agent after 3s"), "\(agent.err)")
        #expect(agent.err.contains("is qemu-guest-agent running in the guest?"), "\(agent.err)")
        let ssh = try await w.qemuctl("wait", "w1", "--for", "ready", "--probe", "tcp:22", "--timeout", "4")
        #expect(ssh.status == 4, "\(ssh.out)\(ssh.err)")
        #expect(ssh.err.contains("guest port 22 sent nothing within 3.0 seconds"), "\(ssh.err)")
        // A port without a host forward cannot become ready: status 1 at once.
        let noForward = try await w.qemuctl("wait", "w1", "--for", "ready", "--probe", "tcp:80", "--timeout", "60")
        #expect(noForward.status == 1, "\(noForward.out)\(noForward.err)")
        #expect(noForward.err.contains("no host forward reaches guest TCP port 80"), "\(noForward.err)")

        let notPaused = try await w.qemuctl("wait", "w1", "--for", "paused", "--timeout", "1")
        #expect(notPaused.status == 4)
        #expect(try await w.qemuctl("pause", "w1").status == 0)
        #expect(try await w.qemuctl("wait", "w1", "--for", "paused", "--timeout", "10").status == 0)
        #expect(try await w.qemuctl("resume", "w1").status == 0)

        // stopped: waits while QEMU runs, returns once it is gone.
        #expect(try await w.qemuctl("wait", "w1", "--for", "stopped", "--timeout", "1").status == 4)
        async let stopped = w.qemuctl("wait", "w1", "--for", "stopped", "--timeout", "60")
        let stop = try await w.qemuctl("stop", "w1", "--force")
        #expect(stop.status == 0, "\(stop.err)")
        let done = try await stopped
        #expect(done.status == 0, "\(done.err)")
        #expect(done.out.hasPrefix("w1: stopped"), "\(done.out)")
    }

    @Test func usageErrorsAndUnknownVMs() async throws {
        let w = try Workspace("waitu")
        defer { w.cleanUp() }
        let unknown = try await w.qemuctl("wait", "nosuch", "--for", "running", "--timeout", "1")
        #expect(unknown.status == 8, "\(unknown.err)")
        #expect(unknown.err.contains("no VM named nosuch"))
        // Without --probe the probe is the VM's spec.readiness: an unknown VM is reported as such.
        let noProbe = try await w.qemuctl("wait", "x", "--for", "ready", "--timeout", "1")
        #expect(noProbe.status == 8, "\(noProbe.err)")
        #expect(noProbe.err.contains("no VM named x"), "\(noProbe.err)")
        let badProbe = try await w.qemuctl("wait", "x", "--for", "ready", "--probe", "serial:(")
        #expect(badProbe.status == 2)
        #expect(badProbe.err.contains("is not a valid regular expression"), "\(badProbe.err)")
        let badTimeout = try await w.qemuctl("wait", "x", "--for", "running", "--timeout", "soon")
        #expect(badTimeout.status == 2)
        let badCondition = try await w.qemuctl("wait", "x", "--for", "booted")
        #expect(badCondition.status == 2)
    }
}
