#if canImport(Glibc)
import Glibc
#endif

// The file-system calls firmware setup needs, kept beside Posix.swift (the other file of QemuCtl that
// calls syscalls directly) so that firmware support stays out of the shared helpers.

extension Posix {
    /// What ``copyFileNoReplace(from:to:mode:)`` did.
    package enum CopyOutcome: Sendable, Equatable {
        /// `destination` did not exist and now holds a copy of the source.
        case created
        /// Something already had the name `destination` (a file, a directory, a symbolic link, or a
        /// copy another process finished first); it was left exactly as it was.
        case existed
    }

    /// Copies `source` to a new file `destination` with exactly `mode`, never replacing or following
    /// anything already at `destination`.
    ///
    /// The copy is written into a temporary file beside `destination` (``temporaryName(for:)``, created
    /// `O_EXCL|O_NOFOLLOW`, synced) and then hard-linked to `destination` with `link(2)`, which
    /// fails with `EEXIST` when the name exists in any form (a dangling symbolic link included) and
    /// never follows it. So `destination` appears complete or not at all, two processes racing get
    /// one copy, and a name planted by someone else is never written through. The temporary file is
    /// removed in every case; one left by a crash is swept like the state files'
    /// (``removeStaleTemporaries(inDirectory:)``). Missing parent directories are created 0700.
    ///
    /// - Returns: What happened, or an error message naming the call and the path.
    package static func copyFileNoReplace(from source: String, to destination: String, mode: UInt32 = 0o600)
        -> Result<CopyOutcome, CopyError>
    {
        var existing = stat()
        if lstat(destination, &existing) == 0 { return .success(.existed) }
        let dir: String, base: String
        if let slash = destination.lastIndex(of: "/") {
            dir = slash == destination.startIndex ? "/" : String(destination[..<slash])
            base = String(destination[destination.index(after: slash)...])
        } else {
            (dir, base) = (".", destination)
        }
        if let e = makeMissingDirectories(dir) { return .failure(CopyError(message: e)) }
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return .failure(CopyError(message: "cannot open \(source): \(errorText(errno))")) }
        defer { close(input) }
        // The project's one temporary-name shape (unpredictable, unique across concurrent tasks), the
        // only names removeStaleTemporaries sweeps once their process is gone.
        var temp = ""
        var output: CInt = -1
        for _ in 0..<8 where output < 0 {
            temp = dir + "/" + temporaryName(for: base)
            output = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
            if output < 0 && errno != EEXIST { break }
        }
        guard output >= 0 else { return .failure(CopyError(message: "cannot create \(temp): \(errorText(errno))")) }
        defer { unlink(temp) }
        func fail(_ what: String, _ e: CInt) -> Result<CopyOutcome, CopyError> {
            close(output)
            return .failure(CopyError(message: "\(what): \(errorText(e)); \(destination) was not created"))
        }
        _ = fchmod(output, mode)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return fail("reading \(source)", errno)
            }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + offset, n - offset) }
                if w < 0 {
                    if errno == EINTR { continue }
                    return fail("writing \(temp)", errno)
                }
                offset += w
            }
        }
        if fsync(output) != 0 { return fail("syncing \(temp)", errno) }
        if close(output) != 0 {
            return .failure(CopyError(message: "closing \(temp): \(errorText(errno)); \(destination) was not created"))
        }
        if link(temp, destination) != 0 {
            if errno == EEXIST { return .success(.existed) }
            return .failure(CopyError(message: "cannot link \(temp) to \(destination): \(errorText(errno))"))
        }
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if d >= 0 { _ = fsync(d); close(d) }
        return .success(.created)
    }

    /// Why ``copyFileNoReplace(from:to:mode:)`` failed.
    package struct CopyError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The message: the call, the path and `strerror`'s text.
        package var message: String
        /// The message.
        package var description: String { message }
    }
}
