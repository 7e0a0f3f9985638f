#if canImport(Glibc)
import Glibc
#endif
import CSocketShims

// MARK: - ProcessIdentity

/// What proves that a process is the QEMU a launch record names: its pid, its start
/// time and its executable, as the kernel reports them.
///
/// A pid alone is not proof (pids are reused), and neither is anything on a command line
/// (every user can read every process's argv in `ps`, and can start a program whose argv
/// holds a VM's uuid or socket path). The kernel's facts are: the start time in
/// `/proc/PID/stat` (field 22, clock ticks since boot), which a reused pid does not keep;
/// `/proc/PID/exe`, the binary the process runs, which no argument changes; and, for a
/// socket, the credentials of the process that listens on it (`SO_PEERCRED`). A monitor
/// socket is trusted, and a signal sent, only after ``disproof(peerPID:peerUID:)`` or
/// ``disproof(servingSocket:)`` found nothing against the recorded identity.
public struct ProcessIdentity: Sendable, Hashable, Codable {
    /// The process id.
    public var pid: Int32
    /// The start time: `/proc/PID/stat` field 22 (clock ticks after boot).
    public var startTime: UInt64
    /// The executable the process runs (`/proc/PID/exe`), as it resolved at launch.
    public var executable: String

    /// Creates an identity from recorded values.
    public init(pid: Int32, startTime: UInt64, executable: String) {
        self.pid = pid
        self.startTime = startTime
        self.executable = executable
    }

    /// The identity of the live process `pid`, read from `/proc`; `nil` when the process
    /// is gone, a zombie, or its files cannot be read.
    public static func current(pid: Int32) -> ProcessIdentity? {
        guard pid > 0, let start = startTime(of: pid), let exe = executable(of: pid) else { return nil }
        return ProcessIdentity(pid: pid, startTime: start, executable: exe)
    }

    /// Why the process behind a connection (`peerPID` and `peerUID` from `SO_PEERCRED`)
    /// is not this one, or `nil` when it is proven to be: the peer runs as the effective
    /// user, has the recorded pid, was started at the recorded time, and runs the
    /// recorded executable.
    ///
    /// Not an error: a `nil` peer (the kernel did not say) is a reason, never a pass.
    public func disproof(peerPID: Int32?, peerUID: UInt32?) -> String? {
        guard let peerPID, let peerUID else { return "the kernel did not report the socket's peer (SO_PEERCRED)" }
        if peerUID != geteuid() { return "its peer runs as uid \(peerUID), not as this user (uid \(geteuid()))" }
        if peerPID != pid { return "its peer is pid \(peerPID), not the recorded pid \(pid)" }
        return disproofOfLiveProcess()
    }

    /// Why the recorded process is not alive as recorded (start time, executable), or
    /// `nil` when it is: for a signal to a process no connection vouches for.
    public func disproofOfLiveProcess() -> String? {
        guard let now = Self.current(pid: pid) else { return "pid \(pid) is not running" }
        if now.startTime != startTime {
            return "pid \(pid) was started at tick \(now.startTime), not at the recorded \(startTime) (the pid was reused)"
        }
        if now.executable != executable && now.executable != executable + " (deleted)" {
            return "pid \(pid) runs \(now.executable), not the recorded \(executable)"
        }
        return nil
    }

    /// Why the process listening on the unix socket `path` is not this one, or `nil` when
    /// it is. Connects without speaking (the listener's credentials are the kernel's
    /// answer to `SO_PEERCRED` even when QEMU is too wedged to accept), then hangs up.
    public func disproof(servingSocket path: String) -> String? {
        let peer = Self.listener(of: path)
        guard let peer else { return "nothing that answers for pid \(pid) listens on \(path)" }
        return disproof(peerPID: peer.pid, peerUID: peer.uid)
    }

    /// The pid and uid of the process listening on the unix socket `path` (`SO_PEERCRED`
    /// of a fresh connection), or `nil` when none can be reached within a second.
    public static func listener(of path: String) -> (pid: Int32, uid: UInt32)? {
        let fd = csock_unix_connect_timeout(path, 1_000_000)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var pid: pid_t = 0
        var uid: uid_t = 0
        guard csock_peer_credentials(fd, &pid, &uid) == 0, pid > 0 else { return nil }
        return (Int32(pid), UInt32(uid))
    }

    /// The start time of a live, non-zombie process (`/proc/PID/stat` field 22), or `nil`.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let bytes = Posix.readFile("/proc/\(pid)/stat", limit: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), close + 2 < bytes.count else { return nil }
        // Fields after the command name start at field 3 (state); the start time is field 22.
        let fields = bytes[(close + 2)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, fields[0].first != UInt8(ascii: "Z") else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// Whether ``executable`` is a QEMU system emulator (`qemu-system-*`, `qemu-kvm`).
    public var isQEMU: Bool { Self.isQEMU(executable: executable) }

    /// Whether an executable path names a QEMU system emulator (`qemu-system-*`, `qemu-kvm`,
    /// possibly marked ` (deleted)` after an upgrade).
    public static func isQEMU(executable: String) -> Bool {
        let base = executable.split(separator: "/").last.map(String.init) ?? ""
        return base.hasPrefix("qemu-system-") || base.hasPrefix("qemu-kvm")
    }

    /// Why process `pid` may not be signalled as the QEMU this identity names, or `nil` when it
    /// may: it is alive as recorded (``disproofOfLiveProcess()``), runs a QEMU system emulator
    /// and runs as the effective user.
    public func disproofAsSignalTarget() -> String? {
        guard isQEMU else { return "pid \(pid) runs \(executable), not a QEMU system emulator" }
        if let why = disproofOfLiveProcess() { return why }
        guard Posix.ownerAndMode("/proc/\(pid)")?.uid == geteuid() else { return "pid \(pid) does not run as this user" }
        return nil
    }

    /// The executable of a process (`/proc/PID/exe`), or `nil`.
    public static func executable(of pid: Int32) -> String? { Posix.executable(of: pid) }
}
