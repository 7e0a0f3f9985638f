#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - FileSystem

/// The few POSIX calls the loader needs, without Foundation.
enum FileSystem {
    enum Kind { case file, directory, other }

    struct Failure: Error {
        var message: String
    }

    static func errnoMessage(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// What `path` is (following symlinks), with its size and identity.
    static func info(_ path: String) -> Result<(kind: Kind, size: Int, id: [UInt64]), Failure> {
        var st = stat()
        guard stat(path, &st) == 0 else { return .failure(Failure(message: errnoMessage())) }
        let type = st.st_mode & S_IFMT
        let kind: Kind = type == S_IFREG ? .file : type == S_IFDIR ? .directory : .other
        return .success((kind, Int(st.st_size), [UInt64(st.st_dev), UInt64(st.st_ino)]))
    }

    /// Whether anything exists at `path`.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Reads a whole file or stream, refusing more than `limit` bytes.
    /// - Returns: the bytes, or nil with `tooLarge` set when the limit was exceeded.
    static func readAll(fd: Int32, limit: Int, sizeHint: Int) -> Result<[UInt8]?, Failure> {
        var buffer = [UInt8](repeating: 0, count: max(min(sizeHint, limit) + 1, 4096))
        var count = 0
        while true {
            if count == buffer.count {
                if count > limit { return .success(nil) }
                buffer.append(contentsOf: repeatElement(0, count: buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + count, raw.count - count)
            }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(message: errnoMessage()))
            }
            if n == 0 { break }
            count += n
            if count > limit { return .success(nil) }
        }
        buffer.removeSubrange(count...)
        return .success(buffer)
    }

    /// Opens and reads `path`.
    static func readFile(_ path: String, limit: Int, size: Int) -> Result<[UInt8]?, Failure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Failure(message: errnoMessage())) }
        defer { close(fd) }
        return readAll(fd: fd, limit: limit, sizeHint: size)
    }

    /// The names in a directory, without `.` and `..`, unsorted.
    static func list(_ path: String) -> Result<[String], Failure> {
        guard let dir = opendir(path) else { return .failure(Failure(message: errnoMessage())) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            var nameTuple = entry.pointee.d_name
            let capacity = MemoryLayout.size(ofValue: nameTuple)
            let name = withUnsafePointer(to: &nameTuple) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: capacity) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
    }

    /// The process's working directory.
    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
