package import Manifest

/// Which VMs of a plan are launches after a death, and what the restart policy makes of them.
///
/// The planner plans ``VMPlan/Action/create`` for every declared VM whose QEMU is gone, as `apply`
/// wants. The controller lets through the launches of new VMs and of VMs the record says were
/// stopped on purpose, and passes each *death* (recorded as running or paused, QEMU gone) through
/// ``RestartRules``.
package enum RestartGate {
    /// What the gate decided for one plan.
    package struct Outcome: Sendable {
        /// The plan with the launches the policy does not allow (yet) taken out.
        package var plan: Plan
        /// Per dead VM: the decision and the history to save.
        package var decisions: [String: (decision: RestartRules.Decision, history: RestartHistory)]
    }

    /// Whether `vm` is a launch after its QEMU died (rather than a first launch or a start after a stop).
    package static func isDeath(_ vm: VMPlan, observed: ObservedVM?) -> Bool {
        guard vm.action == .create, let o = observed, o.ownership == .managed, o.liveness == .gone,
              let record = o.record else { return false }
        return record.spec.runState != .stopped
    }

    /// Passes every death of `plan` through ``RestartRules``.
    ///
    /// - Parameters:
    ///   - observed: What observation found, by name.
    ///   - exits: Exits seen since the last pass (from the follower monitors), by name.
    ///   - histories: The restart histories so far, by name.
    ///   - startedAt: The recorded start time of each VM's last QEMU, by name.
    ///   - hostBootTime: When this host booted (seconds since the Unix epoch), or `nil` to not apply the
    ///     boot rule: a VM whose QEMU started before the host booted went down with the host, and is
    ///     launched like `apply` would, whatever its policy (VMs come back at boot).
    ///   - now: The time (seconds since the Unix epoch).
    package static func filter(_ plan: Plan, observed: [String: ObservedVM], exits: [String: QEMUExit],
                               histories: [String: RestartHistory], startedAt: [String: Double],
                               hostBootTime: Double?, now: Double) -> Outcome {
        var decisions: [String: (decision: RestartRules.Decision, history: RestartHistory)] = [:]
        let kept = plan.vms.filter { vm in
            guard isDeath(vm, observed: observed[vm.name]), let desired = vm.desired else { return true }
            let started = startedAt[vm.name]
            if let hostBootTime, let started, started < hostBootTime { return true }
            let history = histories[vm.name] ?? RestartHistory()
            // The exit seen by the follower, else the one recorded for this QEMU, else an unexplained one.
            let exit: QEMUExit
            if let seen = exits[vm.name] {
                exit = seen
            } else if let last = history.lastExit, last.at >= (started ?? 0) {
                exit = last
            } else {
                exit = QEMUExit(reason: "QEMU is gone; its exit was not seen (killed or crashed while nobody followed it)",
                                byGuest: false, at: now)
            }
            let (decision, updated) = RestartRules.decide(policy: desired.spec.effectiveRestartPolicy, exit: exit,
                                                         startedAt: started, history: history, now: now)
            decisions[vm.name] = (decision, updated)
            return decision == .restart
        }
        let filtered = Plan(prune: plan.prune, restart: plan.restart, actualFingerprint: plan.actualFingerprint, vms: kept)
        return Outcome(plan: filtered, decisions: decisions)
    }
}
