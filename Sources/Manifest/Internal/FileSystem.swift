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

    /// Whether `path` itself is a symbolic link (not followed).
    static func isSymbolicLink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK
    }

    /// Whether anything exists at `path`.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Opens and reads `path` into `buffer` (grown when too small, reused from file to file);
    /// a size of -1 means unknown (asked with fstat). A regular file is read with one `read`.
    /// - Returns: the number of bytes read, or nil when the file is larger than `limit`.
    static func readFile(
        _ path: String, limit: Int, size: Int, into buffer: inout UnsafeMutableRawBufferPointer
    ) -> Result<Int?, Failure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Failure(message: errnoMessage())) }
        defer { close(fd) }
        return readToEnd(fd: fd, limit: limit, size: size, into: &buffer)
    }

    /// Reads `fd` to its end into `buffer` (grown when too small), refusing more than `limit`
    /// bytes. A size of -1 means unknown: fstat tells a regular file's, so one larger than
    /// `limit` is refused without reading it; a pipe is read until it ends or passes `limit`.
    /// - Returns: the number of bytes read, or nil when the input is larger than `limit`.
    static func readToEnd(
        fd: Int32, limit: Int, size: Int, into buffer: inout UnsafeMutableRawBufferPointer
    ) -> Result<Int?, Failure> {
        var size = size
        if size < 0 {
            var st = stat()
            guard fstat(fd, &st) == 0 else { return .failure(Failure(message: errnoMessage())) }
            if st.st_mode & S_IFMT == S_IFREG {
                size = Int(st.st_size)
                if size > limit { return .success(nil) }
            }
        }
        // One byte more than the size, so a file that grew since is noticed.
        func grow(to n: Int) {
            guard n > buffer.count else { return }
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(n, buffer.count * 2), alignment: 16)
            if let base = buffer.baseAddress {
                bigger.baseAddress!.copyMemory(from: base, byteCount: buffer.count)
                buffer.deallocate()
            }
            buffer = bigger
        }
        grow(to: size >= 0 ? max(min(size, limit) + 1, 4096) : 64 << 10)
        var count = 0
        while true {
            if count == buffer.count {
                if count > limit { return .success(nil) }
                grow(to: buffer.count * 2)
            }
            let n = read(fd, buffer.baseAddress! + count, buffer.count - count)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(message: errnoMessage()))
            }
            if n == 0 { break }
            count += n
            if count > limit { return .success(nil) }
            // A regular file read up to the size fstat reported: no need for a read that returns 0.
            if count == size && count < buffer.count { break }
        }
        return .success(count)
    }

    /// The entries of a directory, without `.` and `..`, unsorted, with their kind when
    /// the file system reports it (nil: ask `info`).
    static func list(_ path: String) -> Result<[(name: String, kind: Kind?)], Failure> {
        guard let dir = opendir(path) else { return .failure(Failure(message: errnoMessage())) }
        defer { closedir(dir) }
        var names: [(name: String, kind: Kind?)] = []
        while let entry = readdir(dir) {
            var nameTuple = entry.pointee.d_name
            let capacity = MemoryLayout.size(ofValue: nameTuple)
            let name = withUnsafePointer(to: &nameTuple) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: capacity) {
                    String(cString: $0)
                }
            }
            let type = entry.pointee.d_type
            let kind: Kind? = type == UInt8(DT_REG) ? .file : type == UInt8(DT_DIR) ? .directory : nil
            if name != "." && name != ".." { names.append((name, kind)) }
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
