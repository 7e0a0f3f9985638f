#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Counts events a subscriber lost.
final class DropCounter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func increment() { count.add(1, ordering: .relaxed) }
}

/// One QMP connection: the socket, a reader thread, pending calls and subscribers.
///
/// Threading: a dedicated reader thread owns reading, framing, parsing and
/// dispatching; it resumes continuations and yields to event streams but never runs
/// user code, so a subscriber that sends a command cannot deadlock the reader.
/// Callers write their own commands (serialised by `writeLock`). Deadlines are
/// enforced by the reader, which wakes at the earliest deadline.
final class Connection: Sendable {
    typealias Reply = Result<JSONValue, QMPError>

    struct Pending {
        var command: String
        var deadline: UInt64
        var continuation: UnsafeContinuation<Reply, Never>
    }

    struct Subscriber {
        var continuation: AsyncThrowingStream<QMPEvent, any Error>.Continuation
        var counter: DropCounter
    }

    struct State {
        var pending: [Int: Pending] = [:]
        var greeting: QMPGreeting? = nil
        var greetingWaiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = nil
        var greetingDeadline: UInt64 = .max
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriber = 0
        var closed: QMPError? = nil
        var closing = false
        /// When the reader must next look at deadlines.
        var wakeAt: UInt64 = 0
    }

    /// Idle wake-up interval of the reader (so most calls never need to signal it).
    static let idleTick: UInt64 = 1_000_000_000

    let fd: CInt
    let wakeFD: CInt
    let path: String
    let peer: (pid: Int32, uid: UInt32)?
    let maxFrameSize: Int
    private let ids = Atomic<Int>(1)
    private let state: Mutex<State>
    /// `true` while `fd` is open; guards writes against a closed (and reused) fd.
    private let writeLock = Mutex<Bool>(true)

    init(fd: CInt, path: String, maxFrameSize: Int) {
        self.fd = fd
        self.wakeFD = Sys.makeEventFD()
        self.path = path
        self.peer = Sys.peerCredentials(fd).map { (Int32($0.pid), UInt32($0.uid)) }
        self.maxFrameSize = maxFrameSize
        self.state = Mutex(State(wakeAt: monotonicNanos() + Self.idleTick))
    }

    // MARK: - Opening

    /// Connects, reads the greeting and negotiates capabilities, all before `deadline`.
    static func open(path: String, timeout: Duration, maxFrameSize: Int) async -> Result<(Connection, QMPGreeting), QMPError> {
        let deadline = monotonicNanos() &+ nanoseconds(timeout)
        let limit = Int(csockPathMax) - 1
        if path.utf8.count > limit {
            return .failure(QMPError(code: .connectFailed, message:
                "socket path \(path) is \(path.utf8.count) bytes; a unix socket path holds at most \(limit): use a shorter state or socket directory"))
        }
        let (fd, connectErrno) = Sys.connectUnix(path)
        if fd < 0 { return .failure(connectError(path: path, errno: connectErrno)) }
        Sys.setNonBlocking(fd)
        let connection = Connection(fd: fd, path: path, maxFrameSize: maxFrameSize)
        guard connection.wakeFD >= 0 else {
            Sys.close(fd)
            return .failure(QMPError(code: .connectFailed, message: "cannot create an eventfd: \(errnoText(currentErrno))"))
        }
        let greeting: Result<QMPGreeting, QMPError> = await withUnsafeContinuation { continuation in
            connection.state.withLock { s in
                s.greetingWaiter = continuation
                s.greetingDeadline = deadline
                s.wakeAt = min(s.wakeAt, deadline)
            }
            if !Sys.startThread({ connection.readLoop() }) {
                connection.finish(QMPError(code: .connectFailed, message: "cannot start the QMP reader thread"))
            }
        }
        switch greeting {
        case .failure(let error):
            connection.close()
            return .failure(error)
        case .success(let greeting):
            let now = monotonicNanos()
            let remaining = deadline > now ? deadline - now : 0
            let reply = await connection.call("qmp_capabilities", arguments: nil, timeoutNanos: remaining, passing: nil)
            switch reply {
            case .success: return .success((connection, greeting))
            case .failure(var error):
                connection.close()
                if error.code == .timedOut {
                    error.message = "no answer to qmp_capabilities from \(path) in time: QEMU is unresponsive"
                }
                return .failure(error)
            }
        }
    }

    private static var csockPathMax: CInt { CSocketPathMax.value }

    static func connectError(path: String, errno e: CInt) -> QMPError {
        let text = errnoText(e)
        let message: String
        switch e {
        case ENOENT: message = "no QMP socket at \(path) (\(text)): is the VM running, and is this its socket path?"
        case ECONNREFUSED: message = "nothing is listening on \(path) (\(text)): the socket is stale (its QEMU exited) or not a QEMU monitor"
        case EACCES, EPERM: message = "permission denied connecting to \(path): run as the user who owns the VM"
        case ENOTSOCK: message = "\(path) is not a unix socket"
        case ENAMETOOLONG: message = "socket path \(path) is too long for a unix socket: use a shorter directory"
        case EAGAIN: message = "the monitor socket \(path) has no room for another client: try again later"
        default: message = "cannot connect to \(path): \(text)"
        }
        return QMPError(code: .connectFailed, message: message)
    }

    // MARK: - Calls

    func nextID() -> Int { ids.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// Sends a command and waits for its reply or the deadline.
    func call(_ command: String, arguments: JSONValue?, timeoutNanos: UInt64, passing fd: CInt?) async -> Reply {
        let id = nextID()
        let deadline = monotonicNanos() &+ timeoutNanos
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Reply, Never>) in
                if Task.isCancelled {
                    continuation.resume(returning: .failure(QMPError(code: .cancelled, command: command, message: "cancelled before it was sent")))
                    return
                }
                let (closed, wake): (QMPError?, Bool) = state.withLock { s in
                    if let closed = s.closed { return (closed, false) }
                    s.pending[id] = Pending(command: command, deadline: deadline, continuation: continuation)
                    if deadline < s.wakeAt {
                        s.wakeAt = deadline
                        return (nil, true)
                    }
                    return (nil, false)
                }
                if let closed {
                    var error = closed
                    error.command = command
                    continuation.resume(returning: .failure(error))
                    return
                }
                if wake { Sys.signal(eventFD: wakeFD) }
                let frame = Self.encode(command: command, arguments: arguments, id: id)
                let rc: CInt = writeLock.withLock { open in
                    open ? Sys.writeAll(self.fd, frame, passing: fd, deadline: deadline) : EPIPE
                }
                if rc != 0 {
                    let error: QMPError
                    if rc == ETIMEDOUT {
                        error = QMPError(code: .timedOut, command: command, message: "could not send within the deadline: QEMU is not reading its monitor (unresponsive)")
                    } else {
                        error = QMPError(code: .connectionClosed, command: command, message: "cannot send to \(path): \(errnoText(rc))")
                    }
                    fail(id: id, error)
                }
            }
        } onCancel: {
            fail(id: id, QMPError(code: .cancelled, command: command, message: "cancelled while waiting for the reply"))
        }
    }

    private func fail(id: Int, _ error: QMPError) {
        if let p = state.withLock({ $0.pending.removeValue(forKey: id) }) {
            p.continuation.resume(returning: .failure(error))
        }
    }

    static func encode(command: String, arguments: JSONValue?, id: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48 + command.utf8.count)
        out.append(contentsOf: #"{"execute":"#.utf8)
        JSONWriter.writeString(command, into: &out)
        if let arguments {
            out.append(contentsOf: #","arguments":"#.utf8)
            JSONWriter.write(arguments, into: &out)
        }
        out.append(contentsOf: #","id":"#.utf8)
        out.append(contentsOf: String(id).utf8)
        out.append(contentsOf: "}\r\n".utf8)
        return out
    }

    // MARK: - Events

    func subscribe(bufferSize: Int) -> QMPEventStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: QMPEvent.self, throwing: (any Error).self, bufferingPolicy: .bufferingNewest(max(1, bufferSize)))
        let counter = DropCounter()
        let outcome: (Int?, QMPError?, Bool) = state.withLock { s in
            if let closed = s.closed { return (nil, closed, s.closing) }
            let key = s.nextSubscriber
            s.nextSubscriber += 1
            s.subscribers[key] = Subscriber(continuation: continuation, counter: counter)
            return (key, nil, false)
        }
        if let key = outcome.0 {
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
            }
        } else if outcome.2 {
            continuation.finish()
        } else {
            continuation.finish(throwing: outcome.1)
        }
        return QMPEventStream(stream: stream, counter: counter)
    }

    // MARK: - State

    var greeting: QMPGreeting? { state.withLock { $0.greeting } }
    var closedReason: QMPError? { state.withLock { $0.closed } }

    /// Closes the connection; pending calls fail, streams end normally.
    func close() {
        state.withLock { $0.closing = true }
        writeLock.withLock { open in
            if open { Sys.shutdownBoth(fd) }
        }
    }

    // MARK: - Reader

    private func readLoop() {
        var reader = QMPFrameReader(maxFrameSize: maxFrameSize)
        let capacity = 64 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let wakeAt = state.withLock { $0.wakeAt }
            var now = monotonicNanos()
            if now >= wakeAt {
                expire(now: now)
                continue
            }
            let waitMillis = CInt(min((wakeAt - now + 999_999) / 1_000_000, 60_000))
            let (readable, woken, pollErr) = Sys.pollRead(fd, wake: wakeFD, timeoutMillis: waitMillis)
            if pollErr != 0 && pollErr != EINTR {
                finish(QMPError(code: .connectionClosed, message: "poll on \(path) failed: \(errnoText(pollErr))"))
                return
            }
            if woken { Sys.drain(eventFD: wakeFD) }
            if readable {
                let n = Sys.read(fd, into: buffer)
                if n == 0 {
                    let closing = state.withLock { $0.closing }
                    finish(closing
                        ? QMPError(code: .connectionClosed, message: "the QMP connection to \(path) was closed by this client")
                        : QMPError(code: .connectionClosed, message: "QEMU closed the monitor connection \(path) (the VM exited or another program closed it)"))
                    return
                }
                if n < 0 {
                    let e = currentErrno
                    if e == EAGAIN || e == EINTR { continue }
                    finish(QMPError(code: .connectionClosed, message: "reading from \(path) failed: \(errnoText(e))"))
                    return
                }
                reader.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                do {
                    while let frame = try reader.nextFrame() {
                        if let error = handle(frame: frame) {
                            finish(error)
                            return
                        }
                    }
                } catch {
                    let message: String
                    switch error {
                    case .unexpectedByte(let b, let offset):
                        message = "\(path) sent data that is not QMP (byte \(JSONParser.show(b)) at offset \(offset)): is this a QEMU monitor socket?"
                    case .frameTooLarge(let limit):
                        message = "\(path) sent a message larger than \(limit) bytes; refusing it"
                    }
                    finish(QMPError(code: .protocolViolation, message: message))
                    return
                }
            }
            now = monotonicNanos()
            if now >= state.withLock({ $0.wakeAt }) { expire(now: now) }
        }
    }

    /// Fails every call whose deadline passed and computes the next wake-up.
    private func expire(now: UInt64) {
        var expired: [Pending] = []
        var greetingWaiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = nil
        state.withLock { s in
            var next = now &+ Self.idleTick
            for (id, p) in s.pending {
                if p.deadline <= now {
                    expired.append(p)
                    s.pending.removeValue(forKey: id)
                } else {
                    next = min(next, p.deadline)
                }
            }
            if s.greetingWaiter != nil {
                if s.greetingDeadline <= now {
                    greetingWaiter = s.greetingWaiter
                    s.greetingWaiter = nil
                } else {
                    next = min(next, s.greetingDeadline)
                }
            }
            s.wakeAt = next
        }
        for p in expired {
            p.continuation.resume(returning: .failure(QMPError(
                code: .timedOut, command: p.command,
                message: "no reply from \(path) before the deadline: QEMU is unresponsive (stopped or wedged) or the monitor is busy")))
        }
        greetingWaiter?.resume(returning: .failure(QMPError(
            code: .timedOut,
            message: "no QMP greeting from \(path) before the deadline: the monitor is busy serving another client, or QEMU is unresponsive")))
    }

    /// Dispatches one frame; returns an error when the connection must close.
    private func handle(frame: ArraySlice<UInt8>) -> QMPError? {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: frame)
        } catch {
            return QMPError(code: .protocolViolation, message: "\(path) sent invalid JSON (\(error)): is this a QEMU monitor socket?")
        }
        guard case .object(let message) = value else {
            return QMPError(code: .protocolViolation, message: "\(path) sent a JSON value that is not an object")
        }
        if let event = message["event"]?.stringValue {
            let timestamp = message["timestamp"]
            deliver(QMPEvent(
                name: event, data: message["data"] ?? .null,
                seconds: timestamp?["seconds"]?.intValue ?? 0,
                microseconds: timestamp?["microseconds"]?.intValue ?? 0))
            return nil
        }
        if message["return"] != nil || message["error"] != nil {
            let pending: Pending?
            if let id = message["id"]?.intValue {
                pending = state.withLock { $0.pending.removeValue(forKey: id) }
            } else {
                // QEMU answers input it cannot parse with an id-less error. Commands
                // are answered in order, so it belongs to the oldest pending call.
                pending = state.withLock { s in
                    guard let oldest = s.pending.keys.min() else { return nil }
                    return s.pending.removeValue(forKey: oldest)
                }
            }
            guard let pending else { return nil }  // a late reply after its deadline: dropped
            if let error = message["error"] {
                let errorClass = error["class"]?.stringValue ?? "GenericError"
                let desc = error["desc"]?.stringValue ?? "\(error)"
                pending.continuation.resume(returning: .failure(QMPError(
                    code: .commandFailed, command: pending.command, errorClass: errorClass, message: desc)))
            } else {
                pending.continuation.resume(returning: .success(message["return"]!))
            }
            return nil
        }
        if let qmp = message["QMP"] {
            let version = qmp["version"]?["qemu"]
            let greeting = QMPGreeting(
                version: [version?["major"], version?["minor"], version?["micro"]].map { "\($0?.intValue ?? 0)" }.joined(separator: "."),
                package: qmp["version"]?["package"]?.stringValue ?? "",
                capabilities: qmp["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            let waiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = state.withLock { s in
                s.greeting = greeting
                defer { s.greetingWaiter = nil }
                return s.greetingWaiter
            }
            waiter?.resume(returning: .success(greeting))
            return nil
        }
        return QMPError(code: .protocolViolation, message: "\(path) sent a message that is not QMP: \(value)")
    }

    private func deliver(_ event: QMPEvent) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for s in subscribers {
            if case .dropped = s.continuation.yield(event) {
                s.counter.increment()
            }
        }
    }

    /// Ends the connection: fails everything pending, ends streams, closes the fd.
    private func finish(_ reason: QMPError) {
        let (pending, waiter, subscribers, closing) = state.withLock { s in
            s.closed = reason
            defer {
                s.pending = [:]
                s.greetingWaiter = nil
                s.subscribers = [:]
            }
            return (Array(s.pending.values), s.greetingWaiter, Array(s.subscribers.values), s.closing)
        }
        for p in pending {
            var error = reason
            error.command = p.command
            p.continuation.resume(returning: .failure(error))
        }
        waiter?.resume(returning: .failure(reason.code == .connectionClosed
            ? QMPError(code: .protocolViolation, message: "\(path) closed the connection without a QMP greeting: is it a QEMU monitor socket?")
            : reason))
        for s in subscribers {
            if closing { s.continuation.finish() } else { s.continuation.finish(throwing: reason) }
        }
        writeLock.withLock { open in
            if open {
                Sys.close(fd)
                Sys.close(wakeFD)
                open = false
            }
        }
    }
}
