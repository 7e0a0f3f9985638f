#if canImport(Glibc)
import Glibc
#endif

/// A short, blocking QMP conversation on the calling thread: connect, read the greeting,
/// then send batches of commands pipelined (all written at once, replies matched by id),
/// every step within one deadline.
///
/// For code that asks a monitor a few questions and hangs up, from a thread it may block
/// (observing many VMs, each from a thread of its own): no reader thread, no task hops, and
/// `qmp_capabilities` travels with the first batch, so a status query costs two round trips
/// (greeting, batch) as a plain C client's would. Events that arrive meanwhile are ignored.
/// ``QMPClient`` is the client for everything else.
package final class QMPExchange {
    /// The socket path.
    package let path: String
    /// The greeting QEMU sent.
    package let greeting: QMPGreeting
    /// The peer's process id, read with `SO_PEERCRED` at connect time.
    package let peerPID: Int32?

    private var fd: CInt
    private let deadline: UInt64
    private let timeout: Duration
    private var framer: QMPFrameReader
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    private var negotiated = false
    private var nextID = 1
    private var broken: QMPError? = nil

    /// Connects to `path` and reads QEMU's greeting; `timeout` bounds this and every later
    /// ``run(_:)`` together.
    ///
    /// - Throws: ``QMPError`` as ``QMPClient/connect(to:timeout:maxFrameSize:)`` does.
    package init(path: String, timeout: Duration, maxFrameSize: Int = 16 << 20) throws(QMPError) {
        if let problem = Wire.pathProblem(path) { throw problem }
        self.path = path
        self.timeout = timeout
        self.deadline = monotonicNanos() &+ nanoseconds(timeout)
        let (fd, connectErrno) = Sys.connectUnix(path, timeoutNanos: nanoseconds(timeout))
        if fd < 0 {
            throw connectErrno == EAGAIN ? Wire.queueFull(path: path, timeout: timeout)
                : Wire.connectError(path: path, errno: connectErrno)
        }
        self.fd = fd
        self.framer = QMPFrameReader(maxFrameSize: maxFrameSize)
        self.peerPID = Sys.peerCredentials(fd).map { Int32($0.pid) }
        var greeting: QMPGreeting? = nil
        while greeting == nil {
            switch Self.next(fd: fd, framer: &framer, buffer: &buffer, deadline: deadline, path: path) {
            case .failure(let error):
                Sys.close(fd)
                throw error.code == .timedOut ? Wire.greetingTimedOut(path: path)
                    : error.code == .connectionClosed ? Wire.noGreeting(path: path) : error
            case .success(.greeting(let g)):
                greeting = g
            case .success:
                continue  // nothing else comes before the greeting; tolerated as QMPClient does
            }
        }
        self.greeting = greeting!
    }

    deinit { close() }

    /// Sends `commands` at once (after `qmp_capabilities`, the first time) and waits for
    /// every reply. Returns one result per command, in order: QEMU's `return` value, or its
    /// error as ``QMPError/Code-swift.struct/commandFailed``.
    ///
    /// - Throws: ``QMPError`` when the conversation itself fails: `timedOut` at the deadline,
    ///   `connectionClosed`, `protocolViolation`; the exchange is unusable afterwards.
    package func run(_ commands: [(command: String, arguments: JSONValue?)]) throws(QMPError) -> [Result<JSONValue, QMPError>] {
        if let broken { throw broken }
        guard fd >= 0 else { throw QMPError(code: .connectionClosed, message: "the QMP connection to \(path) was closed by this client") }
        var batch: [(id: Int, command: String)] = []
        var bytes: [UInt8] = []
        if !negotiated {
            batch.append((nextID, "qmp_capabilities"))
            bytes += Wire.encode(command: "qmp_capabilities", arguments: nil, id: nextID)
            nextID += 1
        }
        for c in commands {
            batch.append((nextID, c.command))
            bytes += Wire.encode(command: c.command, arguments: c.arguments, id: nextID)
            nextID += 1
        }
        let rc = Sys.writeAll(fd, bytes, passing: nil, deadline: deadline)
        if rc != 0 {
            throw fail(rc == ETIMEDOUT
                ? QMPError(code: .timedOut, command: batch.first?.command,
                           message: "could not send within the deadline: QEMU is not reading its monitor (unresponsive)")
                : QMPError(code: .connectionClosed, command: batch.first?.command, message: "cannot send to \(path): \(errnoText(rc))"))
        }
        var results: [Int: Result<JSONValue, QMPError>] = [:]
        while results.count < batch.count {
            switch Self.next(fd: fd, framer: &framer, buffer: &buffer, deadline: deadline, path: path) {
            case .failure(var error):
                error.command = batch.first { results[$0.id] == nil }?.command
                if error.code == .timedOut, let command = error.command { error = Wire.timedOut(command, path: path) }
                throw fail(error)
            case .success(.reply(let explicitID, let result)):
                // An id-less error answers input QEMU could not parse: the oldest unanswered command.
                guard let entry = batch.first(where: { entry in explicitID.map { $0 == entry.id } ?? (results[entry.id] == nil) }),
                      results[entry.id] == nil else { continue }
                results[entry.id] = result.mapError { $0.qmpError(command: entry.command) }
            case .success:
                continue  // events (and a repeated greeting) are not this exchange's business
            }
        }
        if !negotiated {
            negotiated = true
            if case .failure(var error) = results[batch[0].id]! {
                if error.code == .commandFailed { error.message = "qmp_capabilities was refused: \(error.message)" }
                throw fail(error)
            }
            return batch.dropFirst().map { results[$0.id]! }
        }
        return batch.map { results[$0.id]! }
    }

    /// Closes the connection. Calling it again does nothing.
    package func close() {
        if fd >= 0 {
            Sys.close(fd)
            fd = -1
        }
    }

    private func fail(_ error: QMPError) -> QMPError {
        broken = error
        close()
        return error
    }

    /// Reads until the next complete message, or the deadline.
    private static func next(fd: CInt, framer: inout QMPFrameReader, buffer: inout [UInt8], deadline: UInt64, path: String) -> Result<Wire.Message, QMPError> {
        while true {
            do {
                if let frame = try framer.nextFrame() { return Wire.decode(frame: frame, path: path) }
            } catch {
                return .failure(Wire.framingError(error, path: path))
            }
            let now = monotonicNanos()
            if now >= deadline {
                return .failure(QMPError(code: .timedOut, message: "no answer from \(path) before the deadline: QEMU is unresponsive"))
            }
            let (readable, _, pollErr) = Sys.pollRead(fd, wake: -1, timeoutMillis: CInt(min((deadline - now + 999_999) / 1_000_000, 60_000)))
            if pollErr != 0 && pollErr != EINTR {
                return .failure(QMPError(code: .connectionClosed, message: "poll on \(path) failed: \(errnoText(pollErr))"))
            }
            guard readable else { continue }
            let n = buffer.withUnsafeMutableBytes { Sys.receive(fd, into: $0, wait: false) }
            if n == 0 { return .failure(Wire.closedByPeer(path: path)) }
            if n < 0 {
                let e = currentErrno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { continue }
                return .failure(QMPError(code: .connectionClosed, message: "reading from \(path) failed: \(errnoText(e))"))
            }
            buffer.withUnsafeBytes { framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}
