import Foundation

/// A second, unprivileged local user for tests that play a local attacker against qemuctl run as
/// root: it owns directories and plants files there. Created with `useradd` on first use
/// (idempotent, and safe when several test processes race to create it). CI runs as root, which
/// these tests need: anything else is a failure, not a skip.
public enum UnprivilegedUser: Sendable {
    /// The user's name.
    public static let name = "qemuctl-test-other"

    /// The user's uid and gid, creating the user when missing.
    public static func ids() throws -> (uid: UInt32, gid: UInt32) {
        guard geteuid() == 0 else {
            throw FixtureError("this test must run as root (CI does): it creates and becomes the unprivileged user \(name)")
        }
        func lookup() throws -> (uid: UInt32, gid: UInt32)? {
            let u = try run(["/usr/bin/id", "-u", name]), g = try run(["/usr/bin/id", "-g", name])
            guard u.status == 0, g.status == 0, let uid = UInt32(u.output.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let gid = UInt32(g.output.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
            return (uid, gid)
        }
        if let ids = try lookup() { return try checked(ids) }
        let useradd = ["/usr/sbin/useradd", "/sbin/useradd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let useradd else { throw FixtureError("useradd is missing: cannot create the test user \(name)") }
        let made = try run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        // Another test process may have created it at the same moment.
        guard let ids = try lookup() else { throw FixtureError("useradd \(name) failed: \(made.output)") }
        return try checked(ids)
    }

    private static func checked(_ ids: (uid: UInt32, gid: UInt32)) throws -> (uid: UInt32, gid: UInt32) {
        guard ids.uid != 0 else { throw FixtureError("\(name) has uid 0") }
        return ids
    }

    /// Gives `path` itself (not what a link points to) to the user.
    public static func own(_ path: String) throws {
        let ids = try ids()
        guard lchown(path, ids.uid, ids.gid) == 0 else { throw FixtureError("lchown \(path): \(String(cString: strerror(errno)))") }
    }

    /// Creates directory `path` owned by the user with `mode`.
    public static func makeDirectory(_ path: String, mode: UInt32) throws {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw FixtureError("mkdir \(path): \(String(cString: strerror(errno)))") }
        guard chmod(path, mode) == 0 else { throw FixtureError("chmod \(path): \(String(cString: strerror(errno)))") }
        try own(path)
    }

    /// Creates file `path` with `content`, owned by the user, with `mode`.
    public static func plantFile(_ path: String, _ content: String, mode: UInt32 = 0o666) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(content.utf8)) else { throw FixtureError("cannot create \(path)") }
        guard chmod(path, mode) == 0 else { throw FixtureError("chmod \(path): \(String(cString: strerror(errno)))") }
        try own(path)
    }

    /// Creates the symbolic link `path` → `target`, owned by the user.
    public static func plantLink(_ path: String, to target: String) throws {
        guard symlink(target, path) == 0 else { throw FixtureError("symlink \(path): \(String(cString: strerror(errno)))") }
        try own(path)
    }

    /// A copy of `binary` the user can execute, in `directory` (made 0755): the build tree may
    /// sit below a directory only root can enter (a checkout in /root). Returns its path.
    public static func executableCopy(of binary: String, in directory: String) throws -> String {
        guard chmod(directory, 0o755) == 0 else { throw FixtureError("chmod \(directory): \(String(cString: strerror(errno)))") }
        let copy = directory + "/" + (binary.split(separator: "/").last.map(String.init) ?? "binary")
        try? FileManager.default.removeItem(atPath: copy)
        try installExecutable(binary, at: copy)
        return copy
    }

    /// Runs `argv` as the user (setpriv drops every privilege), with `environment`.
    public static func runAs(_ argv: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let ids = try ids()
        return try run(["/usr/bin/env", "-i"] + environment.map { "\($0.key)=\($0.value)" }
                       + ["/usr/bin/setpriv", "--reuid=\(ids.uid)", "--regid=\(ids.gid)", "--clear-groups", "--inh-caps=-all"] + argv)
    }

    /// Runs `argv` and returns its status and combined output.
    public static func run(_ argv: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// What a test checks stays as it was: a file's content, mode and modification time (the
/// target of a planted link, or another user's file).
public struct FileFingerprint: Equatable, Sendable, CustomStringConvertible {
    /// The content (empty for a directory: its entries are in `entries`).
    public var content: [UInt8]
    /// The entries of a directory, sorted.
    public var entries: [String]
    /// The mode (type and permission bits).
    public var mode: UInt32
    /// The owner.
    public var uid: UInt32
    /// The modification time, nanoseconds.
    public var mtime: Int

    /// The fingerprint of `path` (following a link: what it points to).
    public init(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw FixtureError("stat \(path): \(String(cString: strerror(errno)))") }
        mode = st.st_mode
        uid = st.st_uid
        mtime = st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec
        if (st.st_mode & S_IFMT) == S_IFDIR {
            content = []
            entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } else {
            content = Array(FileManager.default.contents(atPath: path) ?? Data())
            entries = []
        }
    }

    /// A short rendering for failure messages.
    public var description: String {
        "mode \(String(mode, radix: 8)) uid \(uid) mtime \(mtime) \(content.count) bytes \(entries)"
    }
}
