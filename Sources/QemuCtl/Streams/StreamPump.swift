#if canImport(Glibc)
import Glibc
#endif
import CSocketShims

// The one file in QemuCtl that moves bytes between the user's terminal (or pipes)
// and a socket: poll, raw terminal mode, and signals turned into a wake-up.

/// Copies bytes both ways between a local input/output pair (the user's terminal or
/// pipes) and a connected socket, until one side ends, the escape byte is typed, or a
/// watched signal arrives.
///
/// It blocks its thread: run it on a thread of its own (``runDetached()``), never on
/// the cooperative pool.
package struct StreamPump: Sendable {
    /// Why the pump stopped.
    package enum End: Sendable, Equatable, CustomStringConvertible {
        /// The escape byte was read from the input.
        case escape
        /// The input reached end of file.
        case inputClosed
        /// The socket's peer closed the connection.
        case peerClosed
        /// A watched signal arrived (see ``SignalWake``).
        case signal(Int32)
        /// A read or write failed.
        case failed(String)

        /// A short phrase for messages.
        package var description: String {
            switch self {
            case .escape: "escape sequence"
            case .inputClosed: "end of input"
            case .peerClosed: "the other side closed the connection"
            case .signal(let s): "signal \(s)"
            case .failed(let m): m
            }
        }
    }

    /// Where local bytes come from (standard input).
    package var input: Int32
    /// Where the socket's bytes go (standard output).
    package var output: Int32
    /// The connected socket.
    package var socket: Int32
    /// A byte that ends the pump when read from the input (it is not forwarded); `nil` for none.
    package var escapeByte: UInt8?
    /// The read end of a ``SignalWake`` pipe, or -1.
    package var signalFD: Int32 = -1

    /// Creates a pump.
    package init(input: Int32, output: Int32, socket: Int32, escapeByte: UInt8?, signalFD: Int32 = -1) {
        self.input = input
        self.output = output
        self.socket = socket
        self.escapeByte = escapeByte
        self.signalFD = signalFD
    }

    /// Runs the pump on a new thread and returns how it ended.
    package func runDetached() async -> End {
        await withCheckedContinuation { continuation in
            let pump = self
            let thread = PumpThread { continuation.resume(returning: pump.run()) }
            thread.start()
        }
    }

    /// Runs until the end; blocks the calling thread.
    package func run() -> End {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let inputOpen = true
        while true {
            var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0)) }
            if signalFD >= 0 { fds.append(pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)) }
            let rc = poll(&fds, nfds_t(fds.count), -1)
            if rc < 0 {
                if errno == EINTR { continue }
                return .failed("poll: \(String(cString: strerror(errno)))")
            }
            if signalFD >= 0, let s = fds.last, s.revents != 0 {
                var byte: UInt8 = 0
                _ = read(signalFD, &byte, 1)
                return .signal(Int32(byte))
            }
            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return .peerClosed }
                if let e = Posix.writeAll(output, buffer, count: n) { return .failed("writing the output: \(e)") }
            }
            if inputOpen, fds[1].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return .inputClosed }
                var count = n
                var escaped = false
                if let esc = escapeByte, let at = buffer[0..<n].firstIndex(of: esc) {
                    count = at
                    escaped = true
                }
                if count > 0, let e = Posix.writeAll(socket, buffer, count: count) { return .failed("writing the socket: \(e)") }
                if escaped { return .escape }
            }
        }
    }

}

/// A plain thread for blocking work (Foundation is not needed for it).
final class PumpThread: @unchecked Sendable {
    private let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<PumpThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            body()
        } else {
            pthread_detach(thread)
        }
    }
}

// MARK: - Signals

/// The write end of the signal pipe, read by the C signal handler (which can capture nothing).
nonisolated(unsafe) private var signalWriteFD: Int32 = -1

/// Turns signals into a byte on a pipe, so a ``StreamPump`` (or an accept loop) wakes
/// up and the caller can restore the terminal before exiting.
package enum SignalWake {
    /// Installs handlers for `signals` (default SIGINT, SIGTERM, SIGHUP) once and
    /// returns the pipe's read end. Each signal writes its number as one byte.
    package static func install(_ signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]) -> Int32 {
        var fds: [Int32] = [-1, -1]
        guard cproc_pipe(&fds) == 0 else { return -1 }
        // A signal storm must never block the handler on a full pipe.
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        signalWriteFD = fds[1]
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                var byte = UInt8(truncatingIfNeeded: signal)
                _ = write(signalWriteFD, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(s, &action, nil)
        }
        return fds[0]
    }

    /// The signal numbers this module watches by default.
    package static var interrupt: Int32 { SIGINT }
    /// SIGTERM.
    package static var terminate: Int32 { SIGTERM }
}

// MARK: - Terminal mode

/// A terminal switched to raw mode, restored by ``restore()``.
package struct RawTerminal: Sendable {
    private let fd: Int32
    private let saved: termios

    /// Switches `fd` to raw mode if it is a terminal; `nil` when it is not (pipes stay as they are).
    package static func enter(_ fd: Int32 = 0) -> RawTerminal? {
        guard isatty(fd) == 1 else { return nil }
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return nil }
        var raw = original
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSAFLUSH, &raw) == 0 else { return nil }
        return RawTerminal(fd: fd, saved: original)
    }

    /// Puts the terminal back as it was.
    package func restore() {
        var t = saved
        _ = tcsetattr(fd, TCSAFLUSH, &t)
    }

    /// Whether `fd` is a terminal.
    package static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
}
