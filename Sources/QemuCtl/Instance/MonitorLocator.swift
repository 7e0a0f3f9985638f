#if canImport(Glibc)
import Glibc
#endif

/// Where a running QEMU's QMP monitors are, read from its command line and `/proc`.
///
/// A monitor given by path (`-qmp unix:PATH`, `-chardev socket,path=PATH` + `-mon mode=control`) is
/// taken as written. A monitor whose listening socket QEMU inherited as a descriptor
/// (`-chardev socket,id=X,fd=N,server=on` + `-mon chardev=X,mode=control`, the way libvirt starts
/// QEMU) is found through `/proc/PID/fd/N` (`socket:[INODE]`) and the kernel's table of unix
/// sockets, `/proc/net/unix`, which names the path the socket is bound to.
///
/// libvirt's own monitor (chardev id `charmonitor`, under a `…/libvirt/qemu/domain-…` directory)
/// is held by libvirtd for the VM's whole life, and QEMU serves one client per monitor: such a
/// monitor is reported in ``libvirtMonitors``, not in ``paths``, so nobody waits on it.
package struct MonitorLocator: Sendable, Equatable {
    /// Monitors a client can use, in command-line order.
    package var paths: [String] = []
    /// Monitors held by libvirtd (found, but not usable).
    package var libvirtMonitors: [String] = []
    /// The paths in ``paths`` whose listening socket QEMU inherited. Their `SO_PEERCRED` names
    /// whichever process last called `listen(2)` on it (the parent that created it, until QEMU
    /// listens again), so the peer pid proves nothing there: that `/proc/PID/fd` holds the
    /// socket's inode is the proof that it is this QEMU's.
    package var inheritedPaths: Set<String> = []
    /// The libvirt domain name when libvirt manages this QEMU (`-name guest=NAME` on a QEMU whose
    /// command line or monitor lives in libvirt's per-domain directory).
    package var libvirtDomain: String?
    /// Monitors passed as descriptors whose socket could not be found (not a unix socket, or
    /// `/proc/PID/fd` not readable by this user).
    package var unresolvedDescriptors: [Int32] = []

    /// Reads the monitors of process `pid` with command line `argv`.
    package init(pid: Int32, argv: [String]) {
        let reader = QEMUCommandLineReader(arguments: argv)
        var inodes: [UInt64: Int32] = [:]
        for fd in reader.qmpSocketDescriptors {
            if let inode = Self.socketInode(pid: pid, fd: fd) { inodes[inode] = fd } else { unresolvedDescriptors.append(fd) }
        }
        let bound = inodes.isEmpty ? [:] : Self.unixSocketPaths(inodes: Set(inodes.keys))
        for (inode, fd) in inodes.sorted(by: { $0.value < $1.value }) where bound[inode] == nil { unresolvedDescriptors.append(fd) }
        let underLibvirt = argv.contains { $0.contains("/libvirt/qemu/domain-") }
        for monitor in reader.monitors {
            let path: String
            var inherited = false
            switch monitor.source {
            case .path(let p): path = p
            case .descriptor(let fd):
                guard let inode = inodes.first(where: { $0.value == fd })?.key, let p = bound[inode] else { continue }
                path = p
                inherited = true
            }
            if monitor.chardevID == "charmonitor" && (underLibvirt || path.contains("/libvirt/qemu/")) {
                libvirtMonitors.append(path)
            } else {
                paths.append(path)
                if inherited { inheritedPaths.insert(path) }
            }
        }
        if !libvirtMonitors.isEmpty || underLibvirt { libvirtDomain = reader.name ?? "?" }
    }

    /// The inode of the socket behind `/proc/PID/fd/FD` (`socket:[INODE]`), or `nil`.
    static func socketInode(pid: Int32, fd: Int32) -> UInt64? {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/\(pid)/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard target.hasPrefix("socket:["), target.hasSuffix("]") else { return nil }
        return UInt64(target.dropFirst(8).dropLast())
    }

    /// The bound paths of the unix sockets with these inodes, from `/proc/net/unix`
    /// (`Num RefCount Protocol Flags Type St Inode Path`; abstract names, `@…`, are skipped).
    static func unixSocketPaths(inodes: Set<UInt64>) -> [UInt64: String] {
        guard let bytes = Posix.readFile("/proc/net/unix", limit: 64 << 20) else { return [:] }
        return parseUnixSocketTable(String(decoding: bytes, as: UTF8.self), inodes: inodes)
    }

    /// The rows of a `/proc/net/unix` text whose inode is in `inodes`, as inode → path.
    static func parseUnixSocketTable(_ text: String, inodes: Set<UInt64>) -> [UInt64: String] {
        var out: [UInt64: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", maxSplits: 7, omittingEmptySubsequences: true)
            guard fields.count == 8, let inode = UInt64(fields[6]), inodes.contains(inode) else { continue }
            let path = String(fields[7])
            if path.hasPrefix("/") { out[inode] = path }
        }
        return out
    }
}

extension MonitorLocator {
    /// Why process `pid` offers no monitor a client can use, and what to do.
    package func noUsableMonitor(pid: Int32, program: String?) -> String {
        if let domain = libvirtDomain {
            return "process \(pid) is a QEMU managed by libvirt (domain \(domain)); libvirtd holds its monitor"
                + (libvirtMonitors.first.map { " (\($0))" } ?? "")
                + " — use `virsh` (e.g. `virsh qemu-monitor-command \(domain) --pretty '{\"execute\":\"query-status\"}'`),"
                + " or give the domain a second QMP socket through <qemu:commandline> (-qmp unix:PATH,server=on,wait=off)"
        }
        if let fd = unresolvedDescriptors.first {
            return "process \(pid)'s QMP monitor is an inherited descriptor (fd \(fd)) whose socket path cannot be found"
                + " in /proc/\(pid)/fd and /proc/net/unix (not a bound unix socket, or not readable by this user)"
        }
        return "process \(pid) (\(program ?? "?")) has no QMP unix socket on its command line "
            + "(-qmp unix:PATH,server=on or -chardev socket,id=X,path=PATH,server=on with -mon chardev=X,mode=control)"
    }
}
