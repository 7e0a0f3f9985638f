#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A reference to a secret value: a password or key that must never appear in QEMU's argv or environment.
///
/// A secret is either a file to read, an environment variable *of this process* to read, or a value held in
/// memory. The command-line builder never renders its value: RBD keys and iSCSI passwords become QEMU
/// `secret` objects that read a file in the VM's 0700 runtime directory (see ``SecretFile``), and VNC/SPICE
/// passwords are set over QMP after start (see ``PostStartAction``).
///
/// - Important: An in-memory value cannot be encoded: `encode(to:)` throws, so a secret never lands in a state
///   file by accident. Its `description` is always redacted.
public enum Secret: Sendable, Hashable, Codable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret is the content of this file (one trailing newline is removed when read).
    case file(String)
    /// The secret is the value of this environment variable of the managing process.
    case environment(String)
    /// The secret value itself, held in memory only.
    case value(String)

    /// Reads the secret value. This is the one reader of secrets, with one policy (also used by
    /// the reconciler's secret markers):
    /// - a file is opened `O_NONBLOCK|O_NOFOLLOW` (a FIFO cannot hang the caller, a link is not
    ///   followed) and must be a regular file owned by the effective user with no group or other
    ///   permission bits (`chmod 600`), at most ``sizeLimit`` bytes (more is refused, never cut);
    ///   one trailing `\n` (or `\r\n`) is removed;
    /// - an environment variable must be set;
    /// - the value must not be empty.
    ///
    /// - Parameter environment: The environment to look variables up in; `nil` (the default) is this process's.
    /// - Returns: The secret value.
    /// - Throws: ``SecretError`` naming the file or variable and the fix, never the value.
    public func read(environment: [String: String]? = nil) throws(SecretError) -> String {
        switch self {
        case .value(let v):
            guard !v.isEmpty else { throw SecretError(message: "the secret value is empty; an empty secret is refused") }
            return v
        case .environment(let name):
            guard let v = environment.map({ $0[name] }) ?? Posix.environmentValue(name) else {
                throw SecretError(message: "environment variable \(name) is not set")
            }
            guard !v.isEmpty else { throw SecretError(message: "environment variable \(name) is empty; an empty secret is refused (set it to the secret)") }
            return v
        case .file(let path):
            let (value, error) = Posix.readSecretFile(path)
            guard let value else { throw SecretError(message: error ?? "cannot read secret file \(path)") }
            return value
        }
    }

    /// The largest secret file accepted, in bytes (64 KiB): a larger one is refused, never truncated.
    public static var sizeLimit: Int { Posix.secretSizeLimit }

    /// A redacted rendering: names the source, never the value.
    public var description: String {
        switch self {
        case .file(let p): "Secret(file: \(p))"
        case .environment(let n): "Secret(env: \(n))"
        case .value: "Secret(value: <redacted>)"
        }
    }

    /// Same as ``description``: redacted.
    public var debugDescription: String { description }

    private enum CodingKeys: String, CodingKey { case file, env }

    /// Decodes `{"file": PATH}` or `{"env": NAME}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let f = try c.decodeIfPresent(String.self, forKey: .file) {
            self = .file(f)
        } else if let e = try c.decodeIfPresent(String.self, forKey: .env) {
            self = .environment(e)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "a secret is {\"file\": PATH} or {\"env\": NAME}; inline values are not accepted"))
        }
    }

    /// Encodes `{"file": PATH}` or `{"env": NAME}`.
    ///
    /// - Throws: `EncodingError.invalidValue` for ``value(_:)``: in-memory secrets are never serialized.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .file(let f): try c.encode(f, forKey: .file)
        case .environment(let e): try c.encode(e, forKey: .env)
        case .value:
            throw EncodingError.invalidValue("<redacted>", .init(codingPath: encoder.codingPath,
                debugDescription: "an in-memory secret value is never encoded"))
        }
    }
}

/// The error thrown when a ``Secret`` cannot be read.
public struct SecretError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong; never contains the secret value.
    public var message: String
    /// The message.
    public var description: String { message }
}
