import Foundation
import QemuCtlTestSupport
import Testing

/// Ctrl-C during `apply`: the first interrupt starts nothing new and lets the step in flight
/// finish and record itself, then exits 130; a second exits at once; the next apply converges.
@Suite(.serialized, .timeLimit(.minutes(2)), .offPool) struct InterruptTests {
    @Test func aFirstInterruptFinishesTheVMInFlightAndStartsNoOther() async throws {
        let w = try Workspace("int1")
        defer { w.cleanUp() }
        for n in ["c1", "c2", "c3"] { try w.manifest(n, bareVM(n)) }
        let vms = w.dir.file("vms")
        // Held (SIGSTOP) in the middle of the first VM's launch: QEMU runs, its record has the pid.
        let apply = try QemuctlBinary.Background(["apply", "-f", vms, "--parallel", "1"],
                                                 environment: w.env.merging(["QEMUCTL_FAULT": "after-record", "QEMUCTL_FAULT_ACTION": "stop"]) { _, b in b })
        defer { apply.kill() }
        #expect(await processStops(apply.pid))
        apply.send(SIGINT)
        apply.send(SIGCONT)
        let status = await apply.exitStatus(timeout: .seconds(60))
        #expect(status == 130, "\(apply.out)\(apply.err)")
        #expect(apply.err.contains("interrupted: finishing the steps in flight and recording them, starting nothing new"), "\(apply.err)")
        // The VM in flight (c1, held mid-launch) was finished and recorded; no VM started once the
        // interrupt was handled. (The handler runs on whichever thread the kernel picks: on a loaded
        // machine the next VM can start in the moment between SIGCONT and the handler, so the test
        // counts instead of assuming which moment the handler won.)
        let notStarted = apply.out.components(separatedBy: "not started: the apply was interrupted").count - 1
        let running = ["c1", "c2", "c3"].filter { w.pid($0) != nil }
        #expect(running.contains("c1"), "\(running)")
        #expect(notStarted >= 1, "\(apply.out)")
        #expect(running.count + notStarted == 3, "\(running), \(notStarted) not started: \(apply.out)")
        #expect(apply.err.contains("interrupted: \(notStarted) VM(s) not started"), "\(apply.err)")
        let get = try await w.qemuctl("get", "c1", "-o", "json")
        #expect(get.out.contains("\"running\""), "\(get.out)")
        // The next apply does the rest.
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(["c1", "c2", "c3"].allSatisfy { w.pid($0) != nil })
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
    }

    @Test func aSecondInterruptExitsAtOnce() async throws {
        let w = try Workspace("int2")
        defer { w.cleanUp() }
        try w.manifest("keep", bareVM("keep"))
        let doomed = try w.manifest("doomed", bareVM("doomed"))
        #expect(try await w.qemuctl("apply", "-f", doomed).status == 0)
        try FileManager.default.removeItem(atPath: w.dir.file("vms/doomed.yaml"))
        // A VM without an operating system ignores the power button: pruning it waits the whole
        // --stop-timeout before the ladder's next step.
        let apply = try QemuctlBinary.Background(["apply", "-f", w.dir.file("vms"), "--prune", "--stop-timeout", "60", "--parallel", "1"],
                                                 environment: w.env)
        defer { apply.kill() }
        for _ in 0..<300 where !(apply.out.contains("Plan:")) { try await Task.sleep(for: .milliseconds(100)) }
        try await Task.sleep(for: .seconds(2))
        apply.send(SIGINT)
        for _ in 0..<100 where !apply.err.contains("interrupted") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(apply.err.contains("interrupt again to exit at once"), "\(apply.err)")
        let clock = ContinuousClock()
        let second = clock.now
        apply.send(SIGINT)
        let status = await apply.exitStatus(timeout: .seconds(20))
        #expect(status == 130, "\(apply.out)\(apply.err)")
        #expect(clock.now - second < .seconds(10), "the second interrupt did not wait for the 60 s stop")
        // Whatever was cut short, the next apply converges.
        let again = try await w.qemuctl("apply", "-f", w.dir.file("vms"), "--prune", "--stop-timeout", "1")
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(w.pid("doomed") == nil)
        #expect(w.pid("keep") != nil)
    }
}
