import Foundation

/// A private temporary directory with a short path (unix socket paths must stay
/// under 108 bytes), removed by ``remove()``.
public struct TempDir: Sendable {
    /// The directory path.
    public let path: String

    /// Creates `/tmp/qc-<prefix>-XXXXXX` with mode 0700.
    public init(_ prefix: String = "t") throws {
        var template = Array("/tmp/qc-\(prefix)-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard result != nil else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes an executable script `name` (mode 0755) holding `text` and returns its path.
    ///
    /// The executable file is written by another process (`install`), never through a descriptor
    /// of this one: a child that another test forks meanwhile inherits every open descriptor until
    /// it execs, and one still open for writing makes executing the script fail with ETXTBSY
    /// ("Text file busy").
    public func script(_ name: String, _ text: String) throws -> String {
        let source = file(".\(name).source")
        try text.write(toFile: source, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: source) }
        try installExecutable(source, at: file(name))
        return file(name)
    }

    /// Kills every QEMU whose command line mentions this directory (so a failed
    /// test leaves no VM behind), then removes the directory and everything in it.
    public func remove() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != getpid(),
                  let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                  cmd.contains("qemu"), cmd.contains(path + "/") else { continue }
            kill(pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Copies `source` to `destination` with mode 0755 by install(1), so no descriptor of this process
/// ever holds the executable open for writing: a child that another test forks meanwhile inherits
/// every open descriptor until it execs, and one open for writing makes executing the file fail
/// with ETXTBSY ("Text file busy", exit 126 from a shell or setpriv). posix_spawn and a waitpid on
/// that one pid: nothing depends on SIGCHLD reaching Foundation's Process monitor.
public func installExecutable(_ source: String, at destination: String) throws {
    let argv = ["/usr/bin/install", "-m", "0755", source, destination]
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard status == 0 else { throw POSIXError(.EIO) }
}
