#if canImport(Glibc)
import Glibc
#endif
import QMP

/// Polls a ``ReadinessProbe`` against a VM until it succeeds or a deadline passes.
///
/// ```swift
/// let target = ReadinessTarget(guestAgentSocket: layout.guestAgentSocket)
/// let waited = try await ReadinessCheck.wait(for: .guestAgent, target: target, timeout: .seconds(300))
/// ```
public enum ReadinessCheck: Sendable {
    /// How long a TCP probe waits for the guest's server to send its first bytes.
    ///
    /// QEMU's user network accepts a host-forward connection on the host side at once, before the
    /// guest has answered (or while it has no network at all), and holds it open; only data from the
    /// guest proves that a server listens. Generous, because an emulated guest on a loaded host is slow.
    public static let tcpSettleTime: Duration = .seconds(3)
    /// The pause between two failed probes.
    public static let pollInterval: Duration = .milliseconds(500)
    /// The longest single agent probe (connect, sync, ping); the overall deadline still bounds it.
    public static let agentAttemptTimeout: Duration = .seconds(5)

    /// Waits until `probe` succeeds for `target`; returns how long that took.
    ///
    /// - Throws: ``ReadinessError``: ``ReadinessError/Code-swift.struct/timedOut`` (with the last
    ///   failure) when `timeout` passes first, ``ReadinessError/Code-swift.struct/notApplicable`` at once
    ///   when the target lacks what the probe needs (no agent socket, no host forward for the port, no serial
    ///   log), ``ReadinessError/Code-swift.struct/invalidProbe`` for a bad regular expression.
    @discardableResult
    public static func wait(for probe: ReadinessProbe, target: ReadinessTarget,
                            timeout: Duration) async throws(ReadinessError) -> Duration {
        let start = Posix.monotonicNanoseconds()
        let deadline = start + nanoseconds(timeout)
        var serial = SerialLogScanner()
        var regex: Regex<AnyRegexOutput>? = nil
        if case .serialMatch(let pattern) = probe {
            do { regex = try Regex(pattern) } catch {
                throw ReadinessError(code: .invalidProbe, message: "'\(pattern)' is not a valid regular expression: \(error)")
            }
        }
        var lastFailure = "not probed yet"
        while true {
            let failure: String?
            switch probe {
            case .guestAgent:
                guard let socket = target.guestAgentSocket else {
                    throw ReadinessError(code: .notApplicable, message: "the VM has no guest agent channel (guestAgent: true)")
                }
                failure = await probeAgent(socket: socket, deadline: deadline)
            case .tcpPort(let port):
                guard let forward = target.hostForwards.first(where: { $0.proto == .tcp && $0.guestPort == port }) else {
                    throw ReadinessError(code: .notApplicable,
                                         message: "no host forward reaches guest TCP port \(port) (add hostfwd tcp:127.0.0.1:HOSTPORT-:\(port))")
                }
                failure = await probeTCP(forward, deadline: deadline)
            case .serialMatch:
                guard let log = target.serialLog else {
                    throw ReadinessError(code: .notApplicable, message: "the VM writes no serial log (serial log: true)")
                }
                failure = serial.scan(path: log, regex: regex!) ? nil : "no line of \(log) matches yet"
            }
            guard let failure else { return .nanoseconds(Int64(Posix.monotonicNanoseconds() - start)) }
            lastFailure = failure
            let now = Posix.monotonicNanoseconds()
            if now >= deadline {
                throw ReadinessError(code: .timedOut, message: "not ready after \(timeout) (probe \(probe)): \(lastFailure)")
            }
            let pause = min(nanoseconds(pollInterval), deadline - now)
            try? await Task.sleep(nanoseconds: pause)
            if Task.isCancelled {
                throw ReadinessError(code: .timedOut, message: "cancelled while waiting (probe \(probe)): \(lastFailure)")
            }
        }
    }

    /// One agent probe: connect, sync, `guest-ping`; `nil` on success, else why not.
    static func probeAgent(socket: String, deadline: UInt64) async -> String? {
        let now = Posix.monotonicNanoseconds()
        let budget = min(nanoseconds(agentAttemptTimeout), deadline > now ? deadline - now : 0)
        do {
            try await GuestAgent.withConnection(socketPath: socket, timeout: .nanoseconds(Int64(max(budget, 1_000_000)))) { agent in
                try await agent.ping(timeout: .nanoseconds(Int64(max(budget, 1_000_000))))
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// One TCP probe through a host forward; `nil` when the guest accepted the connection.
    static func probeTCP(_ forward: HostForward, deadline: UInt64) async -> String? {
        let settle = nanoseconds(tcpSettleTime)
        let result: String? = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
            let (fd, problem) = AgentSocket.connectTCP(host: forward.probeAddress, port: forward.hostPort, deadline: deadline)
            if let problem { return problem }
            defer { AgentSocket.close(fd) }
            // QEMU's user network accepted on the host side; only the guest server's first bytes prove it listens.
            var buffer = [UInt8](repeating: 0, count: 256)
            var count = 0
            let through = "through \(forward.probeAddress):\(forward.hostPort)"
            switch AgentSocket.read(fd, into: &buffer, count: &count, deadline: Posix.monotonicNanoseconds() + settle) {
            case .ok where count > 0: return nil
            case .ok, .timedOut:
                return "guest port \(forward.guestPort) sent nothing within \(tcpSettleTime) (\(through)); the probe needs a server that speaks first, as ssh does"
            case .closed: return "guest port \(forward.guestPort) refused the connection (\(through))"
            case .failed(let e): return "guest port \(forward.guestPort): \(Posix.errorText(e))"
            }
        }
        return result
    }
}

/// Reads a growing serial log and matches its lines, remembering where it stopped.
struct SerialLogScanner {
    private var offset: Int64 = 0
    private var partial: [UInt8] = []

    /// Reads what was appended to `path` since the last call; true when a line matches `regex`.
    ///
    /// Complete lines are matched once; the unfinished last line (a prompt such as `login: `) is
    /// matched as it stands at each call.
    mutating func scan(path: String, regex: Regex<AnyRegexOutput>) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 && Int64(st.st_size) < offset {  // truncated: a new boot
            offset = 0
            partial = []
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n <= 0 { break }
            offset += Int64(n)
            for b in buffer[0..<n] {
                if b == 0x0A {
                    if matches(partial, regex) { return true }
                    partial.removeAll(keepingCapacity: true)
                } else if partial.count < 64 * 1024 {
                    partial.append(b)
                }
            }
        }
        return !partial.isEmpty && matches(partial, regex)
    }

    private func matches(_ line: [UInt8], _ regex: Regex<AnyRegexOutput>) -> Bool {
        var text = String(decoding: line, as: UTF8.self)
        if text.hasSuffix("\r") { text.removeLast() }
        return (try? regex.firstMatch(in: text)) != nil
    }
}
