#if canImport(Glibc)
import Glibc
#endif
import CSocketShims

// The only file in QMP that calls libc directly.

/// Monotonic time in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Nanoseconds in a `Duration`, saturating, never negative.
package func nanoseconds(_ d: Duration) -> UInt64 {
    let (s, atto) = d.components
    if s < 0 { return 0 }
    let (ns, o) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
    if o { return UInt64.max / 2 }
    return ns &+ UInt64(atto / 1_000_000_000)
}

/// The current `errno`.
var currentErrno: CInt { errno }

/// `strerror` text for an errno value.
func errnoText(_ code: CInt) -> String {
    String(cString: strerror(code))
}

enum Sys {
    /// Returns the connected fd, or -1 and the errno (EAGAIN when the listener's queue
    /// stayed full for `timeoutNanos`).
    static func connectUnix(_ path: String, timeoutNanos: UInt64) -> (fd: CInt, errno: CInt) {
        let fd = csock_unix_connect_timeout(path, Int(max(1, timeoutNanos / 1000)))
        return fd >= 0 ? (fd, 0) : (-1, errno)
    }

    /// Bounds how long a blocking receive on `fd` waits.
    static func setReceiveTimeout(_ fd: CInt, nanoseconds: UInt64) {
        _ = csock_set_receive_timeout(fd, Int(nanoseconds / 1000))
    }

    static func peerCredentials(_ fd: CInt) -> (pid: pid_t, uid: uid_t)? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        return csock_peer_credentials(fd, &pid, &uid) == 0 ? (pid, uid) : nil
    }

    static func makeEventFD() -> CInt {
        csock_eventfd()
    }

    static func signal(eventFD fd: CInt) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    static func drain(eventFD fd: CInt) {
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
    }

    /// Waits for `fd` (and `wake`) to become readable; returns (fdReadable, wakeReadable).
    static func pollRead(_ fd: CInt, wake: CInt, timeoutMillis: CInt) -> (Bool, Bool, CInt) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        let rc = poll(&fds, 2, timeoutMillis)
        if rc < 0 { return (false, false, errno) }
        return (fds[0].revents != 0, fds[1].revents != 0, 0)
    }

    /// Receives into `buffer`; with `wait`, blocks up to the socket's receive
    /// timeout (then fails with EAGAIN), else returns at once.
    static func receive(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, wait: Bool) -> Int {
        recv(fd, buffer.baseAddress, buffer.count, wait ? 0 : CInt(MSG_DONTWAIT))
    }

    /// Writes all of `bytes` without blocking in the kernel, waiting for room up to `deadline`.
    /// The first chunk may carry `passing` as SCM_RIGHTS. Returns 0 or an errno (ETIMEDOUT on deadline).
    static func writeAll(_ fd: CInt, _ bytes: [UInt8], passing: CInt?, deadline: UInt64) -> CInt {
        var offset = 0
        var fdToPass = passing
        return bytes.withUnsafeBytes { raw -> CInt in
            while offset < raw.count {
                let n: Int
                let chunk = UnsafeRawBufferPointer(rebasing: raw[offset...])
                if let pass = fdToPass {
                    n = csock_send_with_fd(fd, chunk.baseAddress, chunk.count, pass)
                } else {
                    n = send(fd, chunk.baseAddress, chunk.count, CInt(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n > 0 {
                    offset += n
                    fdToPass = nil
                    continue
                }
                let e = errno
                if e == EINTR { continue }
                if e != EAGAIN && e != EWOULDBLOCK { return e }
                let now = monotonicNanos()
                if now >= deadline { return ETIMEDOUT }
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, CInt(min((deadline - now) / 1_000_000 + 1, 60_000)))
            }
            return 0
        }
    }

    static func shutdownBoth(_ fd: CInt) {
        _ = shutdown(fd, CInt(SHUT_RDWR))
    }

    static func close(_ fd: CInt) {
        _ = Glibc.close(fd)
    }

    static func isValidFD(_ fd: CInt) -> Bool {
        fcntl(fd, F_GETFD) != -1
    }

    /// Starts a detached thread running `body`.
    static func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
        final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}

/// Starts a detached POSIX thread running `body` (cheaper than Foundation's `Thread`, which
/// also builds an object and a run-loop context per thread); returns whether it started.
package func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    Sys.startThread(body)
}

enum CSocketPathMax {
    static let value: CInt = csock_unix_path_max()
}
