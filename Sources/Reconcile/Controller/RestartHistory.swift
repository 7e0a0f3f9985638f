package import Manifest

// MARK: - QEMUExit

/// How one QEMU ended, as `qemuctl controller` learned it.
package struct QEMUExit: Sendable, Hashable, Codable {
    /// Why it ended: QEMU's `SHUTDOWN` reason (`guest-shutdown`, `host-signal`, …) or the controller's
    /// words when none was seen ("killed or crashed: no SHUTDOWN event").
    package var reason: String
    /// Whether the guest itself shut down or powered off (`SHUTDOWN` with `guest: true`): a success
    /// for ``VirtualMachineSpec/RestartPolicy/onFailure``.
    package var byGuest: Bool
    /// When it was seen (seconds since the Unix epoch).
    package var at: Double

    /// Creates an exit.
    package init(reason: String, byGuest: Bool, at: Double) {
        self.reason = reason
        self.byGuest = byGuest
        self.at = at
    }
}

// MARK: - RestartHistory

/// The controller's memory of a VM's exits and restarts, kept in its record
/// (``StoredRecord/restarts``) so `get`, `describe` and the next controller see it.
package struct RestartHistory: Sendable, Hashable, Codable {
    /// Restarts the controller made (launches after an exit), in all.
    package var count: Int
    /// Restarts since the VM last stayed up ``RestartBackoff/resetAfter``; drives the backoff.
    package var consecutive: Int
    /// The last exit seen.
    package var lastExit: QEMUExit?
    /// When the last restart was made (seconds since the Unix epoch).
    package var lastRestartAt: Double?
    /// While a restart waits for its backoff: when it may happen (seconds since the Unix epoch).
    package var nextRestartAt: Double?
    /// Why the VM was left down, when the policy said so.
    package var leftDown: String?

    /// An empty history.
    package init(count: Int = 0, consecutive: Int = 0, lastExit: QEMUExit? = nil, lastRestartAt: Double? = nil,
                 nextRestartAt: Double? = nil, leftDown: String? = nil) {
        self.count = count
        self.consecutive = consecutive
        self.lastExit = lastExit
        self.lastRestartAt = lastRestartAt
        self.nextRestartAt = nextRestartAt
        self.leftDown = leftDown
    }
}

// MARK: - RestartBackoff

/// The delay before a restart: none for the first (a VM that dies once is replaced at once), then
/// 1 s, doubling with each further restart in a row, at most 5 min; a VM that stayed up 10 min
/// counts from the first again.
package enum RestartBackoff {
    /// The delay before the second restart in a row, in seconds (the first has none).
    package static let initial = 1.0
    /// The longest delay, in seconds.
    package static let maximum = 300.0
    /// How long a VM must stay up for its count of restarts in a row to start again, in seconds.
    package static let resetAfter = 600.0

    /// The delay before the next restart when `consecutive` restarts were made in a row: 0 s after
    /// none, then 1 s, 2 s, 4 s, … up to ``maximum``.
    package static func delay(afterConsecutive consecutive: Int) -> Double {
        guard consecutive > 0 else { return 0 }
        // 2^9 s already exceeds the maximum: no overflow for any count.
        return min(maximum, initial * Double(1 << min(consecutive - 1, 9)))
    }

    /// The count of restarts in a row once a QEMU that ran `uptime` seconds (unknown: `nil`) exited.
    package static func consecutive(_ previous: Int, uptime: Double?) -> Int {
        if let uptime, uptime >= resetAfter { return 0 }
        return previous
    }
}

// MARK: - RestartRules

/// What the controller does about a VM whose QEMU is gone while its manifest wants it running:
/// a pure function of the policy, the history and the clock.
package enum RestartRules {
    /// The decision for one VM.
    package enum Decision: Sendable, Hashable {
        /// Launch it now.
        case restart
        /// Launch it at this time (seconds since the Unix epoch), when its backoff ends.
        case wait(until: Double)
        /// Leave it down; the reason says which policy decided.
        case leaveDown(String)
    }

    /// Decides about a VM whose QEMU exited (`exit`), under `policy`, with `history` so far.
    ///
    /// - Parameters:
    ///   - startedAt: When the QEMU that exited had started (the record's start time), for the reset rule.
    ///   - now: The time (seconds since the Unix epoch).
    /// - Returns: The decision and the history updated with it (the exit, the reset count and the
    ///   time the backoff ends); the caller saves the history and, after a restart, calls ``restarted(_:at:)``.
    package static func decide(policy: VirtualMachineSpec.RestartPolicy, exit: QEMUExit, startedAt: Double?,
                               history: RestartHistory, now: Double) -> (Decision, RestartHistory) {
        var h = history
        let newExit = h.lastExit != exit
        h.lastExit = exit
        switch policy {
        case .never:
            h.nextRestartAt = nil
            h.leftDown = "restartPolicy never"
            return (.leaveDown(h.leftDown!), h)
        case .onFailure where exit.byGuest:
            h.nextRestartAt = nil
            h.leftDown = "the guest shut down by itself (restartPolicy onFailure)"
            return (.leaveDown(h.leftDown!), h)
        case .onFailure, .always:
            h.leftDown = nil
            if newExit || h.nextRestartAt == nil {
                h.consecutive = RestartBackoff.consecutive(h.consecutive, uptime: startedAt.map { exit.at - $0 })
                h.nextRestartAt = exit.at + RestartBackoff.delay(afterConsecutive: h.consecutive)
            }
            let due = h.nextRestartAt!
            return (now >= due ? .restart : .wait(until: due), h)
        }
    }

    /// The history after a restart made at `now`: one more restart, in a row too, no backoff pending.
    package static func restarted(_ history: RestartHistory, at now: Double) -> RestartHistory {
        var h = history
        h.count += 1
        h.consecutive += 1
        h.lastRestartAt = now
        h.nextRestartAt = nil
        h.leftDown = nil
        return h
    }

    /// The history after a restart at `now` failed to launch QEMU: counted like an exit at once, so the
    /// next attempt backs off further.
    package static func launchFailed(_ history: RestartHistory, reason: String, at now: Double) -> RestartHistory {
        var h = restarted(history, at: now)
        h.lastExit = QEMUExit(reason: "launch failed: \(reason)", byGuest: false, at: now)
        h.nextRestartAt = now + RestartBackoff.delay(afterConsecutive: h.consecutive)
        return h
    }
}
