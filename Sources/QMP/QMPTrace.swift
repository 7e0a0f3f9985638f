import Synchronization

/// A process-wide observer of what this process says over QMP: each command sent and QEMU's
/// answer, as one line each, with secret values replaced by `"(sensitive)"`. For a program's
/// debug output (`qemuctl -vv`); off (and free) until ``install(_:)`` is called.
///
/// ```swift
/// QMPTrace.install { line in FileHandle.standardError.write(line + "\n") }
/// ```
public enum QMPTrace {
    private static let handler = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// Sends every later QMP line to `observer`; `nil` turns tracing off. The observer runs
    /// on the caller's task and must be quick.
    public static func install(_ observer: (@Sendable (String) -> Void)?) {
        handler.withLock { $0 = observer }
    }

    /// The installed observer.
    static var observer: (@Sendable (String) -> Void)? { handler.withLock { $0 } }

    /// Object keys whose values are secrets in QMP's commands (`set_password`'s `password`,
    /// a `secret` object's `data`) or could be (`key`, `passphrase`).
    public static let secretKeys: Set<String> = ["password", "data", "key", "passphrase", "secret"]

    /// `value` with the value of every ``secretKeys`` member replaced by `"(sensitive)"`, at any depth.
    public static func redacted(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            var out: [String: JSONValue] = [:]
            for (k, v) in members { out[k] = secretKeys.contains(k) ? .string("(sensitive)") : redacted(v) }
            return .object(out)
        case .array(let elements):
            return .array(elements.map(redacted))
        default:
            return value
        }
    }

    /// Runs `call`, the command `command`, telling the observer what went and what came back.
    static func traced(_ command: String, _ arguments: JSONValue?, fd: Bool,
                       _ call: () async throws(QMPError) -> JSONValue) async throws(QMPError) -> JSONValue {
        guard let observer else { return try await call() }
        var sent: JSONValue = ["execute": .string(command)]
        if let arguments, case .object(var m) = sent { m["arguments"] = redacted(arguments); sent = .object(m) }
        observer("qmp -> \(sent)\(fd ? " (with a file descriptor)" : "")")
        do {
            let answer = try await call()
            observer("qmp <- \(command): \(redacted(answer))")
            return answer
        } catch {
            observer("qmp <- \(command): error: \(error)")
            throw error
        }
    }
}
