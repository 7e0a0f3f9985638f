#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Manifest
package import QemuCtl

/// One condition of a VM, in the KubeVirt spirit: a type, a tri-state status, a reason in one
/// CamelCase word and a sentence.
package struct VMCondition: Sendable, Hashable {
    /// `True`, `False` or `Unknown`, as Kubernetes spells them.
    package enum Status: String, Sendable, Hashable {
        /// The condition holds.
        case `true` = "True"
        /// It does not.
        case `false` = "False"
        /// Nobody can tell (QEMU does not answer, its exit was not seen).
        case unknown = "Unknown"
    }

    /// `Ready`, `Paused`, `Failed`, `RestartPending`.
    package var type: String
    /// Whether it holds.
    package var status: Status
    /// Why, in one word (`Running`, `PausedByUser`, `Killed`).
    package var reason: String
    /// Why, in a sentence.
    package var message: String
    /// When the status last changed (seconds since the Unix epoch), when known.
    package var lastTransitionTime: Double?

    /// Creates a condition.
    package init(type: String, status: Status, reason: String, message: String, lastTransitionTime: Double? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }
}

/// A line of a VM's journal (`journal.log`): when and what qemuctl did.
package struct JournalLine: Sendable, Hashable {
    /// When (seconds since the Unix epoch).
    package var at: Double
    /// What (`paused by qemuctl pause (QEMU reports paused)`).
    package var text: String

    /// The lines of VM `name`'s journal, oldest first (at most the first 1 MiB).
    package static func read(_ store: StateStore, name: String) -> [JournalLine] { read(path: store.journalPath(name)) }

    /// The lines of the journal at `path`, oldest first (at most the first 1 MiB).
    static func read(path: String) -> [JournalLine] {
        guard let bytes = Posix.readFile(path, limit: 1 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line -> JournalLine? in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let at = Posix.parseUTCTimestamp(String(parts[0])) else { return nil }
            return JournalLine(at: at, text: String(parts[1]))
        }
    }
}

/// The conditions `describe` shows, each computed by one function from what observation, the
/// record, the journal and the exit found.
package enum VMConditions {
    /// What a readiness probe (`spec.readiness`) found: passed or not, and what it saw.
    package typealias ProbeResult = (passed: Bool, detail: String)

    /// All four, in the order `describe` shows them.
    package static func all(_ vm: ObservedVM, record: StoredRecord?, journal: [JournalLine], exit: ExitReport?,
                            pendingFields: [String], readiness: ProbeResult? = nil) -> [VMCondition] {
        [ready(vm, record: record, journal: journal, readiness: readiness),
         paused(vm, record: record, journal: journal),
         failed(vm, exit: exit),
         restartPending(vm, fields: pendingFields)]
    }

    /// `Ready`: True when QEMU runs the guest (`running`) and its monitor answers, and — when the VM
    /// has a readiness probe — the probe passed.
    ///
    /// - Parameter readiness: The readiness probe's result for a VM with `spec.readiness`; nil when
    ///   it has none (then running and answering is ready). The `get` READY column should call this
    ///   function too, so both say the same.
    package static func ready(_ vm: ObservedVM, record: StoredRecord?, journal: [JournalLine],
                              readiness: ProbeResult? = nil) -> VMCondition {
        let since = lastRunningSince(record: record, journal: journal)
        switch vm.liveness {
        case .gone:
            return VMCondition(type: "Ready", status: .false, reason: vm.record?.spec.runState == .stopped ? "Stopped" : "NotRunning",
                               message: "QEMU is not running")
        case .unresponsive:
            if vm.monitorBusy == true {
                return VMCondition(type: "Ready", status: .unknown, reason: "MonitorBusy",
                                   message: "monitor busy (held by another client); QEMU runs but cannot be asked")
            }
            return VMCondition(type: "Ready", status: .unknown, reason: "Unresponsive", message: vm.detail ?? "QEMU does not answer")
        case .alive:
            let status = vm.live?.runStatus ?? .running
            guard status == .running else {
                return VMCondition(type: "Ready", status: .false, reason: status.satisfies(.paused) ? "Paused" : "NotRunning",
                                   message: "QEMU reports \(status.rawValue)")
            }
            if let readiness, !readiness.passed {
                return VMCondition(type: "Ready", status: .false, reason: "ReadinessProbeFailed", message: readiness.detail)
            }
            return VMCondition(type: "Ready", status: .true, reason: readiness == nil ? "Running" : "ReadinessProbePassed",
                               message: readiness?.detail ?? "the guest runs and QEMU's monitor answers", lastTransitionTime: since)
        }
    }

    /// `Paused`: True when QEMU's vCPUs are stopped with the guest intact; the reason says by whom
    /// (QEMU's run state, and the journal for qemuctl's own pauses).
    package static func paused(_ vm: ObservedVM, record: StoredRecord?, journal: [JournalLine]) -> VMCondition {
        guard vm.liveness == .alive, let status = vm.live?.runStatus else {
            return VMCondition(type: "Paused", status: vm.liveness == .gone ? .false : .unknown,
                               reason: vm.liveness == .gone ? "NotRunning" : "Unknown",
                               message: vm.liveness == .gone ? "QEMU is not running" : "QEMU's run state cannot be read")
        }
        let started = record?.startedAt ?? 0
        let recent = journal.filter { $0.at >= started }
        // qemuctl's last word on the run state since the start: a pause counts only if no resume followed it.
        let lastRunControl = recent.last { line in
            ["paused by ", "resumed by "].contains { line.text.hasPrefix($0) } || line.text.hasPrefix("running state=")
        }
        let pausedLine = lastRunControl.flatMap { line in
            line.text.hasPrefix("paused by ") || line.text == "running state=paused" || line.text == "running state=prelaunch" ? line : nil
        }
        let (reason, message): (String, String)
        switch status {
        case .running:
            let resumed = recent.last { $0.text.hasPrefix("resumed by ") || $0.text == "running state=running" }
            return VMCondition(type: "Paused", status: .false, reason: "Running", message: "the guest runs",
                               lastTransitionTime: resumed?.at ?? record?.startedAt)
        case .paused:
            if let line = pausedLine, line.text.hasPrefix("paused by ") {
                (reason, message) = ("PausedByUser", line.text)
            } else if pausedLine?.text == "running state=prelaunch" {
                (reason, message) = ("PausedAtLaunch", "launched paused (spec.runState paused) and not resumed since")
            } else if pausedLine != nil {
                (reason, message) = ("PausedBySpec", "spec.runState is paused (qemuctl apply)")
            } else {
                (reason, message) = ("PausedByClient", "paused by a QMP `stop` that qemuctl did not send (another client)")
            }
        case .prelaunch:
            (reason, message) = ("PausedAtLaunch", "launched paused (-S) and never resumed")
        case .ioError:
            (reason, message) = ("IOError", "QEMU stopped the guest on a disk I/O error (werror/rerror=stop)")
        case .guestPanicked:
            (reason, message) = ("GuestPanicked", "the guest panicked")
        case .suspended:
            (reason, message) = ("SuspendedByGuest", "the guest suspended itself to RAM (S3)")
        case .shutdown:
            (reason, message) = ("GuestShutdown", "the guest shut down; QEMU stays (-no-shutdown)")
        case .watchdog:
            (reason, message) = ("Watchdog", "the watchdog stopped the guest")
        case .debug:
            (reason, message) = ("Debugger", "stopped by the debugger (gdbstub)")
        case .internalError:
            (reason, message) = ("InternalError", "QEMU stopped the guest on an internal error")
        case .inmigrate, .postmigrate:
            (reason, message) = ("Migration", "QEMU reports \(status.rawValue)")
        default:
            (reason, message) = ("Stopped", "QEMU reports \(status.rawValue)")
        }
        return VMCondition(type: "Paused", status: .true, reason: reason, message: message,
                           lastTransitionTime: pausedLine?.at ?? (status == .prelaunch ? record?.startedAt : nil))
    }

    /// `Failed`: True when QEMU is gone by something other than the guest's own shutdown, or the
    /// guest is dead inside a live QEMU (panicked, internal error); the message is the exit's.
    package static func failed(_ vm: ObservedVM, exit: ExitReport?) -> VMCondition {
        switch vm.liveness {
        case .alive:
            if let status = vm.live?.runStatus, status == .guestPanicked || status == .internalError {
                return VMCondition(type: "Failed", status: .true, reason: status == .guestPanicked ? "GuestPanicked" : "InternalError",
                                   message: "QEMU reports \(status.rawValue)")
            }
            return VMCondition(type: "Failed", status: .false, reason: "NoFailure", message: "QEMU runs")
        case .unresponsive:
            return VMCondition(type: "Failed", status: .unknown, reason: vm.monitorBusy == true ? "MonitorBusy" : "Unresponsive",
                               message: vm.monitorBusy == true ? "monitor busy (held by another client)" : (vm.detail ?? "QEMU does not answer"))
        case .gone:
            guard let exit else {
                if vm.record?.spec.runState == .stopped {
                    return VMCondition(type: "Failed", status: .false, reason: "Stopped", message: "stopped on purpose (spec.runState stopped)")
                }
                return VMCondition(type: "Failed", status: .unknown, reason: "ExitNotSeen",
                                   message: "QEMU is gone and nothing recorded how it ended")
            }
            if exit.byGuest || (exit.exitStatus == 0 && exit.signal == nil) {
                return VMCondition(type: "Failed", status: .false, reason: exit.byGuest ? "GuestShutdown" : "Exited",
                                   message: exit.summary, lastTransitionTime: exit.at)
            }
            return VMCondition(type: "Failed", status: .true, reason: exit.signal != nil ? "Killed" : "Exited",
                               message: exit.summary, lastTransitionTime: exit.at)
        }
    }

    /// `RestartPending`: True when a restart-class change waits (`apply --restart=never`); the
    /// message names the fields.
    package static func restartPending(_ vm: ObservedVM, fields: [String]) -> VMCondition {
        guard vm.restartPending else {
            return VMCondition(type: "RestartPending", status: .false, reason: "NoPendingChanges", message: "nothing waits for a restart")
        }
        return VMCondition(type: "RestartPending", status: .true, reason: "RestartClassChange",
                           message: fields.isEmpty ? "a change waits for a restart (`apply --restart=if-needed`)"
                               : "waiting for a restart: " + fields.joined(separator: ", "))
    }

    /// When the guest last started running: the last resume in the journal after the start, else the start.
    static func lastRunningSince(record: StoredRecord?, journal: [JournalLine]) -> Double? {
        let started = record?.startedAt ?? 0
        let resumed = journal.last { $0.at >= started && ($0.text.hasPrefix("resumed by ") || $0.text == "running state=running") }
        return resumed?.at ?? record?.startedAt
    }
}
