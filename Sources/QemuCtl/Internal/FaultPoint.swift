#if DEBUG
import Synchronization
#endif

/// Places in `apply` and `delete` where a test can make qemuctl die, to prove that
/// the next run converges whatever moment a crash hits (the kill matrix,
/// `Tests/QemuCtlCLITests/KillMatrixTests.swift`). This enum is the one list of them.
///
/// Only debug builds (what the tests run) look at the environment:
/// `QEMUCTL_FAULT=POINT` kills the process with SIGKILL the first time it reaches
/// `POINT` (its raw value), `QEMUCTL_FAULT=POINT:N` the N-th time.
/// `QEMUCTL_FAULT_ACTION=stop` stops it with SIGSTOP instead, so a test can hold
/// it there (for example holding the state directory's lock) and kill it itself.
/// In release builds ``hit(_:)`` does nothing.
package enum FaultPoint: String, Sendable, CaseIterable {
    /// `apply`/`delete` holds the state directory's lock and has not planned yet.
    case afterLock = "after-lock"
    /// `qemu-img` created a disk image declared with `create:`.
    case afterDiskCreate = "after-disk-create"
    /// The launch record exists (written before QEMU starts), QEMU does not yet.
    case beforeSpawn = "before-spawn"
    /// QEMU daemonized and wrote its pid file; the record does not have its pid yet (the
    /// moments before ``StartOptions/onSpawn`` writes it; the next lock holder completes it,
    /// `StateStore.completeInterruptedLaunches()`).
    case spawnedUnrecorded = "spawned-unrecorded"
    /// QEMU daemonized and wrote its pid file; QMP not connected, nothing set up.
    case afterSpawn = "after-spawn"
    /// QEMU runs and is set up (passwords), the record is not yet updated with its pid.
    case beforeRecord = "before-record"
    /// The record with the pid is written; NIC links and `cont` are not done yet.
    case afterRecord = "after-record"
    /// Everything is set up but the vCPUs have not been continued (`cont`).
    case beforeCont = "before-cont"
    /// The run state was read back and matches; the journal's last line is not written.
    case afterVerify = "after-verify"
    /// Half of a journal line is written.
    case midJournalWrite = "mid-journal-write"
    /// A state file's temporary copy is written and synced, not yet renamed over the file.
    case midStateWrite = "mid-state-write"
    /// A restart stopped the old QEMU and has not launched the new one.
    case restartAfterStop = "restart-after-stop"
    /// A delete stopped QEMU and has not removed the runtime files.
    case deleteAfterStop = "delete-after-stop"

    /// Dies here when the environment selects this point (debug builds only).
    @inline(__always)
    package static func hit(_ point: FaultPoint) {
        #if DEBUG
        FaultSelection.shared.hit(point)
        #endif
    }

    #if DEBUG
    /// Whether the environment selects this point (code that must prepare a torn
    /// write before reaching it asks first).
    package static func isSelected(_ point: FaultPoint) -> Bool { FaultSelection.shared.point == point }
    #endif
}

#if DEBUG
/// The point selected by `QEMUCTL_FAULT`, read once, and how often it was reached.
private final class FaultSelection: Sendable {
    static let shared = FaultSelection()

    let point: FaultPoint?
    let nth: Int
    let stop: Bool
    let hits = Atomic<Int>(0)

    init() {
        let spec = Posix.environmentValue("QEMUCTL_FAULT") ?? ""
        let parts = spec.split(separator: ":", maxSplits: 1)
        point = parts.first.flatMap { FaultPoint(rawValue: String($0)) }
        nth = parts.count > 1 ? Int(parts[1]) ?? 1 : 1
        stop = Posix.environmentValue("QEMUCTL_FAULT_ACTION") == "stop"
        if !spec.isEmpty && point == nil {
            // A misspelt point must not pass silently as "the run survived".
            Posix.writeStandardError("qemuctl: QEMUCTL_FAULT=\(spec) names no fault point\n")
            Posix.exitImmediately(99)
        }
    }

    func hit(_ p: FaultPoint) {
        guard p == point else { return }
        let n = hits.add(1, ordering: .sequentiallyConsistent).newValue
        guard n == nth else { return }
        Posix.writeStandardError("qemuctl: fault point \(p.rawValue) reached (hit \(n)); \(stop ? "stopping" : "killing") myself\n")
        Posix.signalSelf(stop ? Posix.sigstop : Posix.sigkill)
    }
}
#endif
