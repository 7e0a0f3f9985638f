/// An error from talking to a QEMU guest agent.
///
/// The ``description`` says what happened and what to do; it is what the CLI prints. An agent
/// that answers a command with an error is a ``Code-swift.struct/commandFailed`` error carrying
/// the agent's ``errorClass``; a guest without a running agent is a
/// ``Code-swift.struct/timedOut`` one (QEMU accepts the connection on the host side whether or
/// not anything in the guest listens).
public struct GuestAgentError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public var code: Code
    /// A human-readable message.
    public var message: String
    /// The agent's error class (`GenericError`, `CommandNotFound`…), for ``Code-swift.struct/commandFailed``.
    public var errorClass: String?

    /// Creates an error.
    public init(code: Code, message: String, errorClass: String? = nil) {
        self.code = code
        self.message = message
        self.errorClass = errorClass
    }

    /// The message.
    public var description: String { message }

    /// The kind of a ``GuestAgentError``. New kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The agent socket could not be reached (no such VM, or no agent channel).
        public static var connectFailed: Self { Self("connectFailed") }
        /// No answer within the deadline (the agent is not running in the guest yet, or is wedged).
        public static var timedOut: Self { Self("timedOut") }
        /// The peer closed the connection (QEMU stopped, or another client took the channel).
        public static var closed: Self { Self("closed") }
        /// The peer sent something that is not the agent protocol.
        public static var protocolViolation: Self { Self("protocolViolation") }
        /// The agent answered the command with an error; see ``GuestAgentError/errorClass``.
        public static var commandFailed: Self { Self("commandFailed") }
        /// The agent's answer does not have the documented shape.
        public static var unexpectedReply: Self { Self("unexpectedReply") }

        /// The kind's name.
        public var description: String { name }
    }
}
