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
/// Reading the socket is a role held by one party at a time (``Role``):
/// - a *caller* that finds the role free after sending its command waits for the
///   reply on its own thread for a short window (``directWindow``), reading and
///   dispatching whatever arrives. A quick reply (most QMP replies take ~150 µs)
///   thus wakes exactly one thread, as a blocking C client would;
/// - otherwise the *reader* thread holds it: whenever someone is parked on a
///   continuation, a subscriber wants events, or a greeting is awaited.
/// Whoever holds the role only resumes continuations and yields to event streams;
/// user code never runs on it, so a subscriber that sends a command cannot
/// deadlock. Deadlines of parked calls are enforced by the reader thread, which
/// wakes at the earliest one.
final class Connection: Sendable {
    typealias Reply = Result<JSONValue, QMPError>

    enum Waiter {
        /// The caller has not parked: the result is stored here for it to take.
        case direct(Reply?)
        /// The caller waits on this continuation.
        case parked(UnsafeContinuation<Reply, Never>)
    }

    struct Pending {
        var command: String
        var deadline: UInt64
        var waiter: Waiter
    }

    struct Subscriber {
        var continuation: AsyncThrowingStream<QMPEvent, any Error>.Continuation
        var counter: DropCounter
    }

    enum Role { case none, reader, caller }

    /// Internal observers that run on the reading thread, in stream order.
    struct Tap {
        var event: @Sendable (QMPEvent) -> Void
        var closed: @Sendable (QMPError) -> Void
    }

    struct State {
        var taps: [Tap] = []
        var pending: [Int: Pending] = [:]
        var parked = 0
        var greeting: QMPGreeting? = nil
        var greetingWaiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = nil
        var greetingDeadline: UInt64 = .max
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriber = 0
        var closed: QMPError? = nil
        var closing = false
        var role = Role.none
        /// When the reader must next look at deadlines.
        var wakeAt: UInt64 = 0

        /// Whether the reader thread must watch the socket.
        var needsReader: Bool { parked > 0 || !subscribers.isEmpty || !taps.isEmpty || greetingWaiter != nil }

        /// Stores `reply` for call `id`; returns a continuation to resume, if parked.
        mutating func complete(_ id: Int, _ reply: Reply) -> UnsafeContinuation<Reply, Never>? {
            guard let p = pending[id] else { return nil }
            switch p.waiter {
            case .direct(nil):
                pending[id]!.waiter = .direct(reply)
                return nil
            case .direct:
                return nil  // already has a result
            case .parked(let c):
                pending.removeValue(forKey: id)
                parked -= 1
                return c
            }
        }
    }

    /// Idle wake-up interval of the reader (so most calls never need to signal it).
    static let idleTick: UInt64 = 1_000_000_000
    /// How long a caller holding the read role waits for its reply before parking.
    static let directWindow: UInt64 = 2_000_000
    /// Taken by the one caller in the process that may wait on its own thread.
    static let directSlot = Atomic<Bool>(false)

    let fd: CInt
    let wakeFD: CInt
    let path: String
    let peer: (pid: Int32, uid: UInt32)?
    private let ids = Atomic<Int>(1)
    private let state: Mutex<State>
    /// Guards every use of the descriptors outside the read role against a
    /// closed (and reused) descriptor number.
    private let fds = Mutex(FDState())

    struct FDState {
        /// Whether commands may still be written.
        var writable = true
        /// Whether `fd` and `wakeFD` are closed (by the reader thread, at exit).
        var closed = false
    }

    /// Wakes the reader thread, unless the descriptors are already closed.
    private func wakeReader() {
        fds.withLock { if !$0.closed { Sys.signal(eventFD: wakeFD) } }
    }
    /// Framing state; touched only by the holder of the read role.
    private let input: InputBuffer

    final class InputBuffer: @unchecked Sendable {
        var framer: QMPFrameReader
        let bytes: UnsafeMutableRawBufferPointer
        init(maxFrameSize: Int) {
            framer = QMPFrameReader(maxFrameSize: maxFrameSize)
            bytes = .allocate(byteCount: 64 * 1024, alignment: 16)
        }
        deinit { bytes.deallocate() }
    }

    init(fd: CInt, path: String, maxFrameSize: Int) {
        self.fd = fd
        self.wakeFD = Sys.makeEventFD()
        self.path = path
        self.peer = Sys.peerCredentials(fd).map { (Int32($0.pid), UInt32($0.uid)) }
        self.input = InputBuffer(maxFrameSize: maxFrameSize)
        self.state = Mutex(State(wakeAt: monotonicNanos() + Self.idleTick))
    }

    // MARK: - Opening

    /// Connects, reads the greeting and negotiates capabilities, all before `deadline`.
    static func open(path: String, timeout: Duration, maxFrameSize: Int) async -> Result<(Connection, QMPGreeting), QMPError> {
        let deadline = monotonicNanos() &+ nanoseconds(timeout)
        if let problem = Wire.pathProblem(path) { return .failure(problem) }
        // Bounded too: a stopped QEMU's listen queue fills up, and a plain connect would then wait forever.
        let (fd, connectErrno) = Sys.connectUnix(path, timeoutNanos: nanoseconds(timeout))
        if fd < 0 {
            if connectErrno == EAGAIN { return .failure(Wire.queueFull(path: path, timeout: timeout)) }
            return .failure(Wire.connectError(path: path, errno: connectErrno))
        }
        // Receives by a caller holding the read role block for at most the direct
        // window; every other receive and send is MSG_DONTWAIT.
        Sys.setReceiveTimeout(fd, nanoseconds: directWindow)
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

    // MARK: - Calls

    func nextID() -> Int { ids.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// Sends a command and waits for its reply or the deadline.
    func call(_ command: String, arguments: JSONValue?, timeoutNanos: UInt64, passing fd: CInt?) async -> Reply {
        let id = nextID()
        let deadline = monotonicNanos() &+ timeoutNanos
        // Waiting on the calling thread blocks it (and its pool thread) for up to the
        // direct window, so only one caller in the whole process does it at a time:
        // a lone sequential caller gets the one-wake-up path; many concurrent callers
        // (e.g. observing 50 VMs) park and share the pool.
        let slot = timeoutNanos > Self.directWindow
            && Self.directSlot.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        let (closed, direct): (QMPError?, Bool) = state.withLock { s in
            if let closed = s.closed { return (closed, false) }
            s.pending[id] = Pending(command: command, deadline: deadline, waiter: .direct(nil))
            if slot && s.role == .none {
                s.role = .caller
                return (nil, true)
            }
            return (nil, false)
        }
        if slot && !direct { Self.directSlot.store(false, ordering: .releasing) }
        if var closed {
            closed.command = command
            return .failure(closed)
        }
        let frame = Wire.encode(command: command, arguments: arguments, id: id)
        let rc: CInt = fds.withLock { f in
            f.writable && !f.closed ? Sys.writeAll(self.fd, frame, passing: fd, deadline: deadline) : EPIPE
        }
        if rc != 0 {
            _ = state.withLock { $0.pending.removeValue(forKey: id) }
            if direct { releaseRole() }
            return .failure(Wire.sendFailed(rc, command: command, path: path))
        }
        if direct, let reply = directWait(id: id, command: command, deadline: deadline) {
            return reply
        }
        return await park(id: id, command: command)
    }

    /// Holding the read role, waits up to ``directWindow`` for the reply to `id`.
    /// Returns `nil` (role released) when the window passes first.
    private func directWait(id: Int, command: String, deadline: UInt64) -> Reply? {
        let until = min(deadline, monotonicNanos() &+ Self.directWindow)
        while true {
            let done: Reply? = state.withLock { s in
                if case .direct(let r?) = s.pending[id]?.waiter {
                    s.pending.removeValue(forKey: id)
                    return r
                }
                return nil
            }
            if let done {
                releaseRole()
                return done
            }
            let now = monotonicNanos()
            if now >= until {
                if now >= deadline {
                    _ = state.withLock { $0.pending.removeValue(forKey: id) }
                    releaseRole()
                    return .failure(timedOut(command))
                }
                releaseRole()
                return nil
            }
            // A blocking receive (bounded by SO_RCVTIMEO), as a plain C client does:
            // the one thread that waits is the one the kernel wakes.
            if let error = readAndDispatch(wait: true) {
                finish(error)
            }
        }
    }

    private func releaseRole() {
        let signal = state.withLock { s in
            s.role = .none
            return s.needsReader || s.closed != nil
        }
        Self.directSlot.store(false, ordering: .releasing)
        if signal { wakeReader() }
    }

    /// Waits on a continuation for the reply to `id` (the reader thread delivers it).
    private func park(id: Int, command: String) async -> Reply {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Reply, Never>) in
                enum Outcome { case resumeNow(Reply), parked(wake: Bool) }
                let outcome: Outcome = state.withLock { s in
                    guard let p = s.pending[id] else {
                        return .resumeNow(.failure(s.closed ?? QMPError(code: .cancelled, command: command, message: "cancelled")))
                    }
                    if case .direct(let r?) = p.waiter {
                        s.pending.removeValue(forKey: id)
                        return .resumeNow(r)
                    }
                    s.pending[id]!.waiter = .parked(continuation)
                    s.parked += 1
                    var wake = s.role == .none  // the reader must start watching the socket
                    if p.deadline < s.wakeAt {
                        s.wakeAt = p.deadline
                        wake = true
                    }
                    return .parked(wake: wake)
                }
                switch outcome {
                case .resumeNow(let reply): continuation.resume(returning: reply)
                case .parked(let wake): if wake { wakeReader() }
                }
            }
        } onCancel: {
            let c = state.withLock { $0.complete(id, .failure(QMPError(code: .cancelled, command: command, message: "cancelled while waiting for the reply"))) }
            c?.resume(returning: .failure(QMPError(code: .cancelled, command: command, message: "cancelled while waiting for the reply")))
        }
    }

    private func timedOut(_ command: String) -> QMPError { Wire.timedOut(command, path: path) }

    // MARK: - Events

    func subscribe(bufferSize: Int) -> QMPEventStream {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: QMPEvent.self, throwing: (any Error).self, bufferingPolicy: .bufferingNewest(max(1, bufferSize)))
        let counter = DropCounter()
        let outcome: (key: Int?, closed: QMPError?, closing: Bool, wake: Bool) = state.withLock { s in
            if let closed = s.closed { return (nil, closed, s.closing, false) }
            let key = s.nextSubscriber
            s.nextSubscriber += 1
            s.subscribers[key] = Subscriber(continuation: continuation, counter: counter)
            return (key, nil, false, s.role == .none)
        }
        if let key = outcome.key {
            if outcome.wake { wakeReader() }
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                let wake = self.state.withLock { s in
                    s.subscribers.removeValue(forKey: key)
                    return s.role == .reader && !s.needsReader
                }
                if wake { self.wakeReader() }  // let the reader give up the role
            }
        } else if outcome.closing {
            continuation.finish()
        } else {
            continuation.finish(throwing: outcome.closed)
        }
        return QMPEventStream(stream: stream, counter: counter)
    }

    // MARK: - State

    var greeting: QMPGreeting? { state.withLock { $0.greeting } }
    var closedReason: QMPError? { state.withLock { $0.closed } }

    /// Closes the connection; pending calls fail, streams end normally.
    func close() {
        state.withLock { $0.closing = true }
        fds.withLock { f in
            if !f.closed {
                Sys.shutdownBoth(fd)
                Sys.signal(eventFD: wakeFD)
            }
        }
    }

    // MARK: - Reader

    private func readLoop() {
        while true {
            let (exit, watch, wakeAt): (Bool, Bool, UInt64) = state.withLock { s in
                if s.closed != nil && s.role != .caller { return (true, false, 0) }
                if s.role == .none && s.needsReader && s.closed == nil { s.role = .reader }
                if s.role == .reader && (!s.needsReader || s.closed != nil) { s.role = .none }
                return (false, s.role == .reader, s.wakeAt)
            }
            if exit {
                // Only this thread closes the descriptors, and only once no caller reads them.
                fds.withLock { f in
                    f.writable = false
                    f.closed = true
                    Sys.close(fd)
                    Sys.close(wakeFD)
                }
                return
            }
            let now = monotonicNanos()
            if now >= wakeAt {
                expire(now: now)
                continue
            }
            let waitMillis = CInt(min((wakeAt - now + 999_999) / 1_000_000, 60_000))
            let (readable, woken, pollErr) = Sys.pollRead(watch ? fd : -1, wake: wakeFD, timeoutMillis: waitMillis)
            if woken { Sys.drain(eventFD: wakeFD) }
            if pollErr != 0 && pollErr != EINTR {
                finish(QMPError(code: .connectionClosed, message: "poll on \(path) failed: \(errnoText(pollErr))"))
            } else if readable, let error = readAndDispatch(wait: false) {
                finish(error)
            }
        }
    }

    /// Reads once from the socket and dispatches every complete frame.
    /// Only the holder of the read role calls it. Returns an error when the
    /// connection must end.
    private func readAndDispatch(wait: Bool) -> QMPError? {
        let n = Sys.receive(fd, into: input.bytes, wait: wait)
        if n == 0 {
            let closing = state.withLock { $0.closing }
            return closing
                ? QMPError(code: .connectionClosed, message: "the QMP connection to \(path) was closed by this client")
                : Wire.closedByPeer(path: path)
        }
        if n < 0 {
            let e = currentErrno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { return nil }
            return QMPError(code: .connectionClosed, message: "reading from \(path) failed: \(errnoText(e))")
        }
        input.framer.append(UnsafeRawBufferPointer(rebasing: input.bytes[0..<n]))
        do {
            while let frame = try input.framer.nextFrame() {
                if let error = handle(frame: frame) { return error }
            }
        } catch {
            return Wire.framingError(error, path: path)
        }
        return nil
    }

    /// Fails every parked call whose deadline passed and computes the next wake-up.
    /// (A caller waiting directly watches its own deadline.)
    private func expire(now: UInt64) {
        var expired: [(String, UnsafeContinuation<Reply, Never>)] = []
        var greetingWaiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = nil
        state.withLock { s in
            var next = now &+ Self.idleTick
            for (id, p) in s.pending {
                guard case .parked(let c) = p.waiter else { continue }
                if p.deadline <= now {
                    expired.append((p.command, c))
                    s.pending.removeValue(forKey: id)
                    s.parked -= 1
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
        for (command, c) in expired {
            c.resume(returning: .failure(timedOut(command)))
        }
        greetingWaiter?.resume(returning: .failure(Wire.greetingTimedOut(path: path)))
    }

    /// Dispatches one frame; returns an error when the connection must close.
    private func handle(frame: ArraySlice<UInt8>) -> QMPError? {
        switch Wire.decode(frame: frame, path: path) {
        case .failure(let error):
            return error
        case .success(.event(let event)):
            deliver(event)
        case .success(.reply(let explicitID, let result)):
            // Ids below this were issued by this connection (see ``nextID()``).
            let issued = ids.load(ordering: .relaxed)
            if let explicitID, explicitID < 1 || explicitID >= issued {
                return Wire.unmatchedReply(id: String(explicitID), path: path)
            }
            let resume: (UnsafeContinuation<Reply, Never>, Reply)? = state.withLock { s in
                var id = explicitID
                if id == nil {
                    // QEMU answers input it cannot parse with an id-less error. Commands
                    // are answered in order, so it belongs to the oldest unanswered call.
                    id = s.pending.filter { if case .direct(_?) = $0.value.waiter { return false }; return true }.keys.min()
                }
                // An id this connection issued whose call is gone: a reply after its deadline
                // or cancellation, dropped (the range check above refused ids never issued).
                guard let id, let p = s.pending[id] else { return nil }
                let reply = result.mapError { $0.qmpError(command: p.command) }
                return s.complete(id, reply).map { ($0, reply) }
            }
            if let (continuation, reply) = resume {
                continuation.resume(returning: reply)
            }
        case .success(.greeting(let greeting)):
            let waiter: UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>? = state.withLock { s in
                s.greeting = greeting
                defer { s.greetingWaiter = nil }
                return s.greetingWaiter
            }
            waiter?.resume(returning: .success(greeting))
        }
        return nil
    }

    /// Adds a tap; if the connection is closed already, `closed` runs at once.
    func addTap(_ tap: Tap) {
        let (closed, wake): (QMPError?, Bool) = state.withLock { s in
            if let c = s.closed { return (c, false) }
            s.taps.append(tap)
            return (nil, s.role == .none)  // the reader must start watching the socket
        }
        if let closed { tap.closed(closed) }
        if wake { wakeReader() }
    }

    private func deliver(_ event: QMPEvent) {
        let (taps, subscribers) = state.withLock { (Array($0.taps), Array($0.subscribers.values)) }
        for t in taps { t.event(event) }
        for s in subscribers {
            if case .dropped = s.continuation.yield(event) {
                s.counter.increment()
            }
        }
    }

    /// Ends the connection: fails everything pending, ends streams; the reader
    /// thread then closes the descriptors.
    private func finish(_ reason: QMPError) {
        var parked: [(String, UnsafeContinuation<Reply, Never>)] = []
        var taps: [Tap] = []
        let (waiter, subscribers, closing): (UnsafeContinuation<Result<QMPGreeting, QMPError>, Never>?, [Subscriber], Bool) = state.withLock { s in
            if s.closed != nil { return (nil, [], s.closing) }
            s.closed = reason
            taps = s.taps
            s.taps = []
            for (id, p) in s.pending {
                var error = reason
                error.command = p.command
                switch p.waiter {
                case .parked(let c):
                    parked.append((p.command, c))
                    s.pending.removeValue(forKey: id)
                case .direct(nil):
                    s.pending[id]!.waiter = .direct(.failure(error))
                case .direct:
                    break
                }
            }
            s.parked = 0
            defer {
                s.greetingWaiter = nil
                s.subscribers = [:]
            }
            return (s.greetingWaiter, Array(s.subscribers.values), s.closing)
        }
        fds.withLock { $0.writable = false }
        for (command, c) in parked {
            var error = reason
            error.command = command
            c.resume(returning: .failure(error))
        }
        waiter?.resume(returning: .failure(reason.code == .connectionClosed
            ? Wire.noGreeting(path: path) : reason))
        for t in taps { t.closed(reason) }
        for s in subscribers {
            if closing { s.continuation.finish() } else { s.continuation.finish(throwing: reason) }
        }
        wakeReader()
    }
}
