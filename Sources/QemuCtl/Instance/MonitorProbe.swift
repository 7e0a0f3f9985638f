#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says about a monitor socket and its QEMU, to explain a monitor
/// that does not answer.
///
/// QEMU serves one client at a time on each monitor socket. A second client's
/// `connect` succeeds (the kernel queues it) and then nothing arrives: no greeting
/// until the first client leaves. From the waiting side that looks exactly like a
/// hung QEMU. Linux tells the two apart: `/proc/net/unix` lists each connection QEMU
/// has *accepted* on the socket as connected (state 3) under the socket's path, while
/// a queued connection is still connecting (state 2, no inode).
package enum MonitorProbe {
    /// Why a monitor did not answer within its deadline.
    package enum Verdict: Sendable, Hashable {
        /// QEMU has accepted another client on the socket and serves it (it is busy).
        case busy(clients: Int)
        /// The QEMU process is stopped (SIGSTOP or a debugger) and answers nobody.
        case stopped(pid: Int32)
        /// Neither: QEMU's main loop is stuck, or the facts are not available.
        case unresponsive

        /// Whether the verdict is ``busy(clients:)``.
        package var isBusy: Bool { if case .busy = self { true } else { false } }
    }

    /// Explains a monitor at `socketPath` (owned by QEMU `pid`, when known) that gave
    /// no greeting in time. Call it after the deadline, while the caller's own
    /// connection is closed or still queued.
    package static func diagnose(socketPath: String, pid: Int32?) -> Verdict {
        if let pid, isStopped(pid) { return .stopped(pid: pid) }
        if let n = acceptedClients(of: socketPath), n > 0 { return .busy(clients: n) }
        return .unresponsive
    }

    /// How many connections the listener at `path` has accepted and still holds
    /// (`/proc/net/unix` entries with that path in state connected); `nil` when
    /// `/proc/net/unix` cannot be read.
    package static func acceptedClients(of path: String) -> Int? {
        guard let bytes = Posix.readFile("/proc/net/unix", limit: 64 << 20) else { return nil }
        // The kernel lists the path the socket was bound to, not a symbolic link to it.
        let bound = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var count = 0
        // "Num RefCount Protocol Flags Type St Inode Path": the path is everything after the 7th field.
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", maxSplits: 7, omittingEmptySubsequences: true)
            guard fields.count == 8, fields[7] == path[...] || fields[7] == bound[...] else { continue }
            if fields[5] == "03" && fields[6] != "0" { count += 1 }
        }
        return count
    }

    /// Whether process `pid` is stopped (`T`) or stopped by a tracer (`t`).
    package static func isStopped(_ pid: Int32) -> Bool {
        guard let bytes = Posix.readFile("/proc/\(pid)/stat", limit: 4096) else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        // The state follows the command name, which is in parentheses and may contain spaces.
        guard let close = text.lastIndex(of: ")") else { return false }
        let state = text[text.index(after: close)...].split(separator: " ").first
        return state == "T" || state == "t"
    }
}
