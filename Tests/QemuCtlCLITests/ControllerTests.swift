import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `qemuctl controller` against real QEMUs (TCG): launches, restart policies, manifest edits,
/// pruning, invalid manifests, backoff, the lock shared with `apply`, and SIGTERM.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct ControllerTests {
    /// A running controller over a workspace's manifests.
    private func controller(_ w: Workspace, _ extra: [String] = [], environment: [String: String] = [:]) throws
        -> QemuctlBinary.Background {
        try QemuctlBinary.Background(["controller", "-f", w.dir.file("vms"), "--resync", "2"] + extra,
                                     environment: w.env.merging(environment) { _, new in new })
    }

    /// Whether VM `name`'s QEMU (the pid in its pid file) runs; a zombie counts as gone.
    private func runs(_ w: Workspace, _ name: String) -> Bool {
        guard let pid = w.pid(name) else { return false }
        return alive(pid)
    }

    private func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    /// Waits until `condition` holds (checked every 50 ms); returns whether it did within `timeout`.
    private func eventually(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    private func throttleBPS(_ w: Workspace, _ vm: String, disk: String) async throws -> Int? {
        try await QMPClient.withConnection(to: "\(w.state)/\(vm).sock") { qmp in
            try await qmp.execute("qom-get", arguments: ["path": .string("/objects/tg-\(disk)"), "property": "limits"])["bps-total"]?.intValue
        }
    }

    @Test func launchesRestartsByPolicyAppliesEditsReportsErrorsAndEndsOnSIGTERM() async throws {
        let w = try Workspace("ctl1")
        defer { w.cleanUp() }
        let disk = """
              disks:
                - name: data
                  file: {path: \(w.dir.file("data.raw")), format: raw}
                  create: {size: 1MiB}
                  throttle: {bps: 10MiB}
            """
        try w.manifest("a", bareVM("a", extra: "  restartPolicy: always\n" + disk))
        try w.manifest("b", bareVM("b"))  // restartPolicy absent: never
        let ctl = try controller(w)
        defer { ctl.kill() }
        // Applied at start: both launched.
        #expect(await ctl.waitForLine { $0.contains("  a  created") } != nil, "\(ctl.out)\(ctl.err)")
        #expect(await ctl.waitForLine { $0.contains("  b  created") } != nil, "\(ctl.out)\(ctl.err)")
        let a1 = try #require(w.pid("a"))
        let b1 = try #require(w.pid("b"))

        // SIGKILL both: a (always) runs again within seconds, b (never) stays down.
        let killed = ContinuousClock.now
        kill(a1, SIGKILL)
        kill(b1, SIGKILL)
        #expect(await eventually { w.pid("a").map { $0 != a1 && alive($0) } ?? false }, "\(ctl.out)\(ctl.err)")
        let back = ContinuousClock.now - killed
        // Relaunched by the controller itself (no apply ran), at once (a first restart has no backoff);
        // its latency is measured by bench/controller. The bound only says "within a pass or two",
        // with room for a fully loaded test run (10.3 s was seen in one).
        #expect(back < .seconds(30), "a ran again only after \(back)")
        #expect(await ctl.waitForLine { $0.contains("  a  restarted") } != nil)
        #expect(await ctl.waitForLine { $0.contains("  b  exited") && $0.contains("left down: restartPolicy never") } != nil, "\(ctl.out)")
        // Still down after a resync (every 2 s).
        try await Task.sleep(for: .seconds(3))
        #expect(!runs(w, "b"))
        #expect(ctl.lines.filter { $0.contains("  b  exited") }.count == 1, "an exit is reported once: \(ctl.out)")
        let get = try await w.qemuctl("get", "-o", "json")
        #expect(get.out.contains(#""restarts" : 1"#) || get.out.contains(#""restarts":1"#), "\(get.out)")
        let describe = try await w.qemuctl("describe", "a")
        #expect(describe.out.contains("restartPolicy") && describe.out.contains("always"), "\(describe.out)")
        // (The follower sees the exit, unless the QEMU died before it attached: both say so.)
        #expect(describe.out.contains("lastExit") && describe.out.contains("killed or crashed"), "\(describe.out)")

        // An edited throttle is applied without an apply, and read back over QMP.
        #expect(try await throttleBPS(w, "a", disk: "data") == 10 << 20)
        let edited = ContinuousClock.now
        try w.manifest("a", bareVM("a", extra: "  restartPolicy: always\n" + disk.replacingOccurrences(of: "10MiB", with: "20MiB")))
        #expect(try await eventually { try await throttleBPS(w, "a", disk: "data") == 20 << 20 }, "\(ctl.out)\(ctl.err)")
        let applied = ContinuousClock.now - edited
        // Within a pass or two (bench/controller measures the latency: ~0.4 s); 13 s was seen under load.
        #expect(applied < .seconds(30), "the edit took \(applied)")
        #expect(await ctl.waitForLine { $0.contains("  a  updated") } != nil, "\(ctl.out)")
        // Drift no event reports (a throttle set over QMP by hand) is repaired by the resync (2 s here).
        let updates = ctl.lines.filter { $0.contains("  a  updated") }.count
        try await QMPClient.withConnection(to: "\(w.state)/a.sock") { qmp in
            let dev = try #require(try await qmp.queryBlock().first { $0.qdev?.contains("disk-data") == true }?.qdev)
            try await qmp.setIOThrottle(qdevID: dev, QMPIOThrottle(bps: 1_048_576))
        }
        let drift = try await w.qemuctl("diff", "-f", w.dir.file("vms"))
        // The diff sees the drift unless the controller's resync (every 2 s) repaired it first: under
        // a loaded run the diff can start after that pass, and then the repair must already be logged.
        let sawDrift = drift.out.contains("spec.disks[data].throttle.bps: 1MiB -> 20MiB")
        let repairedFirst = await eventually(.seconds(5)) { ctl.lines.filter { $0.contains("  a  updated") }.count > updates }
        #expect(sawDrift || repairedFirst, "\(drift.out)\n\(ctl.out)")
        #expect(await eventually { ctl.lines.filter { $0.contains("  a  updated") }.count > updates }, "\(ctl.out)")
        #expect(try await throttleBPS(w, "a", disk: "data") == 20 << 20)
        let repaired = try await w.qemuctl("diff", "-f", w.dir.file("vms"))
        // (b, left down by its policy, is the only difference left.)
        #expect(!repaired.out.contains("a: update") && repaired.out.contains("b: create"), "\(repaired.out)\(repaired.err)\n\(ctl.out)")

        // A manifest that does not parse is reported on stderr and changes nothing.
        let pidBefore = w.pid("a")
        try w.manifest("bad", "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: bad}\nspec:\n  memroy: {size: 1GiB}\n")
        #expect(await eventually { ctl.err.contains("bad.yaml:5:3: error: unknown key 'memroy'") }, "\(ctl.err)")
        #expect(await ctl.waitForLine { $0.contains("invalid") } != nil)
        #expect(w.pid("a") == pidBefore && runs(w, "a"))
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/bad"))
        try FileManager.default.removeItem(atPath: w.dir.file("vms/bad.yaml"))

        // A removed manifest without --prune: its VM is left alone (record kept).
        try FileManager.default.removeItem(atPath: w.dir.file("vms/b.yaml"))
        #expect(await ctl.waitForLine { $0.contains("changed: b.yaml") } != nil, "\(ctl.out)")
        #expect(FileManager.default.fileExists(atPath: "\(w.state)/b/record.json"))

        // SIGTERM: status 0, and the VMs keep running.
        let aPid = try #require(w.pid("a"))
        ctl.send(SIGTERM)
        #expect(await ctl.exitStatus(timeout: .seconds(15)) == 0, "\(ctl.err)")
        #expect(ctl.lines.last?.contains("stopped") == true)
        try await Task.sleep(for: .milliseconds(300))
        #expect(alive(aPid))

        // With --prune, a removed manifest's VM is deleted; its disk image is kept.
        // (A VM without an OS ignores the ACPI power button: the stop ladder escalates after 1 s.)
        let pruning = try controller(w, ["--prune", "--stop-timeout", "1"])
        defer { pruning.kill() }
        #expect(await pruning.waitForLine { $0.contains("  b  deleted") } != nil, "\(pruning.out)\(pruning.err)")
        // (A directory with no manifest at all is refused, as apply refuses it: c keeps one there.)
        try w.manifest("c", bareVM("c", runState: "stopped"))
        #expect(await pruning.waitForLine { $0.contains("changed: c.yaml") } != nil, "\(pruning.out)\(pruning.err)")
        try FileManager.default.removeItem(atPath: w.dir.file("vms/a.yaml"))
        #expect(await pruning.waitForLine { $0.contains("  a  deleted") } != nil, "\(pruning.out)\(pruning.err)")
        #expect(await eventually { !alive(aPid) })
        #expect(FileManager.default.fileExists(atPath: w.dir.file("data.raw")))
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/a"))
        pruning.send(SIGINT)
        #expect(await pruning.exitStatus(timeout: .seconds(15)) == 0)
    }

    @Test func aGuestPoweroffUnderOnFailureStaysDownAndACrashLoopBacksOff() async throws {
        let w = try Workspace("ctl2")
        defer { w.cleanUp() }
        let guest = { (name: String, policy: String) in
            """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: \(name)}
            spec:
              restartPolicy: \(policy)
              machine: {type: q35, accel: tcg}
              memory: {size: 128MiB}
              boot:
                kernel: \(Fixtures.guestKernel)
                initrd: \(Fixtures.guestInitrd)
                cmdline: "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check guest.poweroff=1"
            """
        }
        // Both guests power off right after they boot.
        try w.manifest("once", guest("once", "onFailure"))
        try w.manifest("loop", guest("loop", "always"))
        let ctl = try controller(w)
        defer { ctl.kill() }
        #expect(await ctl.waitForLine(timeout: .seconds(60)) {
            $0.contains("  once  exited") && $0.contains("by the guest") && $0.contains("left down")
        } != nil, "\(ctl.out)\(ctl.err)")
        // The loop's first restart is at once; each one after it in a row waits longer: 1 s, 2 s, 4 s.
        #expect(await ctl.waitForLine(timeout: .seconds(90)) { $0.contains("  loop  restarted  restart 4") } != nil, "\(ctl.out)\(ctl.err)")
        let exited = ctl.lines.filter { $0.contains("  loop  exited") }
        #expect(exited.first.map { !$0.contains("restart in") } == true, "the first restart waited: \(exited)")
        let waits = exited.compactMap { line -> Double? in
            guard let r = line.range(of: "restart in ") else { return nil }
            return Double(line[r.upperBound...].prefix { $0 != " " })
        }
        #expect(waits.count >= 3, "\(ctl.out)")
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 < $1 }, "backoff did not grow: \(waits)")
        #expect((waits.last ?? 0) >= 3, "\(waits)")
        // The onFailure guest was never launched again.
        #expect(!ctl.out.contains("once  restarted"))
        #expect(!runs(w, "once"))
        // The record takes the restart history after the pass that relaunched the VM: a describe
        // in between sees the fresh launch, so look again for a few seconds.
        var describe = try await w.qemuctl("describe", "loop")
        for _ in 0..<50 where !describe.out.contains("SHUTDOWN guest-shutdown") {
            try await Task.sleep(for: .milliseconds(200))
            describe = try await w.qemuctl("describe", "loop")
        }
        #expect(describe.out.contains("SHUTDOWN guest-shutdown"), "\(describe.out)")
        ctl.send(SIGTERM)
        #expect(await ctl.exitStatus(timeout: .seconds(15)) == 0)
    }

    @Test func anApplyByHandTakesTurnsWithTheController() async throws {
        let w = try Workspace("ctl3")
        defer { w.cleanUp() }
        try w.manifest("l", bareVM("l"))
        // The controller stops itself (SIGSTOP) holding the lock in its second pass.
        let ctl = try controller(w, ["--resync", "60"], environment: ["QEMUCTL_FAULT": "after-lock:2", "QEMUCTL_FAULT_ACTION": "stop"])
        defer { ctl.kill() }
        #expect(await ctl.waitForLine { $0.contains("  l  created") } != nil, "\(ctl.out)\(ctl.err)")
        try w.manifest("m", bareVM("m"))
        #expect(await eventually { ctl.err.contains("fault point after-lock reached") }, "\(ctl.err)")
        // An apply by hand now waits for the controller's pass …
        let vms = w.dir.file("vms")
        let hand = Task { try await w.qemuctl("apply", "-f", vms, "--lock-wait", "60") }
        try await Task.sleep(for: .seconds(1))
        #expect(w.qemus().count == 1, "the hand apply went ahead while the controller held the lock")
        kill(ctl.pid, SIGCONT)
        let result = try await hand.value
        #expect(result.status == 0, "\(result.out)\(result.err)")
        #expect(result.err.contains("another qemuctl (pid \(ctl.pid))"), "\(result.err)")
        // … and both end consistent: one QEMU per VM, nothing left to do.
        // (m is launched by whichever pass comes first; the other finds nothing to do.)
        #expect(await eventually { w.qemus().count == 2 }, "\(ctl.out)\(ctl.err)")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)

        // The other way round: the controller waits for a hand apply that holds the lock.
        let stopped = try QemuctlBinary.Background(["apply", "-f", vms], environment: w.env.merging(
            ["QEMUCTL_FAULT": "after-lock", "QEMUCTL_FAULT_ACTION": "stop"]) { _, new in new })
        defer { stopped.kill() }
        #expect(await eventually { stopped.err.contains("fault point after-lock reached") }, "\(stopped.err)")
        try w.manifest("n", bareVM("n"))
        #expect(await ctl.waitForLine { $0.contains("waiting") && $0.contains("pid \(stopped.pid)") } != nil, "\(ctl.out)")
        kill(stopped.pid, SIGCONT)
        #expect(await stopped.exitStatus(timeout: .seconds(30)) == 0, "\(stopped.err)")
        // (n is launched by the hand apply or by the controller's next pass, whichever plans first.)
        #expect(await eventually { w.pid("n").map(alive) ?? false }, "\(ctl.out)")
        #expect(await eventually { w.qemus().count == 3 })
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
        // SIGHUP: a pass that re-reads everything.
        ctl.send(SIGHUP)
        #expect(await ctl.waitForLine { $0.contains("in-sync") && $0.contains("SIGHUP") } != nil, "\(ctl.out)")
        ctl.send(SIGTERM)
        #expect(await ctl.exitStatus(timeout: .seconds(15)) == 0)
    }
}
