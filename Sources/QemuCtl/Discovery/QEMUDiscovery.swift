#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The error thrown when no usable QEMU, architecture or accelerator can be found.
public struct QEMUDiscoveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable { case binaryNotFound, unsupportedArchitecture, acceleratorUnavailable, probeFailed }
        private let storage: Storage
        /// No QEMU binary in any searched place ("QEMU binary not found").
        public static var binaryNotFound: Self { .init(storage: .binaryNotFound) }
        /// A GOARCH name without a QEMU binary ("unsupported architecture: X").
        public static var unsupportedArchitecture: Self { .init(storage: .unsupportedArchitecture) }
        /// An explicitly requested accelerator cannot work here.
        public static var acceleratorUnavailable: Self { .init(storage: .acceleratorUnavailable) }
        /// QEMU could not be run for probing.
        public static var probeFailed: Self { .init(storage: .probeFailed) }
        /// The code's name.
        public var description: String { "\(storage)" }
    }

    /// The kind of failure.
    public var code: Code
    /// The message shown to users; starts with the seed's text where the seed had one.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) { self.code = code; self.message = message }

    /// The message.
    public var description: String { message }
}

/// Finds the QEMU binary, in the seed library's order.
///
/// Order: the configured path (the binary itself, or a directory holding it), then each directory of `PATH`,
/// then ``standardDirectories`` (`/pkg/main/app-emulation.qemu.core/bin`, `/usr/bin`, `/usr/local/bin`).
///
/// ```swift
/// let qemu = try QEMUDiscovery.findBinary(arch: config.arch ?? .host, configuredPath: config.qemuPath)
/// ```
public enum QEMUDiscovery: Sendable {
    /// The fixed directories searched after `PATH`.
    public static let standardDirectories = ["/pkg/main/app-emulation.qemu.core/bin", "/usr/bin", "/usr/local/bin"]

    /// The places searched for `arch`, in order (directories already joined with the binary name).
    ///
    /// - Parameters:
    ///   - arch: The guest architecture.
    ///   - configuredPath: A binary or a directory; first when given.
    ///   - pathVariable: The `PATH` value to split.
    ///   - isDirectory: Whether a path is a directory (injected for tests).
    public static func candidates(arch: QEMUArch, configuredPath: String?, pathVariable: String?,
                                  isDirectory: (String) -> Bool) -> [String] {
        var out: [String] = []
        if let c = configuredPath, !c.isEmpty {
            out.append(isDirectory(c) ? join(c, arch.binaryName) : c)
        }
        for dir in (pathVariable ?? "").split(separator: ":", omittingEmptySubsequences: true) {
            out.append(join(String(dir), arch.binaryName))
        }
        for dir in standardDirectories { out.append(join(dir, arch.binaryName)) }
        var seen: Set<String> = []
        return out.filter { seen.insert($0).inserted }
    }

    /// Finds the QEMU binary for `arch`.
    ///
    /// A configured path is a pin: the binary itself, or a directory holding `arch`'s binary, and
    /// nothing else is searched when it is missing (a VM pinned to a QEMU build never silently runs
    /// on another one). Without one, each directory of `PATH`, then ``standardDirectories``.
    ///
    /// - Parameters:
    ///   - arch: The guest architecture (default: the host's).
    ///   - configuredPath: The configured binary or directory (``VMConfig/qemuPath``).
    ///   - environment: The environment whose `PATH` is searched; `nil` is this process's.
    /// - Returns: The first candidate that is an executable regular file.
    /// - Throws: ``QEMUDiscoveryError/Code/binaryNotFound``: for a configured path, that it is missing;
    ///   otherwise "QEMU binary not found: NAME (searched: …)" with the Debian package that provides it.
    public static func findBinary(arch: QEMUArch = .host, configuredPath: String? = nil,
                                  environment: [String: String]? = nil) throws(QEMUDiscoveryError) -> String {
        if let configured = configuredPath, !configured.isEmpty {
            let binary = Posix.isDirectory(configured) ? join(configured, arch.binaryName) : configured
            guard Posix.isExecutableFile(binary) else {
                throw QEMUDiscoveryError(code: .binaryNotFound,
                                         message: "the configured QEMU \(binary) is not an executable file "
                                            + "(a configured emulator is used as given; no other QEMU is tried)")
            }
            return binary
        }
        let env = environment ?? ProcessInfo.processInfo.environment
        let list = candidates(arch: arch, configuredPath: nil, pathVariable: env["PATH"], isDirectory: Posix.isDirectory)
        for c in list where Posix.isExecutableFile(c) { return c }
        throw QEMUDiscoveryError(code: .binaryNotFound,
                                 message: "QEMU binary not found: \(arch.binaryName) (searched: \(list.joined(separator: ", "))); "
                                    + "on Debian it comes with the package \(arch.debianPackage) "
                                    + "(apt-get install \(arch.debianPackage)), or name a binary with spec.emulator")
    }

    /// Finds the QEMU binary for a GOARCH name.
    ///
    /// - Throws: "unsupported architecture: X", or "QEMU binary not found".
    public static func findBinary(goarch: String, configuredPath: String? = nil,
                                  environment: [String: String]? = nil) throws(QEMUDiscoveryError) -> String {
        try findBinary(arch: QEMUArch(goarch: goarch), configuredPath: configuredPath, environment: environment)
    }

    static func join(_ dir: String, _ name: String) -> String { dir.hasSuffix("/") ? dir + name : dir + "/" + name }
}
