#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import QemuCtl

/// Why a VM's last QEMU is gone: the one place an exit is put together, from what each witness
/// left behind.
///
/// - The keeper that waits for QEMU (``Posix/spawnDetached(_:_:environment:logPath:)``) appends one
///   line to `qemu.log` when QEMU ends: its exit status or the signal that ended it.
/// - QEMU itself writes `terminating on signal N from pid P` there when a signal asked it to quit,
///   and assertion failures before an abort.
/// - `qemuctl controller` records the last `SHUTDOWN` event (``RestartHistory/lastExit``), which says
///   whether the guest powered off.
///
/// `qemu.log` is kept until the VM's next launch; the launch copies the exit into the record
/// (``RestartHistory/lastExit``) first. A QEMU that a library caller started (`-daemonize`, no
/// keeper) or that was adopted has no keeper line: only a recorded `SHUTDOWN` can tell.
///
/// The record's ``RestartHistory/lastExit`` is the one durable home of an exit; this type only
/// reads the witnesses, it never writes.
package struct ExitReport: Sendable, Hashable {
    /// One line: "QEMU was killed by SIGABRT", "the guest powered off (SHUTDOWN guest-shutdown)".
    package var summary: String
    /// A few words for `get`: "killed by SIGABRT", "guest powered off", "exited with status 1".
    package var short: String
    /// QEMU's exit status when it exited by itself; nil when a signal ended it or it is unknown.
    package var exitStatus: Int?
    /// The signal that ended QEMU (`SIGABRT`); nil when it exited or it is unknown.
    package var signal: String?
    /// The last `SHUTDOWN` event's reason as the controller saw it ("SHUTDOWN guest-shutdown (by the
    /// guest)"), or QEMU's own "terminating on signal" line; nil when nobody saw one.
    package var shutdownReason: String?
    /// Whether the guest itself shut down (a success for `restartPolicy: onFailure`).
    package var byGuest: Bool
    /// When the exit was seen (seconds since the Unix epoch), when known.
    package var at: Double?
    /// The last lines QEMU wrote (`qemu.log`), the keeper's line left out.
    package var logTail: [String]
    /// `qemu.log`'s path.
    package var logPath: String

    /// The marker that starts the keeper's line in `qemu.log`.
    package static let keeperMarker = "qemuctl-keeper: "

    /// The exit of VM `name`'s last QEMU, or nil when nothing says it exited (no keeper line, no
    /// recorded exit since its last start).
    ///
    /// Call it only for a VM whose QEMU is gone: a running QEMU's log has no keeper line, but the
    /// controller's record of an earlier exit would be taken for this one.
    /// - Parameter tailLines: How many of QEMU's last lines to keep.
    package static func read(layout: RuntimeLayout, record: StoredRecord?, tailLines: Int = 10) -> ExitReport? {
        var lines = String(decoding: tail(of: layout.qemuLog), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if lines.count > 1, Posix.sizeAndModificationTime(layout.qemuLog).map({ $0.size > tailBytes }) == true {
            lines.removeFirst()  // cut mid-line by the window
        }
        var keeper: [String: String] = [:]
        var qemuLines: [String] = []
        for line in lines {
            if line.hasPrefix(keeperMarker) {
                keeper = [:]
                for field in line.dropFirst(keeperMarker.count).split(separator: " ") {
                    let kv = field.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { keeper[String(kv[0])] = String(kv[1]) }
                }
            } else {
                qemuLines.append(line)
            }
        }
        // The controller's SHUTDOWN for this QEMU (seen after its start), and QEMU's own words.
        let started = record?.startedAt ?? 0
        let recorded = record?.restarts?.lastExit.flatMap { $0.at >= started && !$0.reason.hasPrefix("launch failed") ? $0 : nil }
        let terminating = qemuLines.last { $0.contains("terminating on signal") }
            .map { line in line.firstRange(of: "terminating on signal").map { String(line[$0.lowerBound...]) } ?? line }
        guard !keeper.isEmpty || recorded != nil else { return nil }

        var report = ExitReport(summary: "", short: "", exitStatus: nil, signal: nil,
                                shutdownReason: recorded.flatMap { $0.reason.hasPrefix("SHUTDOWN") ? $0.reason : nil } ?? terminating,
                                byGuest: recorded?.byGuest ?? false,
                                at: keeper["time"].flatMap(Double.init) ?? recorded?.at,
                                logTail: Array(qemuLines.suffix(tailLines)), logPath: layout.qemuLog)
        if let number = keeper["signal"].flatMap(Int32.init) {
            let name = signalName(number)
            report.signal = name
            let core = keeper["core"] == "1" ? " (core dumped)" : ""
            report.summary = "QEMU was killed by \(name)\(core)"
            report.short = "killed by \(name)"
            if let terminating { report.summary += "; QEMU logged: \(terminating)" }
        } else if let code = keeper["status"].flatMap(Int.init) {
            report.exitStatus = code
            // qemuctl's own stop (`stop`, `delete`, a restart) is in the journal, after this QEMU's start.
            let stop = JournalLine.read(path: layout.runtimeDirectory + "/journal.log")
                .last { $0.at >= started && $0.text.hasPrefix("stopped") }
            if let stop, !report.byGuest {
                report.summary = "QEMU exited with status \(code): \(stop.text)"
                report.short = "stopped by qemuctl"
            } else if report.byGuest {
                report.summary = "the guest powered off (\(recorded!.reason)); QEMU exited with status \(code)"
                report.short = "guest powered off"
            } else if let reason = report.shutdownReason {
                report.summary = "QEMU exited with status \(code) after \(reason)"
                report.short = code == 0 ? "exited: \(shortReason(reason))" : "exited with status \(code)"
            } else {
                report.summary = "QEMU exited with status \(code)"
                    + (code == 0 ? " (a guest poweroff or a quit; no SHUTDOWN event was seen: no qemuctl controller followed it)" : "")
                report.short = "exited with status \(code)"
            }
        } else if let recorded {
            report.summary = recorded.byGuest ? "the guest powered off (\(recorded.reason))" : recorded.reason
            report.short = recorded.byGuest ? "guest powered off" : shortReason(recorded.reason)
        }
        return report
    }

    /// What the keeper wrote about the last QEMU of `layout` ("QEMU was killed by SIGKILL", "QEMU
    /// exited with status 1"), or nil when it wrote nothing (QEMU runs, or was started before keepers).
    package static func keeperSummary(_ layout: RuntimeLayout) -> String? {
        guard let report = read(layout: layout, record: nil, tailLines: 0) else { return nil }
        return report.signal != nil || report.exitStatus != nil ? report.summary : nil
    }

    /// How much of the end of `qemu.log` is read: the keeper's line is the last, QEMU's last words before it.
    static let tailBytes = 64 * 1024

    /// The last ``tailBytes`` of a regular file (empty when it cannot be read; never blocks on a FIFO).
    static func tail(of path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return [] }
        let count = Int(min(Int64(st.st_size), Int64(tailBytes)))
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(st.st_size) - off_t(count)) }
        return n > 0 ? Array(bytes.prefix(n)) : []
    }

    /// A `SHUTDOWN` reason in a few words: "SHUTDOWN host-qmp-quit" → "host-qmp-quit".
    static func shortReason(_ reason: String) -> String {
        var r = reason
        if r.hasPrefix("SHUTDOWN ") { r = String(r.dropFirst(9)) }
        if let paren = r.firstIndex(of: "(") { r = String(r[..<paren]) }
        if let colon = r.firstIndex(of: ";") { r = String(r[..<colon]) }
        let trimmed = Posix.trimmed(r)
        return trimmed.count > 40 ? String(trimmed.prefix(40)) + "…" : trimmed
    }

    /// `SIGABRT` for 6; `signal N` for one without a name here.
    package static func signalName(_ number: Int32) -> String {
        let names: [Int32: String] = [
            1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
            9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
            24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
        ]
        return names[number] ?? "signal \(number)"
    }
}
