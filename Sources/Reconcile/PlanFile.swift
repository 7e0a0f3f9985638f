#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl

// MARK: - PlanFile

/// A plan saved by `qemuctl plan --out FILE` and applied by `qemuctl apply FILE`: the plan,
/// authenticated with HMAC-SHA-256 under the state directory's plan key.
///
/// A saved plan says what root will launch (the emulator, the kernel, the disks), so a
/// plan that someone else could edit is a way to run code as root. Hence:
/// - writing: a temporary file created with `O_EXCL|O_NOFOLLOW` under an unpredictable
///   name in the target's directory, synced and renamed into place; a directory that
///   another user owns, or that others may write without the sticky bit, is refused
///   (whoever can write it can replace the file after us);
/// - reading: the file must be a regular file owned by this user and not writable by
///   group or others, and its authentication code must be the one the state directory's
///   key gives its plan: any edit is refused, and so is a plan made for another state
///   directory.
///
/// The key (`STATE/.plan-key`, 32 random bytes, 0600) is created with `O_EXCL` on first
/// use; it never leaves the state directory.
package enum PlanFile {
    /// Why a plan could not be saved or loaded; the message names the path.
    package struct Failure: Error, Sendable, CustomStringConvertible {
        /// What happened and what to do.
        package var message: String
        /// The message.
        package var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// The file's shape: the authentication code and the plan.
    struct Envelope: Codable {
        var authentication: String
        var plan: Plan
    }

    /// What the authentication code covers: a domain tag and the plan's canonical encoding
    /// (sorted keys, no whitespace), which decoding and encoding again reproduces.
    static func authenticatedBytes(_ plan: Plan) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array("qemuctl-plan-v1\n".utf8) + Array(try encoder.encode(plan))
    }

    /// The largest plan file read.
    static let maxSize = 64 << 20

    // MARK: - Saving

    /// Saves `plan` to `path`, authenticated with the key of `store`.
    ///
    /// - Throws: ``Failure`` when the directory is not safe to write, the key cannot be
    ///   made or read, or a system call fails (the path and the reason).
    package static func save(_ plan: Plan, to path: String, store: StateStore) throws(Failure) {
        let key = try self.key(store: store, create: true)
        let envelope: [UInt8]
        do {
            let code = HMACSHA256.authenticationCode(for: try authenticatedBytes(plan), key: key)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            envelope = Array(try encoder.encode(Envelope(authentication: "hmac-sha256:" + HMACSHA256.hex(code), plan: plan))) + [0x0A]
        } catch {
            throw Failure("cannot encode the plan: \(error)")
        }
        let dir = directory(of: path)
        try checkDirectory(dir, for: path)
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var temp = ""
        var fd: CInt = -1
        for _ in 0..<8 {
            temp = (dir == "/" ? "" : dir) + "/." + base + "." + HMACSHA256.hex(randomBytes(12)) + ".tmp"
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw Failure("cannot write \(path): cannot create a temporary file in \(dir): \(Posix.errorText(errno))") }
        _ = fchmod(fd, 0o644)
        func fail(_ what: String) -> Failure {
            let e = errno
            close(fd)
            unlink(temp)
            return Failure("cannot write \(path): \(what): \(Posix.errorText(e)); \(path) is unchanged")
        }
        if let problem = Posix.writeAll(fd, envelope, count: envelope.count) {
            close(fd)
            unlink(temp)
            throw Failure("cannot write \(path): \(problem); \(path) is unchanged")
        }
        if fsync(fd) != 0 { throw fail("syncing \(temp) failed") }
        close(fd)
        if rename(temp, path) != 0 {
            let e = errno
            unlink(temp)
            throw Failure("cannot write \(path): renaming \(temp) failed: \(Posix.errorText(e)); \(path) is unchanged")
        }
    }

    /// Refuses a directory where another user could replace a file after we wrote it.
    static func checkDirectory(_ dir: String, for path: String) throws(Failure) {
        var st = stat()
        guard stat(dir, &st) == 0 else {
            throw Failure("cannot write \(path): \(dir): \(Posix.errorText(errno))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw Failure("cannot write \(path): \(dir) is not a directory") }
        let me = geteuid()
        if st.st_uid != me && st.st_uid != 0 {
            throw Failure("refusing to write the plan \(path): its directory \(dir) belongs to uid \(st.st_uid), who could replace the plan "
                          + "(hint: save it in a directory of your own)")
        }
        if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
            throw Failure("refusing to write the plan \(path): its directory \(dir) is writable by other users "
                          + "(mode \(String(st.st_mode & 0o7777, radix: 8))) without the sticky bit, who could replace the plan "
                          + "(hint: save it in a directory of your own, or chmod go-w \(dir))")
        }
    }

    // MARK: - Loading

    /// Loads the plan saved at `path` and checks its authentication with the key of `store`.
    ///
    /// - Throws: ``Failure`` when the file is not this user's regular file, is writable by
    ///   others, is not a saved plan, or was modified (or made for another state directory).
    package static func load(_ path: String, store: StateStore) throws(Failure) -> Plan {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("cannot read the plan \(path): \(Posix.errorText(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Failure("cannot read the plan \(path): \(Posix.errorText(errno))") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw Failure("refusing the plan \(path): it is not a regular file") }
        if st.st_uid != geteuid() {
            throw Failure("refusing the plan \(path): it belongs to uid \(st.st_uid), not to this user (uid \(geteuid())), "
                          + "who could have changed what it launches (hint: make the plan again with `qemuctl plan --out`)")
        }
        if st.st_mode & 0o022 != 0 {
            throw Failure("refusing the plan \(path): it is writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8)))")
        }
        guard Int(st.st_size) <= maxSize else { throw Failure("refusing the plan \(path): it is larger than \(maxSize >> 20) MiB") }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("cannot read the plan \(path): \(n < 0 ? Posix.errorText(errno) : "it shrank while being read")") }
            offset += n
        }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(bytes)),
              envelope.authentication.hasPrefix("hmac-sha256:"),
              let code = HMACSHA256.bytes(hex: String(envelope.authentication.dropFirst("hmac-sha256:".count))) else {
            throw Failure("\(path) is not a plan written by `qemuctl plan --out`")
        }
        let key = try self.key(store: store, create: false)
        let covered: [UInt8]
        do { covered = try authenticatedBytes(envelope.plan) } catch { throw Failure("\(path): cannot encode its plan: \(error)") }
        guard HMACSHA256.isValid(code, for: covered, key: key) else {
            throw Failure("refusing the plan \(path): its authentication does not match: it was modified after `qemuctl plan --out` "
                          + "wrote it, or made for another state directory than \(store.directory)")
        }
        return envelope.plan
    }

    // MARK: - The key

    /// The plan key of `store`: `STATE/.plan-key`, created (`O_EXCL`, 0600) when `create`
    /// and missing. It must be this user's regular file, mode 0600 or stricter, 32 bytes.
    static func key(store: StateStore, create: Bool) throws(Failure) -> [UInt8] {
        let path = store.directory + "/.plan-key"
        if create {
            do { try store.prepare() } catch { throw Failure(error.message) }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                let fresh = randomBytes(32)
                let problem = Posix.writeAll(fd, fresh, count: fresh.count)
                let synced = fsync(fd) == 0
                close(fd)
                guard problem == nil, synced else {
                    unlink(path)
                    throw Failure("cannot create the plan key \(path): \(problem ?? Posix.errorText(errno))")
                }
                return fresh
            }
            guard errno == EEXIST else { throw Failure("cannot create the plan key \(path): \(Posix.errorText(errno))") }
        }
        // Another qemuctl may be writing it this moment: a short file is read again.
        for attempt in 0..<50 {
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ENOENT {
                    throw Failure("refusing the plan: \(store.directory) has no plan key, so no plan was made for it "
                                  + "(hint: make the plan with `qemuctl plan --out` and the same --state-dir)")
                }
                throw Failure("cannot read the plan key \(path): \(Posix.errorText(errno))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw Failure("the plan key \(path) is not a regular file") }
            guard st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
                throw Failure("refusing the plan key \(path): it must belong to this user with mode 0600 "
                              + "(it belongs to uid \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8)))")
            }
            var key = [UInt8](repeating: 0, count: 33)
            let n = key.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 33) }
            if n == 32 { return Array(key[0..<32]) }
            if n >= 0 && n < 32 && attempt < 49 {
                usleep(2_000)
                continue
            }
            break
        }
        throw Failure("the plan key \(path) is damaged (not 32 bytes): remove it and make the plan again")
    }

    /// `count` bytes from the system's random generator.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// The directory of `path` (`.` for a bare name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
