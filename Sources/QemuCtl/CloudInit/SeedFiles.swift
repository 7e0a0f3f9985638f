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

    /// A fresh 0700 directory with an unpredictable name inside `parent`.
    static func makePrivateDirectory(in parent: String) throws(CloudInitError) -> String {
        var template = Array((parent + "/.cidata.XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        guard made else {
            throw CloudInitError(message: "cannot create a private directory in \(parent) for the cloud-init seed: \(Posix.errorText(errno))")
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
