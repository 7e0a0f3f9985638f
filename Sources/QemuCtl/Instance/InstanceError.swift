public import QMP

/// An error from starting, attaching to or controlling a VM.
///
/// The ``description`` says what happened and what to do; it is what the CLI prints.
public struct InstanceError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public var code: Code
    /// A human-readable message.
    public var message: String
    /// The QMP error underneath, when there is one.
    public var qmp: QMPError?

    /// Creates an error.
    public init(code: Code, message: String, qmp: QMPError? = nil) {
        self.code = code
        self.message = message
        self.qmp = qmp
    }

    /// The message.
    public var description: String { message }

    /// QEMU's own words when a QMP command failed (the ``qmp`` error's message, without what
    /// was being done), else ``message``.
    public var reason: String { qmp?.message ?? message }

    /// Whether a deadline passed: the monitor was busy or QEMU did not answer.
    public var timedOut: Bool { code == .unresponsive || qmp?.code == .timedOut }

    /// The kind of an ``InstanceError``. New kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The configuration is invalid (see the message for every problem).
        public static var invalidConfig: Self { Self("invalidConfig") }
        /// QEMU could not be found or refused to start; the message holds QEMU's own error.
        public static var startFailed: Self { Self("startFailed") }
        /// A VM of this name is already running (or another program is starting it).
        public static var alreadyRunning: Self { Self("alreadyRunning") }
        /// No VM found (socket, pid or process gone).
        public static var notFound: Self { Self("notFound") }
        /// QEMU did not answer within the deadline.
        public static var unresponsive: Self { Self("unresponsive") }
        /// A QMP command failed; see ``InstanceError/qmp``.
        public static var commandFailed: Self { Self("commandFailed") }
        /// A file or directory of the runtime layout could not be created or used.
        public static var runtimeDirectory: Self { Self("runtimeDirectory") }
        /// The operation needs something this instance does not have (e.g. a process id).
        public static var unsupported: Self { Self("unsupported") }
        /// The process at the instance's pid is not proven to be the QEMU it connected to (it
        /// exited and the pid was reused, it is not a QEMU, it is not this user's): no signal
        /// was sent to it.
        public static var notProven: Self { Self("notProven") }

        /// The kind's name.
        public var description: String { name }
    }

    static func from(_ error: QMPError, doing what: String) -> InstanceError {
        let code: Code = switch error.code {
        case .timedOut: .unresponsive
        case .connectFailed: .notFound
        case .commandFailed: .commandFailed
        default: .commandFailed
        }
        return InstanceError(code: code, message: "\(what): \(error)", qmp: error)
    }
}
