#if canImport(Glibc)
import Glibc
#endif
import CSocketShims

/// The socket calls of the guest agent client and the readiness probes: connect with a deadline,
/// read and write with `poll(2)` deadlines. Deadlines are `CLOCK_MONOTONIC` nanoseconds.
enum AgentSocket {
    /// What a read or write came to.
    enum Outcome: Equatable {
        case ok
        case timedOut
        case closed
        case failed(CInt)
    }

    /// Connects to the unix socket at `path`, waiting at most until `deadline` on a full listen queue.
    /// Returns the descriptor or the errno.
    static func connectUnix(_ path: String, deadline: UInt64) -> (fd: CInt, errno: CInt) {
        let left = deadline > Posix.monotonicNanoseconds() ? deadline - Posix.monotonicNanoseconds() : 1_000
        let fd = csock_unix_connect_timeout(path, max(1, Int(left / 1_000)))
        return fd >= 0 ? (fd, 0) : (-1, errno)
    }

    /// Milliseconds left until `deadline` (0 when past), for `poll(2)`.
    private static func millisLeft(_ deadline: UInt64) -> CInt {
        let now = Posix.monotonicNanoseconds()
        guard deadline > now else { return 0 }
        return CInt(min((deadline - now + 999_999) / 1_000_000, 60_000))
    }

    /// Waits until `fd` is readable (or its peer hung up); false when `deadline` passes first.
    static func waitReadable(_ fd: CInt, deadline: UInt64) -> Bool {
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, millisLeft(deadline))
            if rc > 0 { return true }
            if rc < 0 && errno == EINTR { continue }
            if Posix.monotonicNanoseconds() >= deadline { return false }
        }
    }

    /// Reads what is available (at most `buffer.count` bytes), waiting until `deadline`.
    static func read(_ fd: CInt, into buffer: inout [UInt8], count: inout Int, deadline: UInt64) -> Outcome {
        guard waitReadable(fd, deadline: deadline) else { return .timedOut }
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                count = n
                return .ok
            }
            if n == 0 { return .closed }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { count = 0; return .ok }
            return errno == ECONNRESET ? .closed : .failed(errno)
        }
    }

    /// Writes all of `bytes`, waiting for room until `deadline`.
    static func writeAll(_ fd: CInt, _ bytes: [UInt8], deadline: UInt64) -> Outcome {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n >= 0 {
                offset += n
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, millisLeft(deadline)) == 0 && Posix.monotonicNanoseconds() >= deadline { return .timedOut }
            case EPIPE, ECONNRESET: return .closed
            default: return .failed(errno)
            }
        }
        return .ok
    }

    /// Connects a TCP socket to `host`:`port` (IPv4 or IPv6 literal), waiting until `deadline`.
    /// Returns the connected descriptor or a message.
    static func connectTCP(host: String, port: Int, deadline: UInt64) -> (fd: CInt, problem: String?) {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = AF_INET
        let parsed: Bool = withUnsafeMutableBytes(of: &storage) { raw -> Bool in
            if host.contains(":") {
                var a = sockaddr_in6()
                a.sin6_family = sa_family_t(AF_INET6)
                a.sin6_port = in_port_t(UInt16(port).bigEndian)
                guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { return false }
                withUnsafeBytes(of: a) { raw.copyMemory(from: $0) }
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
                family = AF_INET6
            } else {
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = in_port_t(UInt16(port).bigEndian)
                guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { return false }
                withUnsafeBytes(of: a) { raw.copyMemory(from: $0) }
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            }
            return true
        }
        guard parsed else { return (-1, "\(host) is not an IP address") }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return (-1, "socket: \(Posix.errorText(errno))") }
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let e = errno
            Glibc.close(fd)
            return (-1, "connect to \(host):\(port): \(Posix.errorText(e))")
        }
        if rc != 0 {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let r = poll(&p, 1, millisLeft(deadline))
                if r < 0 && errno == EINTR { continue }
                if r == 0 {
                    Glibc.close(fd)
                    return (-1, "connect to \(host):\(port): timed out")
                }
                break
            }
            var soError: CInt = 0
            var len = socklen_t(MemoryLayout<CInt>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError != 0 {
                Glibc.close(fd)
                return (-1, "connect to \(host):\(port): \(Posix.errorText(soError))")
            }
        }
        return (fd, nil)
    }

    /// Closes a descriptor.
    static func close(_ fd: CInt) { _ = Glibc.close(fd) }
}
