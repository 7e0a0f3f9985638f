public import QMP
import Synchronization

/// A connection to the QEMU guest agent (`qemu-ga`) of a running VM.
///
/// The agent is reached through the VM's virtio-serial port `org.qemu.guest_agent.0`, which QEMU
/// serves on a unix socket on the host: with ``VMConfig/guestAgent`` it is `qga.sock` in the VM's
/// runtime directory (``RuntimeLayout/guestAgentSocket``). QEMU accepts one client at a time on it,
/// so keep connections short, as with the monitor.
///
/// The agent protocol is QMP's JSON framing without greeting, ids or events: replies match
/// commands by order only. So the connection first resynchronises with `guest-sync-delimited`
/// (see ``GuestAgentFramer``), and again after any call that did not end cleanly (a timeout, a
/// malformed reply), so a late reply can never be taken for the answer to the next command.
/// Calls on one connection are serialised; each runs its blocking socket I/O on a thread of its
/// own (never on the cooperative pool) and has a deadline.
///
/// ```swift
/// try await GuestAgent.withConnection(socketPath: layout.guestAgentSocket) { agent in
///     try await agent.ping()
///     print(try await agent.osInfo().prettyName ?? "?")
/// }
/// ```
public final class GuestAgent: Sendable {
    /// The socket this connection was opened on (or a description of an adopted descriptor).
    public let socketPath: String
    private let session: Mutex<Session>

    struct Session: ~Copyable {
        var fd: CInt
        var framer = GuestAgentFramer()
        var needsSync = true
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var nextSyncID: Int

        init(fd: CInt) {
            self.fd = fd
            // A fresh id per connection (the agent echoes it): a stale reply to another client's
            // sync cannot match ours.
            nextSyncID = Int.random(in: 1..<(1 << 30))
        }
    }

    /// The default deadline of a call.
    public static let defaultTimeout: Duration = .seconds(10)

    /// Wraps an already connected stream socket `fd` (tests pass one end of a socketpair); the
    /// connection owns it from now on and resynchronises before its first call.
    package init(adopting fd: CInt, description: String) {
        socketPath = description
        session = Mutex(Session(fd: fd))
    }

    deinit { close() }

    /// Connects to the agent socket at `socketPath` and resynchronises the stream.
    ///
    /// - Parameters:
    ///   - socketPath: The host side of the agent's virtio-serial port.
    ///   - timeout: The deadline for connecting and for the agent's answer to `guest-sync-delimited`.
    /// - Throws: ``GuestAgentError`` — ``GuestAgentError/Code-swift.struct/connectFailed`` when the
    ///   socket cannot be reached, ``GuestAgentError/Code-swift.struct/timedOut`` when nothing in the
    ///   guest answers (the agent is not running yet).
    public static func connect(socketPath: String, timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> GuestAgent {
        let deadline = Posix.monotonicNanoseconds() + nanoseconds(timeout)
        let (fd, e) = AgentSocket.connectUnix(socketPath, deadline: deadline)
        guard fd >= 0 else {
            throw GuestAgentError(code: .connectFailed,
                                  message: "cannot connect to the guest agent socket \(socketPath): \(Posix.errorText(e))")
        }
        let agent = GuestAgent(adopting: fd, description: socketPath)
        try await agent.sync(timeout: timeout)
        return agent
    }

    /// Runs `body` with a connection to the agent at `socketPath`, closed when `body` returns or throws.
    ///
    /// - Important: The connection is valid only for the duration of the call.
    /// - Throws: What ``connect(socketPath:timeout:)`` throws, or what `body` throws.
    public static func withConnection<R>(socketPath: String, timeout: Duration = defaultTimeout,
                                         _ body: (GuestAgent) async throws -> R) async throws -> R {
        let agent = try await connect(socketPath: socketPath, timeout: timeout)
        defer { agent.close() }
        return try await body(agent)
    }

    /// Closes the connection; later calls fail with ``GuestAgentError/Code-swift.struct/closed``.
    public func close() {
        session.withLock { s in
            if s.fd >= 0 { AgentSocket.close(s.fd) }
            s.fd = -1
        }
    }

    // MARK: - Calls

    /// Puts the stream back in step with the agent (`0xFF`, then `guest-sync-delimited` with a fresh id).
    ///
    /// Calls do this themselves when needed; calling it directly checks that the agent answers.
    /// - Throws: ``GuestAgentError``.
    public func sync(timeout: Duration = defaultTimeout) async throws(GuestAgentError) {
        let deadline = Posix.monotonicNanoseconds() + nanoseconds(timeout)
        try await offPool { () throws(GuestAgentError) in
            try self.session.withLock { (s: inout Session) throws(GuestAgentError) in
                try Self.resync(&s, deadline: deadline, path: self.socketPath)
            }
        }
    }

    /// Sends `command` with `arguments` and returns the agent's `return` value.
    ///
    /// - Parameters:
    ///   - command: An agent command (`guest-ping`, `guest-get-osinfo`…).
    ///   - arguments: Its arguments object, if any.
    ///   - timeout: The deadline for the whole call, a resynchronisation included.
    /// - Throws: ``GuestAgentError``: ``GuestAgentError/Code-swift.struct/commandFailed`` with the
    ///   agent's class when it refuses the command; ``GuestAgentError/Code-swift.struct/timedOut``,
    ///   ``GuestAgentError/Code-swift.struct/closed`` or
    ///   ``GuestAgentError/Code-swift.struct/protocolViolation`` otherwise (the next call resynchronises).
    public func execute(_ command: String, arguments: JSONValue? = nil,
                        timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> JSONValue {
        let deadline = Posix.monotonicNanoseconds() + nanoseconds(timeout)
        return try await offPool { () throws(GuestAgentError) -> JSONValue in
            try self.session.withLock { (s: inout Session) throws(GuestAgentError) -> JSONValue in
                try Self.exchange(&s, command: command, arguments: arguments, deadline: deadline, path: self.socketPath)
            }
        }
    }

    /// Runs blocking work on ``BlockingWorkExecutor``, off the cooperative pool.
    private func offPool<T>(_ body: @Sendable () throws(GuestAgentError) -> T) async throws(GuestAgentError) -> T {
        let result: Result<T, GuestAgentError> = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
            do throws(GuestAgentError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try result.get()
    }

    // MARK: - The exchange (blocking; under the session lock)

    private static func exchange(_ s: inout Session, command: String, arguments: JSONValue?, deadline: UInt64,
                                 path: String) throws(GuestAgentError) -> JSONValue {
        guard s.fd >= 0 else { throw GuestAgentError(code: .closed, message: "the guest agent connection \(path) is closed") }
        if s.needsSync { try resync(&s, deadline: deadline, path: path) }
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { message["arguments"] = arguments }
        do throws(GuestAgentError) {
            try send(&s, JSONValue.object(message).jsonBytes, deadline: deadline, path: path, command: command)
            while true {
                let frame = try readFrame(&s, deadline: deadline, path: path, command: command)
                if let value = frame["return"] { return value }
                if let error = frame["error"] {
                    let errorClass = error["class"]?.stringValue ?? "GenericError"
                    let desc = error["desc"]?.stringValue ?? "\(error)"
                    throw GuestAgentError(code: .commandFailed, message: "guest agent: \(command): \(desc)", errorClass: errorClass)
                }
                s.needsSync = true
                throw GuestAgentError(code: .protocolViolation,
                                      message: "the guest agent answered \(command) with neither return nor error: \(frame)")
            }
        } catch {
            if error.code != .commandFailed { s.needsSync = true }
            throw error
        }
    }

    private static func resync(_ s: inout Session, deadline: UInt64, path: String) throws(GuestAgentError) {
        guard s.fd >= 0 else { throw GuestAgentError(code: .closed, message: "the guest agent connection \(path) is closed") }
        s.needsSync = true
        let id = s.nextSyncID
        s.nextSyncID = s.nextSyncID &+ 1
        s.framer.beginSync()
        // The 0xFF byte first: it makes the agent drop a half-received command left by anyone.
        let bytes = [GuestAgentFramer.sentinel]
            + JSONValue.object(["execute": "guest-sync-delimited", "arguments": ["id": .int(id)]]).jsonBytes
        try send(&s, bytes, deadline: deadline, path: path, command: "guest-sync-delimited")
        while true {
            let frame = try readFrame(&s, deadline: deadline, path: path, command: "guest-sync-delimited")
            // Stale replies (to earlier commands, or to an earlier sync) are dropped.
            if frame["return"]?.intValue == id { break }
        }
        s.framer.endSync()
        s.needsSync = false
    }

    private static func send(_ s: inout Session, _ bytes: [UInt8], deadline: UInt64, path: String,
                             command: String) throws(GuestAgentError) {
        switch AgentSocket.writeAll(s.fd, bytes, deadline: deadline) {
        case .ok: return
        case .timedOut:
            throw GuestAgentError(code: .timedOut, message: "the guest agent at \(path) did not take \(command) before the deadline")
        case .closed:
            throw GuestAgentError(code: .closed, message: "the guest agent connection \(path) was closed while sending \(command)")
        case .failed(let e):
            throw GuestAgentError(code: .closed, message: "sending \(command) to the guest agent at \(path): \(Posix.errorText(e))")
        }
    }

    private static func readFrame(_ s: inout Session, deadline: UInt64, path: String,
                                  command: String) throws(GuestAgentError) -> JSONValue {
        while true {
            if let frame = try s.framer.nextFrame() { return frame }
            var count = 0
            switch AgentSocket.read(s.fd, into: &s.buffer, count: &count, deadline: deadline) {
            case .ok:
                s.framer.append(s.buffer[0..<count])
            case .timedOut:
                throw GuestAgentError(code: .timedOut, message: "the guest agent at \(path) did not answer \(command) in time"
                                      + (command == "guest-sync-delimited" ? " (is qemu-guest-agent running in the guest?)" : ""))
            case .closed:
                throw GuestAgentError(code: .closed, message: "the guest agent connection \(path) was closed while waiting for \(command)")
            case .failed(let e):
                throw GuestAgentError(code: .closed, message: "reading \(command)'s answer from \(path): \(Posix.errorText(e))")
            }
        }
    }
}

// MARK: - Typed commands

extension GuestAgent {
    /// Checks that the agent answers.
    ///
    /// The corresponding agent command is `guest-ping`.
    /// - Throws: ``GuestAgentError``.
    public func ping(timeout: Duration = defaultTimeout) async throws(GuestAgentError) {
        _ = try await execute("guest-ping", timeout: timeout)
    }

    /// The guest's operating system, as the agent reads it from `/etc/os-release` and `uname`.
    ///
    /// The corresponding agent command is `guest-get-osinfo`.
    /// - Throws: ``GuestAgentError``.
    public func osInfo(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> GuestOSInfo {
        let value = try await execute("guest-get-osinfo", timeout: timeout)
        guard value.objectValue != nil else { throw Self.unexpected("guest-get-osinfo", value) }
        return GuestOSInfo(value)
    }

    /// The guest's network interfaces and their addresses.
    ///
    /// The corresponding agent command is `guest-network-get-interfaces`.
    /// - Throws: ``GuestAgentError``.
    public func networkInterfaces(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> [GuestNetworkInterface] {
        let value = try await execute("guest-network-get-interfaces", timeout: timeout)
        guard let list = value.arrayValue else { throw Self.unexpected("guest-network-get-interfaces", value) }
        var result: [GuestNetworkInterface] = []
        for item in list {
            guard let i = GuestNetworkInterface(item) else { throw Self.unexpected("guest-network-get-interfaces", value) }
            result.append(i)
        }
        return result
    }

    /// The guest's logical CPUs and whether each is online.
    ///
    /// The corresponding agent command is `guest-get-vcpus`.
    /// - Throws: ``GuestAgentError``.
    public func vcpus(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> [GuestVCPU] {
        let value = try await execute("guest-get-vcpus", timeout: timeout)
        guard let list = value.arrayValue else { throw Self.unexpected("guest-get-vcpus", value) }
        var result: [GuestVCPU] = []
        for item in list {
            guard let v = GuestVCPU(item) else { throw Self.unexpected("guest-get-vcpus", value) }
            result.append(v)
        }
        return result
    }

    /// Brings logical CPUs online or offline; returns how many of `changes` the guest carried out
    /// (in order: the first failure stops it).
    ///
    /// The corresponding agent command is `guest-set-vcpus`.
    /// - Throws: ``GuestAgentError`` (``GuestAgentError/Code-swift.struct/commandFailed`` when the first change fails).
    public func setVCPUs(_ changes: [GuestVCPU], timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> Int {
        let list = JSONValue.array(changes.map { ["logical-id": .int($0.logicalID), "online": .bool($0.online)] })
        let value = try await execute("guest-set-vcpus", arguments: ["vcpus": list], timeout: timeout)
        guard let n = value.intValue else { throw Self.unexpected("guest-set-vcpus", value) }
        return n
    }

    /// Brings every offline logical CPU that the guest lists online; returns the CPUs as they are afterwards.
    ///
    /// Uses `guest-get-vcpus`, `guest-set-vcpus` for the offline ones (if any), then `guest-get-vcpus` again.
    /// - Throws: ``GuestAgentError``.
    public func onlineAllVCPUs(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> [GuestVCPU] {
        let before = try await vcpus(timeout: timeout)
        let offline = before.filter { !$0.online }.map { GuestVCPU(logicalID: $0.logicalID, online: true) }
        if offline.isEmpty { return before }
        _ = try await setVCPUs(offline, timeout: timeout)
        return try await vcpus(timeout: timeout)
    }

    /// The guest's memory blocks (Linux memory hotplug sections) and whether each is online.
    ///
    /// The corresponding agent command is `guest-get-memory-blocks`.
    /// - Throws: ``GuestAgentError``.
    public func memoryBlocks(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> [GuestMemoryBlock] {
        let value = try await execute("guest-get-memory-blocks", timeout: timeout)
        guard let list = value.arrayValue else { throw Self.unexpected("guest-get-memory-blocks", value) }
        var result: [GuestMemoryBlock] = []
        for item in list {
            guard let b = GuestMemoryBlock(item) else { throw Self.unexpected("guest-get-memory-blocks", value) }
            result.append(b)
        }
        return result
    }

    /// The size in bytes of one of the guest's memory blocks (the same for all of them).
    ///
    /// The corresponding agent command is `guest-get-memory-block-info`.
    /// - Throws: ``GuestAgentError``.
    public func memoryBlockSize(timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> UInt64 {
        let value = try await execute("guest-get-memory-block-info", timeout: timeout)
        guard let size = value["size"]?.intValue, size > 0 else { throw Self.unexpected("guest-get-memory-block-info", value) }
        return UInt64(size)
    }

    /// Brings memory blocks online or offline; returns the guest's answer for each.
    ///
    /// The corresponding agent command is `guest-set-memory-blocks`.
    /// - Throws: ``GuestAgentError``.
    public func setMemoryBlocks(_ changes: [GuestMemoryBlock],
                                timeout: Duration = defaultTimeout) async throws(GuestAgentError) -> [GuestMemoryBlockResponse] {
        let list = JSONValue.array(changes.map { ["phys-index": .int($0.physicalIndex), "online": .bool($0.online)] })
        let value = try await execute("guest-set-memory-blocks", arguments: ["mem-blks": list], timeout: timeout)
        guard let items = value.arrayValue else { throw Self.unexpected("guest-set-memory-blocks", value) }
        var result: [GuestMemoryBlockResponse] = []
        for item in items {
            guard let r = GuestMemoryBlockResponse(item) else { throw Self.unexpected("guest-set-memory-blocks", value) }
            result.append(r)
        }
        return result
    }

    private static func unexpected(_ command: String, _ value: JSONValue) -> GuestAgentError {
        GuestAgentError(code: .unexpectedReply, message: "the guest agent's answer to \(command) has an unexpected shape: \(value)")
    }
}

extension RuntimeLayout {
    /// The host side of the guest agent's virtio-serial port (`qga.sock` in the runtime directory), which
    /// the VM has when launched with ``VMConfig/guestAgent``.
    public var guestAgentSocket: String { runtimeDirectory + "/qga.sock" }
}
