import Foundation
import Manifest
import Testing
@testable import Reconcile

/// The controller's restart policy, backoff and plan gate as pure functions: no QEMU, no clock.
@Suite struct RestartPolicyTests {
    @Test func theFirstRestartIsImmediateThenBackoffDoublesFromOneSecondUpToFiveMinutes() {
        let delays = (0..<12).map { RestartBackoff.delay(afterConsecutive: $0) }
        #expect(delays == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300])
        #expect(RestartBackoff.delay(afterConsecutive: Int.max) == 300)
        #expect(RestartBackoff.delay(afterConsecutive: -3) == 0)
    }

    @Test func tenMinutesUpResetsTheCountInARow() {
        #expect(RestartBackoff.consecutive(5, uptime: 599) == 5)
        #expect(RestartBackoff.consecutive(5, uptime: 600) == 0)
        #expect(RestartBackoff.consecutive(5, uptime: nil) == 5)
    }

    @Test func neverLeavesEveryExitDown() {
        let kill = QEMUExit(reason: "killed", byGuest: false, at: 100)
        let (d, h) = RestartRules.decide(policy: .never, exit: kill, startedAt: 50, history: RestartHistory(), now: 200)
        #expect(d == .leaveDown("restartPolicy never"))
        #expect(h.lastExit == kill)
        #expect(h.nextRestartAt == nil)
    }

    @Test func onFailureRestartsACrashButNotAGuestPoweroff() {
        let poweroff = QEMUExit(reason: "SHUTDOWN guest-shutdown", byGuest: true, at: 100)
        let (d1, _) = RestartRules.decide(policy: .onFailure, exit: poweroff, startedAt: 50, history: RestartHistory(), now: 200)
        guard case .leaveDown = d1 else { Issue.record("a guest poweroff was restarted under onFailure: \(d1)"); return }
        let crash = QEMUExit(reason: "killed", byGuest: false, at: 100)
        let (d2, _) = RestartRules.decide(policy: .onFailure, exit: crash, startedAt: 50, history: RestartHistory(), now: 200)
        #expect(d2 == .restart)
        // always restarts a poweroff too.
        let (d3, _) = RestartRules.decide(policy: .always, exit: poweroff, startedAt: 50, history: RestartHistory(), now: 200)
        #expect(d3 == .restart)
    }

    @Test func restartsInARowWaitLongerAndTenMinutesUpForgivesThem() {
        var h = RestartHistory()
        var waits: [Double] = []
        var t = 1000.0
        for _ in 0..<5 {
            // QEMU ran 2 s, then exited; decided at the moment of the exit: the first restart at
            // once, each later one in a row after a wait.
            let exit = QEMUExit(reason: "crash", byGuest: false, at: t)
            let (d, next) = RestartRules.decide(policy: .always, exit: exit, startedAt: t - 2, history: h, now: t)
            guard let until = next.nextRestartAt else { Issue.record("no restart time decided"); return }
            waits.append(until - t)
            if until > t {
                #expect(d == .wait(until: until))
                // Deciding again before the backoff ends keeps the same time (no reset by re-deciding).
                let (again, _) = RestartRules.decide(policy: .always, exit: exit, startedAt: t - 2, history: next, now: t + 0.1)
                #expect(again == .wait(until: until))
            } else {
                #expect(d == .restart)
            }
            let (due, _) = RestartRules.decide(policy: .always, exit: exit, startedAt: t - 2, history: next, now: until)
            #expect(due == .restart)
            h = RestartRules.restarted(next, at: until)
            t = until + 2
        }
        #expect(waits == [0, 1, 2, 4, 8])
        #expect(h.count == 5)
        // Up for ten minutes: the next restart is a first one again, at once.
        let late = QEMUExit(reason: "crash", byGuest: false, at: t + 700)
        let (d, after) = RestartRules.decide(policy: .always, exit: late, startedAt: t, history: h, now: t + 700)
        #expect(d == .restart)
        #expect(after.consecutive == 0)
        #expect(after.count == 5)
    }

    @Test func aFailedLaunchBacksOffFurther() {
        let h = RestartRules.launchFailed(RestartHistory(consecutive: 2), reason: "QEMU refused", at: 50)
        #expect(h.consecutive == 3)
        #expect(h.nextRestartAt == 54)
        #expect(h.lastExit?.reason == "launch failed: QEMU refused")
    }

    @Test func theGateTakesOutOnlyDeathsThePolicyRefuses() {
        let running = vm("a") { $0.restartPolicy = .never }
        let always = vm("b") { $0.restartPolicy = .always }
        let fresh = vm("c")
        var stoppedSpec = baseSpec()
        stoppedSpec.runState = .stopped
        let started = vm("d")
        let record = { (spec: VirtualMachineSpec) in LaunchRecord(uuid: fixtureUUID, spec: spec) }
        let observed: [String: ObservedVM] = [
            "a": ObservedVM(name: "a", liveness: .gone, record: record(running.spec)),
            "b": ObservedVM(name: "b", liveness: .gone, record: record(always.spec)),
            // d was stopped on purpose (its record says so): starting it is not a restart.
            "d": ObservedVM(name: "d", liveness: .gone, record: record(stoppedSpec)),
        ]
        let plan = Reconcile.plan(desired: [running, always, fresh, started], actual: Array(observed.values),
                                  options: PlanOptions(fingerprint: false))
        #expect(plan.vms.filter { $0.action == .create }.count == 4)
        let out = RestartGate.filter(plan, observed: observed, exits: [:], histories: [:], startedAt: ["a": 10, "b": 10],
                                     hostBootTime: nil, now: 100)
        #expect(out.decisions["a"]?.decision == .leaveDown("restartPolicy never"))
        // An exit nobody saw happened "now"; b's first death is let through at once.
        #expect(out.plan.vms.map(\.name) == ["b", "c", "d"])
        #expect(out.decisions["b"]?.decision == .restart)
        // Dead again a second after that restart: now it waits its first second.
        let restarted = RestartRules.restarted(out.decisions["b"]!.history, at: 100)
        let again = RestartGate.filter(plan, observed: observed, exits: [:], histories: ["b": restarted],
                                       startedAt: ["a": 10, "b": 101], hostBootTime: nil, now: 102)
        #expect(again.decisions["b"]?.decision == .wait(until: 103))
        #expect(again.plan.vms.map(\.name) == ["c", "d"])
        // Once its second is over, it is let through.
        let later = RestartGate.filter(plan, observed: observed, exits: [:], histories: ["b": again.decisions["b"]!.history],
                                       startedAt: ["a": 10, "b": 101], hostBootTime: nil, now: 103)
        #expect(later.plan.vms.map(\.name) == ["b", "c", "d"])
        #expect(out.decisions["c"] == nil && out.decisions["d"] == nil)
        // At the controller's start, a VM that went down with the host comes back whatever its policy.
        let boot = RestartGate.filter(plan, observed: observed, exits: [:], histories: [:], startedAt: ["a": 10, "b": 10],
                                      hostBootTime: 50, now: 100)
        #expect(boot.plan.vms.map(\.name) == ["a", "b", "c", "d"])
    }

    @Test func oldRecordsWithoutTheNewFieldsStillDecode() throws {
        // A record written before restartPolicy and restarts existed.
        var spec = VirtualMachineSpec()
        spec.restartPolicy = nil
        let old = StoredRecord(launch: LaunchRecord(uuid: fixtureUUID, spec: spec))
        let data = try JSONEncoder().encode(old)
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("restartPolicy") && !text.contains("\"restarts\""))
        let back = try JSONDecoder().decode(StoredRecord.self, from: data)
        #expect(back.restarts == nil)
        #expect(back.launch.spec.effectiveRestartPolicy == .never)
    }
}
