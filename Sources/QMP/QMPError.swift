/// An error from a QMP connection or command.
///
/// The ``description`` is what a user should read: what happened, on which socket
/// or command, and what to do. A reply of QEMU's `error` kind is a
/// ``Code-swift.struct/commandFailed`` error carrying QEMU's `class` and `desc`.
public struct QMPError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public var code: Code
    /// The QMP command that failed, when one did.
    public var command: String?
    /// QEMU's error class (e.g. `GenericError`, `DeviceNotFound`) for ``Code-swift.struct/commandFailed``.
    public var errorClass: String?
    /// A human-readable message.
    public var message: String

    /// Creates an error.
    public init(code: Code, command: String? = nil, errorClass: String? = nil, message: String) {
        self.code = code
        self.command = command
        self.errorClass = errorClass
        self.message = message
    }

    /// The message, prefixed with the command when there is one.
    public var description: String {
        if let command, code == .commandFailed {
            return "QMP command '\(command)' failed: \(message)"
        }
        if let command {
            return "QMP command '\(command)': \(message)"
        }
        return message
    }
}

extension QMPError {
    /// The kind of a ``QMPError``. New kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable {
            case connectFailed, timedOut, connectionClosed, protocolViolation, commandFailed, cancelled, invalidArgument
        }
        private let storage: Storage
        private init(_ storage: Storage) { self.storage = storage }

        /// The socket could not be connected (missing, refused, path too long, permission).
        public static var connectFailed: Self { Self(.connectFailed) }
        /// No greeting or reply arrived before the deadline: the monitor is busy with
        /// another client, or QEMU is unresponsive (e.g. stopped with SIGSTOP).
        public static var timedOut: Self { Self(.timedOut) }
        /// The connection closed (QEMU exited, or the client was closed) before a reply.
        public static var connectionClosed: Self { Self(.connectionClosed) }
        /// The peer sent something that is not QMP.
        public static var protocolViolation: Self { Self(.protocolViolation) }
        /// QEMU answered the command with an error.
        public static var commandFailed: Self { Self(.commandFailed) }
        /// The calling task was cancelled while waiting.
        public static var cancelled: Self { Self(.cancelled) }
        /// The call was refused before anything was sent (e.g. a bad file descriptor).
        public static var invalidArgument: Self { Self(.invalidArgument) }

        /// The kind's name.
        public var description: String { "\(storage)" }
    }
}
