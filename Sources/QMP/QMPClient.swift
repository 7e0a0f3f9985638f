/// A client for one QEMU monitor (QMP) unix socket.
///
/// Connecting reads QEMU's greeting and negotiates capabilities, both within a
/// deadline: QEMU serves one monitor client at a time and a second client waits
/// without a word, which this client reports as a ``QMPError/Code-swift.struct/timedOut``
/// error ("the monitor is busy … or QEMU is unresponsive") instead of hanging.
///
/// Any number of tasks may call ``execute(_:arguments:timeout:)`` at once; each
/// command carries a unique id and its reply is matched by id. Events go to every
/// ``events(bufferSize:)`` subscriber. When the connection ends, every pending call
/// fails and every event stream ends, with the reason.
///
/// ```swift
/// try await QMPClient.withConnection(to: "/run/qemu/web.sock") { qmp in
///     let status = try await qmp.queryStatus()
///     print(status.status)
/// }
/// ```
public final class QMPClient: Sendable {
    let connection: Connection

    /// The default deadline for connecting and for each command.
    public static let defaultTimeout: Duration = .seconds(10)

    /// The greeting QEMU sent.
    public let greeting: QMPGreeting

    init(connection: Connection, greeting: QMPGreeting) {
        self.connection = connection
        self.greeting = greeting
    }

    deinit {
        connection.close()
    }

    /// Connects to the QMP socket at `path` and negotiates capabilities.
    ///
    /// - Parameters:
    ///   - path: The unix socket path (at most 107 bytes).
    ///   - timeout: Deadline for connecting, the greeting and `qmp_capabilities` together.
    ///   - maxFrameSize: Largest message accepted from QEMU; a larger one closes the
    ///     connection with ``QMPError/Code-swift.struct/protocolViolation``.
    /// - Throws: ``QMPError`` with code `connectFailed` (no socket, refused, permission,
    ///   path too long), `timedOut` (no greeting: monitor busy or QEMU unresponsive), or
    ///   `protocolViolation` (the socket does not speak QMP).
    public static func connect(
        to path: String, timeout: Duration = defaultTimeout, maxFrameSize: Int = 16 << 20
    ) async throws(QMPError) -> QMPClient {
        switch await Connection.open(path: path, timeout: timeout, maxFrameSize: maxFrameSize) {
        case .success(let (connection, greeting)): return QMPClient(connection: connection, greeting: greeting)
        case .failure(let error): throw error
        }
    }

    /// Connects, runs `body` with the client, and closes the connection afterwards,
    /// whether `body` returns or throws.
    ///
    /// - Important: The client is valid only for the duration of `body`.
    public static func withConnection<Result>(
        to path: String, timeout: Duration = defaultTimeout,
        _ body: (QMPClient) async throws -> Result
    ) async throws -> Result {
        let client = try await connect(to: path, timeout: timeout)
        defer { client.close() }
        return try await body(client)
    }

    /// The socket path this client is connected to.
    public var socketPath: String { connection.path }

    /// The process id of the peer (QEMU), read with `SO_PEERCRED` at connect time.
    public var peerPID: Int32? { connection.peer?.pid }

    /// The user id of the peer, read with `SO_PEERCRED` at connect time.
    public var peerUID: UInt32? { connection.peer?.uid }

    /// Why the connection ended, or `nil` while it is open.
    public var closedReason: QMPError? { connection.closedReason }

    /// Whether the connection has ended.
    public var isClosed: Bool { connection.closedReason != nil }

    /// Runs a QMP command and returns its `return` value.
    ///
    /// - Parameters:
    ///   - command: The command name, e.g. `query-status`.
    ///   - arguments: The `arguments` object, or `nil` for none.
    ///   - timeout: Deadline for the reply.
    /// - Returns: The `return` member of QEMU's reply (often an empty object).
    /// - Throws: ``QMPError``: `commandFailed` with QEMU's error class and message when
    ///   QEMU answers with an error; `timedOut` at the deadline; `connectionClosed` when
    ///   the connection ends first; `cancelled` when the task is cancelled.
    @discardableResult
    public func execute(
        _ command: String, arguments: JSONValue? = nil, timeout: Duration = defaultTimeout
    ) async throws(QMPError) -> JSONValue {
        try await QMPTrace.traced(command, arguments, fd: false) { () async throws(QMPError) -> JSONValue in
            try await connection.call(command, arguments: arguments, timeoutNanos: nanoseconds(timeout), passing: nil).get()
        }
    }

    /// Runs a QMP command and sends `fd` with it as `SCM_RIGHTS` ancillary data.
    ///
    /// This is how `getfd` and `add-fd` receive descriptors. The caller keeps
    /// ownership of `fd` (QEMU receives a duplicate); close it when the call returns.
    ///
    /// - Throws: ``QMPError`` as ``execute(_:arguments:timeout:)``, and
    ///   `invalidArgument` when `fd` is not an open descriptor.
    @discardableResult
    public func execute(
        _ command: String, arguments: JSONValue? = nil, passing fd: Int32, timeout: Duration = defaultTimeout
    ) async throws(QMPError) -> JSONValue {
        guard Sys.isValidFD(fd) else {
            throw QMPError(code: .invalidArgument, command: command, message: "file descriptor \(fd) is not open")
        }
        return try await QMPTrace.traced(command, arguments, fd: true) { () async throws(QMPError) -> JSONValue in
            try await connection.call(command, arguments: arguments, timeoutNanos: nanoseconds(timeout), passing: fd).get()
        }
    }

    /// Subscribes to events.
    ///
    /// Each call returns an independent stream; events that arrive after this call
    /// are delivered to it. When the subscriber does not keep up, the oldest of
    /// `bufferSize` buffered events are dropped and counted in
    /// ``QMPEventStream/droppedCount``.
    public func events(bufferSize: Int = 1024) -> QMPEventStream {
        connection.subscribe(bufferSize: bufferSize)
    }

    /// Observes events and the end of the connection on the thread that reads the
    /// socket, in stream order: an event that QEMU sends before a reply is seen
    /// before that reply is returned. For this package's own state machines only:
    /// the closures must be quick and must not block or call back into the client.
    package func addTap(event: @escaping @Sendable (QMPEvent) -> Void, closed: @escaping @Sendable (QMPError) -> Void) {
        connection.addTap(Connection.Tap(event: event, closed: closed))
    }

    /// Closes the connection. Pending calls fail with `connectionClosed`; event
    /// streams end normally. Calling it again does nothing.
    public func close() {
        connection.close()
    }
}
