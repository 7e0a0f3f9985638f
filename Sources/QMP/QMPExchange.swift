#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Short QMP conversations with many monitors at once, all on the calling thread: each
/// connects, reads QEMU's greeting, then sends batches of commands pipelined (written at
/// once, replies matched by id) until it has what it wants, and hangs up; one `poll(2)`
/// loop serves every connection, each within a deadline of its own.
///
/// For code that asks many monitors a few questions (observing fifty VMs): no thread per
/// connection or per VM, no task hops. A conversation's ``Conversation/opening`` queries
/// are written with `qmp_capabilities` right after `connect(2)`, before the greeting has
/// arrived (QEMU reads them once it has greeted), so they cost QEMU's answer and no round
/// trip of ours; the first batch follows the greeting. Events that arrive meanwhile are
/// ignored. ``QMPClient`` is the client for everything else.
package enum QMPExchange {
    /// One command of a batch.
    package typealias Command = (command: String, arguments: JSONValue?)
    /// One command's result: QEMU's `return` value, or its error as
    /// ``QMPError/Code-swift.struct/commandFailed``.
    package typealias Reply = Result<JSONValue, QMPError>

    /// The process at the other end of a monitor connection, as the kernel reports it
    /// (`SO_PEERCRED`: the credentials of the process that listens on the socket).
    package struct Peer: Sendable, Hashable {
        /// Its process id.
        package var pid: Int32
        /// Its user id.
        package var uid: UInt32
    }

    /// What to say to one monitor.
    package struct Conversation {
        /// The socket path.
        package var path: String
        /// Asked when a connection is refused or the socket is missing: whether to try again
        /// (in 10 ms, within the deadline), for a QEMU that is still starting.
        package var retryRefused: () -> Bool = { false }
        /// Commands written with `qmp_capabilities` as soon as the connection is open, before
        /// the greeting is read and ``start`` has checked the peer: read-only queries only.
        /// Their replies come first in the first batch's.
        package var opening: [Command] = []
        /// Called with the greeting and the peer (`SO_PEERCRED`; `nil` when the kernel did not
        /// say): the commands the first batch adds to the ``opening`` (may be none), or `nil`
        /// to hang up at once. This is where a caller proves who the peer is before it sends
        /// anything that is not a read-only query.
        package var start: (QMPGreeting, Peer?) -> [Command]?
        /// Called with each batch's replies, in order: the next batch, or `nil` when done.
        package var next: ([Reply]) -> [Command]? = { _ in nil }

        /// A conversation with the monitor at `path`; `start` is given the peer's pid.
        package init(path: String, start: @escaping (QMPGreeting, Int32?) -> [Command]?) {
            self.path = path
            self.start = { greeting, peer in start(greeting, peer?.pid) }
        }

        /// A conversation with the monitor at `path` whose `start` is given the peer's pid and uid.
        package static func checkingPeer(path: String, start: @escaping (QMPGreeting, Peer?) -> [Command]?) -> Conversation {
            var c = Conversation(path: path) { _, _ in nil }
            c.start = start
            return c
        }
    }

    /// Connections opened ahead of a ``run(_:timeout:maxFrameSize:preconnected:whileConnecting:)``,
    /// each with an opening already written, so that the QEMUs greet and answer while the caller
    /// does other work. A run takes the connection of a conversation's path from here instead of
    /// connecting, when the conversation's ``Conversation/opening`` is this one's; the ones no
    /// run takes are closed with this object.
    package final class Preconnected: @unchecked Sendable {
        private let lock = Mutex<[String: CInt]>([:])
        private let claimed = Mutex(false)
        /// `qmp_capabilities` and the opening, as written to each connection.
        let openingBytes: [UInt8]

        /// Connects to each of `paths` now (once; a path that refuses or whose listen queue is
        /// full is left to the run) and writes `opening` (read-only queries) to each.
        package init(paths: [String], opening: [Command] = []) {
            openingBytes = QMPExchange.openingBytes(opening)
            var fds: [String: CInt] = [:]
            for path in paths where Wire.pathProblem(path) == nil {
                let (fd, _) = Sys.connectUnix(path, timeoutNanos: 1_000)
                guard fd >= 0 else { continue }
                // The socket buffer takes these few hundred bytes at once; a failed write leaves the path to the run.
                if openingBytes.isEmpty || Sys.writeAll(fd, openingBytes, passing: nil, deadline: monotonicNanos() &+ 100_000_000) == 0 {
                    fds[path] = fd
                } else {
                    Sys.close(fd)
                }
            }
            lock.withLock { $0 = fds }
        }

        /// How many connections are held (opened and not taken).
        package var count: Int { lock.withLock { $0.count } }

        /// Whether this is the first claim: for a holder handing the connections to one user.
        package func claim() -> Bool {
            claimed.withLock { c in
                defer { c = true }
                return !c
            }
        }

        /// Takes the connection to `path`, if one was opened with `opening` written.
        func take(_ path: String, opening: [UInt8]) -> CInt? {
            guard opening == openingBytes else { return nil }
            return lock.withLock { $0.removeValue(forKey: path) }
        }

        deinit {
            lock.withLock { fds in fds.values.forEach(Sys.close) }
        }
    }

    /// `qmp_capabilities` (id 1) and `opening` (ids from 2), the commands written right after
    /// connecting; none when there is no opening (the capabilities then go with the first batch).
    static func numberedOpening(_ opening: [Command]) -> [(id: Int, command: Command)] {
        guard !opening.isEmpty else { return [] }
        return ([("qmp_capabilities", nil)] + opening).enumerated().map { ($0.offset + 1, $0.element) }
    }

    /// ``numberedOpening(_:)`` as written.
    static func openingBytes(_ opening: [Command]) -> [UInt8] {
        numberedOpening(opening).flatMap { Wire.encode(command: $0.command.command, arguments: $0.command.arguments, id: $0.id) }
    }

    /// Runs `conversations` together until each is done, failed or past its deadline (`timeout`
    /// from its start). Returns, per conversation, `nil` when it ran to its end, else why it
    /// stopped: `connectFailed`, `timedOut` (no greeting, no reply, or a listen queue that stayed
    /// full), `connectionClosed` or `protocolViolation`.
    ///
    /// - Parameters:
    ///   - maxOpen: How many conversations hold a connection at once; the next starts when one
    ///     ends (a wedged monitor holds up only its own slot, for its deadline).
    ///   - preconnected: Connections opened earlier, taken by path (those start at once).
    ///   - whileConnecting: Runs once the first connections are open, before any is read: work
    ///     done here overlaps with the QEMUs preparing their greetings.
    package static func run(_ conversations: [Conversation], timeout: Duration, maxOpen: Int = .max,
                            maxFrameSize: Int = 16 << 20, preconnected: Preconnected? = nil,
                            whileConnecting: () -> Void = {}) -> [QMPError?] {
        let talks = conversations.map { Talk($0, maxFrameSize: maxFrameSize) }
        let span = nanoseconds(timeout)
        var open = 0
        var now = monotonicNanos()
        for t in talks {
            if let fd = preconnected?.take(t.path, opening: t.openingBytes) {
                t.start(at: now, span: span)
                t.adopt(fd)
                t.openingWritten()
                open += 1
            }
        }
        /// Starts conversations while slots are free.
        func fill(_ now: UInt64) {
            for t in talks where open < maxOpen && !t.started {
                t.start(at: now, span: span)
                t.connect(timeout: timeout, now: now)
                if t.outcome == nil { open += 1 }
            }
        }
        fill(now)
        whileConnecting()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var fds: [pollfd] = []
        var polled: [Talk] = []
        while true {
            now = monotonicNanos()
            fill(now)
            var wakeAt = UInt64.max
            fds.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            for t in talks where t.started && t.outcome == nil {
                if now >= t.deadline {
                    t.fail(t.timeoutError(timeout))
                    continue
                }
                wakeAt = min(wakeAt, t.deadline)
                if t.fd < 0 {
                    if now >= t.connectAt { t.connect(timeout: timeout, now: now) }
                    if t.outcome == nil && t.fd < 0 { wakeAt = min(wakeAt, t.connectAt) }
                }
                if t.fd >= 0 && t.outcome == nil {
                    fds.append(pollfd(fd: t.fd, events: Int16(POLLIN), revents: 0))
                    polled.append(t)
                }
            }
            open = talks.count { $0.started && $0.outcome == nil }
            if open == 0 && talks.allSatisfy(\.started) { break }
            if open < maxOpen && !talks.allSatisfy(\.started) { continue }  // a slot freed: start the next
            let wait = wakeAt > now ? CInt(min((wakeAt - now + 999_999) / 1_000_000, 60_000)) : 0
            let rc = poll(&fds, nfds_t(fds.count), wait)
            if rc < 0 && currentErrno != EINTR {
                let e = QMPError(code: .connectionClosed, message: "poll failed: \(errnoText(currentErrno))")
                talks.filter { $0.outcome == nil }.forEach { $0.fail(e) }
                break
            }
            guard rc > 0 else { continue }
            for (i, t) in polled.enumerated() where fds[i].revents != 0 && t.outcome == nil {
                let n = buffer.withUnsafeMutableBytes { Sys.receive(t.fd, into: $0, wait: false) }
                if n == 0 {
                    t.fail(t.greeting == nil ? Wire.noGreeting(path: t.path) : Wire.closedByPeer(path: t.path))
                } else if n < 0 {
                    let e = currentErrno
                    if e != EAGAIN && e != EWOULDBLOCK && e != EINTR {
                        t.fail(QMPError(code: .connectionClosed, message: "reading from \(t.path) failed: \(errnoText(e))"))
                    }
                } else {
                    buffer.withUnsafeBytes { t.received(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }
        }
        for t in talks { t.hangUp() }
        return talks.map { $0.outcome ?? nil }
    }

    /// The state of one conversation.
    private final class Talk {
        let conversation: Conversation
        var path: String { conversation.path }
        var fd: CInt = -1
        /// Whether the conversation has begun (holds or seeks a connection).
        var started = false
        /// When it must have ended.
        var deadline: UInt64 = .max
        /// When to try connecting again (a full listen queue, or a QEMU still starting).
        var connectAt: UInt64 = 0
        /// Why the last connect failed, for the error at the deadline.
        var lastConnectErrno: CInt = 0
        var framer: QMPFrameReader
        var greeting: QMPGreeting? = nil
        var peer: Peer? = nil
        var negotiated = false
        var capabilitiesSent = false
        var nextID = 1
        var batch: [(id: Int, command: String)] = []
        var results: [Int: Reply] = [:]
        /// `.some(nil)`: done; `.some(error)`: failed; `nil`: still talking.
        var outcome: QMPError?? = nil

        init(_ conversation: Conversation, maxFrameSize: Int) {
            self.conversation = conversation
            self.framer = QMPFrameReader(maxFrameSize: maxFrameSize)
        }

        /// `qmp_capabilities` and the opening, as written right after connecting (empty without an opening).
        var openingBytes: [UInt8] { QMPExchange.openingBytes(conversation.opening) }

        /// The opening went out (here or ahead of the run): its commands await replies.
        func openingWritten() {
            let numbered = QMPExchange.numberedOpening(conversation.opening)
            guard !numbered.isEmpty else { return }
            capabilitiesSent = true
            batch = numbered.map { ($0.id, $0.command.command) }
            nextID = batch.count + 1
        }

        func start(at now: UInt64, span: UInt64) {
            started = true
            deadline = now &+ span
        }

        func adopt(_ fd: CInt) {
            self.fd = fd
            peer = Sys.peerCredentials(fd).map { Peer(pid: Int32($0.pid), uid: UInt32($0.uid)) }
        }

        func connect(timeout: Duration, now: UInt64) {
            if let problem = Wire.pathProblem(path) { return fail(problem) }
            // Tries once: a full listen queue answers EAGAIN at once instead of blocking the loop.
            let (fd, e) = Sys.connectUnix(path, timeoutNanos: 1_000)
            if fd >= 0 {
                adopt(fd)
                if !conversation.opening.isEmpty { send(conversation.opening) }
                return
            }
            if e == EAGAIN || ((e == ECONNREFUSED || e == ENOENT) && conversation.retryRefused()) {
                connectAt = now &+ 10_000_000
                lastConnectErrno = e
                return
            }
            fail(Wire.connectError(path: path, errno: e))
        }

        /// Why the deadline ended this conversation.
        func timeoutError(_ timeout: Duration) -> QMPError {
            if fd < 0 {
                return lastConnectErrno == EAGAIN ? Wire.queueFull(path: path, timeout: timeout)
                    : QMPError(code: .timedOut, message: "\(Wire.connectError(path: path, errno: lastConnectErrno).message), until the deadline (\(timeout))")
            }
            if greeting == nil { return Wire.greetingTimedOut(path: path) }
            let waiting = batch.first { results[$0.id] == nil }?.command ?? "qmp_capabilities"
            return Wire.timedOut(waiting, path: path)
        }

        func received(_ bytes: UnsafeRawBufferPointer) {
            framer.append(bytes)
            while outcome == nil {
                let frame: ArraySlice<UInt8>
                do {
                    guard let f = try framer.nextFrame() else { return }
                    frame = f
                } catch {
                    return fail(Wire.framingError(error, path: path))
                }
                switch Wire.decode(frame: frame, path: path) {
                case .failure(let error):
                    fail(error)
                case .success(.greeting(let g)) where greeting == nil:
                    greeting = g
                    guard let first = conversation.start(g, peer) else { return finish() }
                    if !first.isEmpty || batch.isEmpty { send(first) }
                case .success(.reply(let explicitID, let result)):
                    // An id-less error answers input QEMU could not parse: the oldest unanswered command.
                    // Every earlier batch was answered in full before this one was sent, so a reply
                    // that matches no unanswered command of this batch answers nothing we asked.
                    guard let entry = batch.first(where: { entry in explicitID.map { $0 == entry.id } ?? (results[entry.id] == nil) }),
                          results[entry.id] == nil else {
                        return fail(Wire.unmatchedReply(id: explicitID.map(String.init), path: path))
                    }
                    results[entry.id] = result.mapError { $0.qmpError(command: entry.command) }
                    if results.count == batch.count { batchAnswered() }
                case .success:
                    continue  // events (and a repeated greeting) are not this conversation's business
                }
            }
        }

        private func batchAnswered() {
            var replies = batch.map { results[$0.id]! }
            if !negotiated {
                negotiated = true
                if case .failure(var error) = replies.removeFirst() {
                    error.message = "qmp_capabilities was refused: \(error.message)"
                    return fail(error)
                }
            }
            batch = []
            results = [:]
            guard let more = conversation.next(replies), !more.isEmpty else { return finish() }
            send(more)
        }

        private func send(_ commands: [Command]) {
            var bytes: [UInt8] = []
            if !capabilitiesSent {
                capabilitiesSent = true
                batch.append((nextID, "qmp_capabilities"))
                bytes += Wire.encode(command: "qmp_capabilities", arguments: nil, id: nextID)
                nextID += 1
            }
            for c in commands {
                batch.append((nextID, c.command))
                bytes += Wire.encode(command: c.command, arguments: c.arguments, id: nextID)
                nextID += 1
            }
            if batch.isEmpty { return finish() }
            let rc = Sys.writeAll(fd, bytes, passing: nil, deadline: deadline)
            if rc != 0 { fail(Wire.sendFailed(rc, command: batch.first?.command, path: path)) }
        }

        private func finish() {
            outcome = .some(nil)
            hangUp()
        }

        func fail(_ error: QMPError) {
            var error = error
            if error.command == nil, error.code != .connectFailed, let waiting = batch.first(where: { results[$0.id] == nil }) {
                error.command = waiting.command
            }
            outcome = .some(error)
            hangUp()
        }

        func hangUp() {
            if fd >= 0 {
                Sys.close(fd)
                fd = -1
            }
        }
    }
}
