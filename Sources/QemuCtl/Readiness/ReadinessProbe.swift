/// How to tell that a guest is ready: one of three probes, each polled until it succeeds or a deadline passes.
///
/// - ``guestAgent``: the guest agent answers `guest-ping` (after a `guest-sync-delimited`), so the
///   guest's userspace is up and the agent is running.
/// - ``tcpPort(_:)``: a server on a guest TCP port, reached through the VM's user-network host
///   forward (`hostfwd`), sends its first bytes (an ssh banner) within ``ReadinessCheck/tcpSettleTime``.
///   QEMU's user network accepts every host-forward connection on the host side at once and holds it
///   while the guest is silent (even before the guest has a network), so an accepted connection proves
///   nothing; a closed one means the guest refused. Servers that wait for the client (HTTP) cannot be
///   probed this way: use ``serialMatch(_:)`` or the agent.
/// - ``serialMatch(_:)``: a line of the VM's serial log matches a regular expression (Swift `Regex`
///   syntax), e.g. `login:` or a marker printed by cloud-init's `final_message`.
///
/// The manifest field `spec.readiness` names one of these (`guestAgent: true`, `tcpPort: N`,
/// `serialMatch: REGEX`); `qemuctl wait --for ready`, `apply --wait-ready` and `get` use it, and
/// `wait --probe` overrides it.
public enum ReadinessProbe: Sendable, Hashable, CustomStringConvertible {
    /// The guest agent answers `guest-ping`.
    case guestAgent
    /// The guest's TCP port N answers through a host forward.
    case tcpPort(Int)
    /// A serial log line matches this regular expression.
    case serialMatch(String)

    /// Parses `agent`, `tcp:PORT` or `serial:REGEX` (the form `qemuctl wait --probe` takes).
    ///
    /// - Throws: ``ReadinessError`` naming the accepted forms, or the regular expression's error.
    public init(parsing text: String) throws(ReadinessError) {
        if text == "agent" || text == "guestAgent" {
            self = .guestAgent
        } else if text.hasPrefix("tcp:"), let port = Int(text.dropFirst(4)), (1...65535).contains(port) {
            self = .tcpPort(port)
        } else if text.hasPrefix("serial:"), text.count > 7 {
            let pattern = String(text.dropFirst(7))
            try Self.checkPattern(pattern)
            self = .serialMatch(pattern)
        } else {
            throw ReadinessError(code: .invalidProbe, message: "'\(text)' is not a readiness probe: use agent, tcp:PORT (1-65535) or serial:REGEX")
        }
    }

    /// Checks that `pattern` compiles as a Swift `Regex`.
    ///
    /// - Throws: ``ReadinessError`` with the compiler's message.
    public static func checkPattern(_ pattern: String) throws(ReadinessError) {
        do {
            _ = try Regex(pattern)
        } catch {
            throw ReadinessError(code: .invalidProbe, message: "'\(pattern)' is not a valid regular expression: \(error)")
        }
    }

    /// `agent`, `tcp:PORT` or `serial:REGEX`.
    public var description: String {
        switch self {
        case .guestAgent: "agent"
        case .tcpPort(let p): "tcp:\(p)"
        case .serialMatch(let r): "serial:\(r)"
        }
    }
}

/// Why a guest was not found ready.
public struct ReadinessError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public var code: Code
    /// What happened, with the last probe's failure.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// The kind of a ``ReadinessError``. New kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The deadline passed before the probe succeeded.
        public static var timedOut: Self { Self("timedOut") }
        /// The probe cannot work for this VM (no agent socket, no host forward of the port, no serial log).
        public static var notApplicable: Self { Self("notApplicable") }
        /// The probe is malformed.
        public static var invalidProbe: Self { Self("invalidProbe") }

        /// The kind's name.
        public var description: String { name }
    }
}

extension HostForward {
    /// Parses QEMU's `hostfwd` rule `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`; `nil` when malformed.
    public init?(rule: String) {
        let halves = rule.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let host = halves[0].split(separator: ":", omittingEmptySubsequences: false)
        let guest = halves[1].split(separator: ":", omittingEmptySubsequences: false)
        guard host.count == 3, guest.count == 2, let hp = Int(host[2]), let gp = Int(guest[1]),
              (1...65535).contains(hp), (1...65535).contains(gp),
              let proto = host[0].isEmpty ? Proto.tcp : Proto(rawValue: String(host[0])) else { return nil }
        self.init(proto: proto, hostAddress: host[1].isEmpty ? nil : String(host[1]), hostPort: hp,
                  guestAddress: guest[0].isEmpty ? nil : String(guest[0]), guestPort: gp)
    }

    /// Where a probe connects to reach the guest port: the host address, or `127.0.0.1` when the rule
    /// binds all addresses (empty or `0.0.0.0`).
    public var probeAddress: String {
        guard let a = hostAddress, !a.isEmpty, a != "0.0.0.0" else { return "127.0.0.1" }
        return a
    }
}

/// What the probes need to know about a VM: where its agent socket and serial log are, and its host forwards.
public struct ReadinessTarget: Sendable, Equatable {
    /// The guest agent socket (`qga.sock` in the runtime directory), if the VM has the agent channel.
    public var guestAgentSocket: String?
    /// The serial console log, if the VM writes one.
    public var serialLog: String?
    /// The host forwards of the VM's user networks.
    public var hostForwards: [HostForward]

    /// Creates a target.
    public init(guestAgentSocket: String? = nil, serialLog: String? = nil, hostForwards: [HostForward] = []) {
        self.guestAgentSocket = guestAgentSocket
        self.serialLog = serialLog
        self.hostForwards = hostForwards
    }
}
