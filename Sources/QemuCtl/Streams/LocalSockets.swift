#if canImport(Glibc)
import Glibc
#endif
import CSocketShims

/// The sockets the display hand-off and the console open on this host: a loopback TCP
/// listener, a socket pair, a unix client. Descriptors are close-on-exec.
package enum LocalSockets {
    /// A listening loopback socket.
    package struct Listener: Sendable {
        /// The descriptor.
        package var fd: Int32
        /// The address it is bound to, as given.
        package var host: String
        /// The port (the kernel's choice when 0 was asked for).
        package var port: Int
    }

    /// Whether `host` is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
    package static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Listens on `host:port` (loopback only; port 0 picks a free one).
    package static func listenTCP(host: String, port: Int) throws(InstanceError) -> Listener {
        guard isLoopback(host) else {
            throw InstanceError(code: .invalidConfig, message: "\(host) is not a loopback address: the hand-off listens on 127.0.0.1 or ::1 only")
        }
        let v6 = host == "::1"
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw error("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            a.sin6_addr = in6addr_loopback
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            let address = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, address, &a.sin_addr) == 1 else {
                close(fd)
                throw InstanceError(code: .invalidConfig, message: "\(host) is not an IPv4 address")
            }
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if rc != 0 {
            let e = error("bind \(host):\(port)")
            close(fd)
            throw e
        }
        guard listen(fd, 16) == 0 else {
            let e = error("listen")
            close(fd)
            throw e
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let bound: UInt16 = withUnsafePointer(to: &storage) { p in
            v6 ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
               : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
        }
        return Listener(fd: fd, host: host, port: Int(UInt16(bigEndian: bound)))
    }

    /// Listens on a new unix socket at `path`, mode 0600, in `path`'s directory, which must
    /// belong to this user and be closed to group and others (so no one else can reach the
    /// socket, or put another in its place). A stale socket of ours at `path` is replaced.
    ///
    /// The ``Listener/port`` of a unix listener is 0 and its ``Listener/host`` the path.
    package static func listenUnix(path: String) throws(InstanceError) -> Listener {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var st = stat()
        guard stat(dir, &st) == 0 else { throw error("\(dir)") }
        guard st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw InstanceError(code: .invalidConfig, message:
                "\(dir) must belong to this user and be closed to group and others (it is uid \(st.st_uid), mode "
                + "\(String(st.st_mode & 0o7777, radix: 8))): a hand-off socket there could be reached or replaced by someone else")
        }
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard existing.st_mode & S_IFMT == S_IFSOCK, existing.st_uid == geteuid() else {
                throw InstanceError(code: .invalidConfig, message: "\(path) exists and is not a socket of this user's; not replacing it")
            }
            unlink(path)
        }
        let fd = csock_unix_listen(path, 16)
        guard fd >= 0 else { throw error("listen on \(path)") }
        guard chmod(path, 0o600) == 0 else {
            let e = error("chmod 0600 \(path)")
            Glibc.close(fd)
            unlink(path)
            throw e
        }
        return Listener(fd: fd, host: path, port: 0)
    }

    /// The uid of the process at the other end of the unix socket `fd` (`SO_PEERCRED`), or
    /// `nil` when the kernel does not say (a TCP socket).
    package static func peerUID(_ fd: Int32) -> UInt32? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        return csock_peer_credentials(fd, &pid, &uid) == 0 ? UInt32(uid) : nil
    }

    /// Waits for the next client of `listener`; `nil` when the signal pipe `wake` became readable first.
    /// Blocks the calling thread.
    package static func accept(_ listener: Listener, wake: Int32) throws(InstanceError) -> Int32? {
        while true {
            var fds = [pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)]
            if wake >= 0 { fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
            let rc = poll(&fds, nfds_t(fds.count), -1)
            if rc < 0 {
                if errno == EINTR { continue }
                throw error("poll")
            }
            if fds.count > 1 && fds[1].revents != 0 { return nil }
            let client = Glibc.accept(listener.fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { continue }
                throw error("accept")
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return client
        }
    }

    /// A connected pair of unix stream sockets.
    package static func pair() throws(InstanceError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw error("socketpair")
        }
        return (fds[0], fds[1])
    }

    /// Connects to the unix socket at `path`.
    package static func connectUnix(_ path: String) throws(InstanceError) -> Int32 {
        let fd = csock_unix_connect(path)
        guard fd >= 0 else {
            let e = errno
            let code: InstanceError.Code = (e == ENOENT || e == ECONNREFUSED) ? .notFound : .runtimeDirectory
            throw InstanceError(code: code, message: "cannot connect to \(path): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Closes a descriptor.
    package static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    private static func error(_ what: String) -> InstanceError {
        InstanceError(code: .runtimeDirectory, message: "\(what): \(String(cString: strerror(errno)))")
    }
}
