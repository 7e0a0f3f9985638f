#if canImport(Glibc)
import Glibc
#endif

/// The file-system calls of the seed writer: a private work directory made by `mkdtemp(3)`, files
/// created with `O_EXCL | O_NOFOLLOW`, and the final `rename(2)`.
enum SeedFiles {
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A fresh 0700 directory with an unpredictable name inside `parent`: `.cidata.qemuctl.tmp.PID.HEX16`
    /// (``Posix/temporaryName(for:)``), a name the runtime directory's checks let pass, so a writer that
    /// died halfway never blocks the VM's next launch; ``removeStale(in:)`` sweeps it then.
    static func makePrivateDirectory(in parent: String) throws(CloudInitError) -> String {
        removeStale(in: parent)
        let path = parent + "/" + Posix.temporaryName(for: "cidata")
        guard mkdir(path, 0o700) == 0 else {
            throw CloudInitError(message: "cannot create a private directory in \(parent) for the cloud-init seed: \(Posix.errorText(errno))")
        }
        return path
    }

    /// Removes the work directories of seed writers that died (their pid no longer runs) from `parent`.
    static func removeStale(in parent: String) {
        guard let d = opendir(parent) else { return }
        var stale: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(".cidata."), let pid = Posix.temporaryNamePID(name), pid != getpid(), !Posix.processExists(pid) else { continue }
            var st = stat()
            guard lstat(parent + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() else { continue }
            stale.append(parent + "/" + name)
        }
        closedir(d)
        stale.forEach(removeTree)
    }

    static func makeDirectory(_ path: String) throws(CloudInitError) {
        guard mkdir(path, 0o700) == 0 else { throw CloudInitError(message: "cannot create \(path): \(Posix.errorText(errno))") }
    }

    /// Creates `path` (which must not exist) with mode 0600 and writes `bytes`.
    static func createFile(_ path: String, _ bytes: [UInt8]) throws(CloudInitError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CloudInitError(message: "cannot create \(path): \(Posix.errorText(errno))") }
        defer { close(fd) }
        if let problem = Posix.writeAll(fd, bytes, count: bytes.count) {
            throw CloudInitError(message: "cannot write \(path): \(problem)")
        }
    }

    static func rename(_ from: String, to: String) throws(CloudInitError) {
        guard Glibc.rename(from, to) == 0 else {
            throw CloudInitError(message: "cannot move the cloud-init seed to \(to): \(Posix.errorText(errno))")
        }
    }

    /// Removes the work directory: its files and one level of subdirectories (all this writer makes).
    static func removeTree(_ path: String) {
        guard let d = opendir(path) else { return }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(d)
        for name in names {
            let child = path + "/" + name
            if unlink(child) != 0 && errno == EISDIR { removeTree(child) }
        }
        rmdir(path)
    }
}
