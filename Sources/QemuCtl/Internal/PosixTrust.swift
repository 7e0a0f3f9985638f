#if canImport(Glibc)
import Glibc
#endif
import CSocketShims
#if DEBUG
import Synchronization
#endif

// File-system calls for paths other users might influence: directories checked as OpenSSH's
// StrictModes does, files opened relative to a directory descriptor without following symbolic
// links, new files created exclusively under unpredictable names. Part of `Posix` (see Posix.swift).

extension Posix {
    /// The outcome of ``checkTrustedDirectory(_:)``.
    package enum DirectoryTrust: Sendable, Equatable {
        /// The directory exists and only this user (or root, for its parents) can change it.
        case trusted
        /// The directory (or the named parent) does not exist; nothing else is wrong.
        case missing(String)
        /// Refused: why, with the path, its owner and mode, and the fix.
        case refused(String)
    }

    /// The name of user `uid` from `/etc/passwd` (read as a file: a static binary must not load
    /// the C library's NSS modules), or `nil`.
    package static func userName(_ uid: UInt32) -> String? {
        passwdEntry(uid)?.name
    }

    /// `uid N (name)` for messages.
    package static func describeOwner(_ uid: UInt32) -> String {
        userName(uid).map { "uid \(uid) (\($0))" } ?? "uid \(uid)"
    }

    /// The home directory of `uid` from `/etc/passwd`, read as a plain file (no `getpwuid`: a
    /// static binary that loads NSS modules crashes), or `nil` when it has no entry.
    package static func passwdHome(_ uid: UInt32) -> String? {
        passwdEntry(uid)?.home
    }

    private static func passwdEntry(_ uid: UInt32) -> (name: String, home: String)? {
        guard let bytes = readFile("/etc/passwd", limit: 8 << 20) else { return nil }
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count >= 7, UInt32(String(decoding: fields[2], as: UTF8.self)) == uid else { continue }
            return (String(decoding: fields[0], as: UTF8.self), String(decoding: fields[5], as: UTF8.self))
        }
        return nil
    }

    private static func octal(_ mode: mode_t) -> String {
        let s = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// Checks a directory qemuctl keeps state in, as OpenSSH's StrictModes checks `~/.ssh`:
    /// `path` must be a directory owned by the effective user and not writable by group or
    /// others; each parent must be owned by root or the effective user and not writable by group
    /// or others unless its sticky bit is set (as `/tmp`); a symbolic link on the way must be
    /// owned by root or the effective user (a link in `/tmp` another user made could be
    /// swapped). Nothing is created.
    ///
    /// - Returns: ``DirectoryTrust/missing(_:)`` when a component does not exist, else trusted or
    ///   refused with a message that names the call or the path, its owner and mode, and the fix.
    package static func checkTrustedDirectory(_ path: String) -> DirectoryTrust {
        checkDirectoryChain(path, checkingLast: true)
    }

    /// Checks only the parents of directory `path` (and the links on the way) as
    /// ``checkTrustedDirectory(_:)`` does; `path` itself must be a directory, whoever owns it.
    package static func checkParents(_ path: String) -> DirectoryTrust {
        checkDirectoryChain(path, checkingLast: false)
    }

    private static func checkDirectoryChain(_ path: String, checkingLast: Bool) -> DirectoryTrust {
        let euid = geteuid()
        var prefixes = ["/"]
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            prefixes.append(prefix)
        }
        for (i, p) in prefixes.enumerated() {
            let isLast = i == prefixes.count - 1
            var st = stat()
            if lstat(p, &st) != 0 {
                let e = errno
                if e == ENOENT { return .missing(p) }
                return .refused("lstat(\(p)) failed: \(errorText(e))")
            }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                if st.st_uid != 0 && st.st_uid != euid {
                    return .refused("\(p) is a symbolic link owned by \(describeOwner(st.st_uid)), who could point it elsewhere at any time; refusing to follow it (use the real path of the directory)")
                }
                if stat(p, &st) != 0 {
                    let e = errno
                    return .refused("stat(\(p)) failed: \(errorText(e)) (a symbolic link whose target is missing)")
                }
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                if isLast { return .refused("\(p) is not a directory") }
                return .refused("stat(\(path)) failed: \(errorText(ENOTDIR)) (\(p) is not a directory)")
            }
            let mode = st.st_mode & 0o7777
            if isLast && !checkingLast { break }
            if isLast {
                if st.st_uid != euid {
                    return .refused("\(p) is owned by \(describeOwner(st.st_uid)) (mode \(octal(mode))), not by \(describeOwner(euid)) who runs qemuctl: whoever owns it could plant files that steer qemuctl. Use a directory of your own, or, if you trust everything in it: chown -R \(euid) \(p) && chmod 700 \(p)")
                }
                if mode & 0o022 != 0 {
                    return .refused("\(p) is writable by group or others (mode \(octal(mode))): they could plant files that steer qemuctl. Fix: chmod go-w \(p) (qemuctl makes it 0700)")
                }
            } else {
                if st.st_uid != 0 && st.st_uid != euid {
                    return .refused("\(p), a parent of \(path), is owned by \(describeOwner(st.st_uid)) (mode \(octal(mode))), who could replace what is below it; use a directory whose parents only root or \(describeOwner(euid)) own")
                }
                if mode & 0o022 != 0 && mode & mode_t(S_ISVTX) == 0 {
                    return .refused("\(p), a parent of \(path), is writable by group or others without the sticky bit (mode \(octal(mode))), so they could replace what is below it. Fix: chmod go-w \(p), or use another directory")
                }
            }
        }
        return .trusted
    }

    /// Opens directory `path` (already checked by ``checkTrustedDirectory(_:)``) for use with the
    /// `…At` functions. Returns the descriptor or an error naming the call, the path and why.
    package static func openDirectory(_ path: String) -> (fd: CInt, error: String?) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return (-1, "open(\(path)) failed: \(errorText(errno))") }
        return (fd, nil)
    }

    /// Opens directory `name` inside `dirFD` (whose path is `parent`) without following a symbolic
    /// link, creating it 0700 when `create` and missing. It must be owned by the effective user and
    /// not writable by group or others (refused: someone else may have planted files in it); when
    /// `create`, one of ours readable by others loses those bits through its descriptor (never loosened).
    ///
    /// - Returns: the descriptor, or -1 and `nil` when it is missing (and not created), or -1 and why.
    package static func openPrivateDirectory(at dirFD: CInt, _ name: String, parent: String, create: Bool) -> (fd: CInt, error: String?) {
        let path = parent + "/" + name
        if create && mkdirat(dirFD, name, 0o700) != 0 && errno != EEXIST {
            return (-1, "mkdir(\(path)) failed: \(errorText(errno))")
        }
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { return (-1, nil) }
            if e == ELOOP || e == ENOTDIR {
                return (-1, "\(path) is \(entryKind(at: dirFD, name)), not a directory of qemuctl's; refusing to use it (remove it if it is not yours)")
            }
            return (-1, "open(\(path)) failed: \(errorText(e))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            return (-1, "fstat(\(path)) failed: \(errorText(e))")
        }
        if st.st_uid != geteuid() {
            close(fd)
            return (-1, "\(path) is owned by \(describeOwner(st.st_uid)) (mode \(octal(st.st_mode))), not by \(describeOwner(geteuid())); refusing to use it (remove it, or chown -R \(geteuid()) \(path) if you trust what is in it)")
        }
        if st.st_mode & 0o022 != 0 {
            close(fd)
            return (-1, "\(path) is writable by group or others (mode \(octal(st.st_mode))); refusing to use it. Fix: chmod 700 \(path)")
        }
        if create && st.st_mode & 0o077 != 0 {
            if fchmod(fd, st.st_mode & 0o7700) != 0 {
                let e = errno
                close(fd)
                return (-1, "fchmod(\(path), 0700) failed: \(errorText(e))")
            }
        }
        return (fd, nil)
    }

    /// What the entry `name` of `dirFD` is, without following a link, for messages: "a symbolic
    /// link", "a directory", "a socket"…, or "missing".
    package static func entryKind(at dirFD: CInt, _ name: String) -> String {
        var st = stat()
        guard fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return "missing" }
        switch st.st_mode & S_IFMT {
        case S_IFLNK: return "a symbolic link"
        case S_IFDIR: return "a directory"
        case S_IFREG: return "a regular file"
        case S_IFSOCK: return "a socket"
        case S_IFIFO: return "a FIFO"
        default: return "a device or special file"
        }
    }

    /// Checks entry `name` of `dirFD` (path `parent/name`) without following it: absent is fine;
    /// otherwise it must not be a symbolic link, must be owned by the effective user, must have
    /// one link when it is a regular file, and must be of `type` (`S_IFREG`, `S_IFSOCK`…) when given.
    /// Returns why it is refused, or `nil`.
    package static func entryProblem(at dirFD: CInt, _ name: String, parent: String, type: UInt32? = nil) -> String? {
        let path = parent + "/" + name
        var st = stat()
        if fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            let e = errno
            return e == ENOENT ? nil : "fstatat(\(path)) failed: \(errorText(e))"
        }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFLNK {
            return "\(path) is a symbolic link; qemuctl never follows links in its state directory (remove it: rm \(path))"
        }
        if st.st_uid != geteuid() {
            return "\(path) is owned by \(describeOwner(st.st_uid)) (mode \(octal(st.st_mode))), not by \(describeOwner(geteuid())); refusing to use it (remove it: rm \(path))"
        }
        if let type, kind != type {
            return "\(path) is \(entryKind(at: dirFD, name)), not what qemuctl keeps there; refusing to use it (remove it: rm \(path))"
        }
        if kind == S_IFREG && st.st_nlink > 1 {
            return "\(path) has \(st.st_nlink) hard links (another name shares it); refusing to use it (remove it: rm \(path))"
        }
        return nil
    }

    /// Opens the regular file `name` of `dirFD` without following a symbolic link and without
    /// blocking (`O_NONBLOCK`: a FIFO cannot hang the caller), with `flags` (`O_RDONLY`,
    /// `O_RDWR|O_CREAT`…; never pass `O_TRUNC`: truncate with `ftruncate` after this checked the
    /// file). Once open it must be a regular file owned by the effective user with one link.
    ///
    /// - Returns: the descriptor, or -1 and `nil` when it does not exist (without `O_CREAT`), or -1 and why.
    package static func openFile(at dirFD: CInt, _ name: String, parent: String, flags: CInt, mode: UInt32 = 0o600) -> (fd: CInt, error: String?) {
        let path = parent + "/" + name
        let fd = openat(dirFD, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT && flags & O_CREAT == 0 { return (-1, nil) }
            if e == ELOOP { return (-1, entryProblem(at: dirFD, name, parent: parent) ?? "\(path) is a symbolic link; refusing to follow it") }
            return (-1, "open(\(path)) failed: \(errorText(e))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            return (-1, "fstat(\(path)) failed: \(errorText(e))")
        }
        var problem: String? = nil
        if (st.st_mode & S_IFMT) != S_IFREG {
            problem = "\(path) is not a regular file; refusing to use it (remove it: rm \(path))"
        } else if st.st_uid != geteuid() {
            problem = "\(path) is owned by \(describeOwner(st.st_uid)) (mode \(octal(st.st_mode))), not by \(describeOwner(geteuid())); refusing to use it (remove it: rm \(path))"
        } else if st.st_nlink > 1 {
            problem = "\(path) has \(st.st_nlink) hard links (another name shares it); refusing to use it (remove it: rm \(path))"
        }
        if let problem {
            close(fd)
            return (-1, problem)
        }
        // Back to blocking I/O for a regular file (O_NONBLOCK only kept a FIFO from hanging open).
        let fl = fcntl(fd, F_GETFL)
        if fl >= 0 { _ = fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) }
        return (fd, nil)
    }

    /// Reads the whole regular file `name` of `dirFD` (opened as ``openFile(at:_:parent:flags:mode:)``
    /// does), at most `limit` bytes (more is an error, never cut).
    ///
    /// - Returns: the bytes; `nil` bytes and `nil` error when it does not exist; else why not.
    package static func readFile(at dirFD: CInt, _ name: String, parent: String, limit: Int) -> (bytes: [UInt8]?, error: String?) {
        let (fd, error) = openFile(at: dirFD, name, parent: parent, flags: O_RDONLY)
        guard fd >= 0 else { return (nil, error) }
        defer { close(fd) }
        return readAll(fd, path: parent + "/" + name, limit: limit)
    }

    /// Reads `fd` to its end, refusing more than `limit` bytes.
    private static func readAll(_ fd: CInt, path: String, limit: Int) -> (bytes: [UInt8]?, error: String?) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return (nil, "read(\(path)) failed: \(errorText(errno))")
            }
            if n == 0 { return (out, nil) }
            if out.count + n > limit { return (nil, "\(path) is larger than \(limit) bytes") }
            out += buffer[0..<n]
        }
    }

    /// A fresh unpredictable temporary name for a file to be renamed to `name`:
    /// `.NAME.qemuctl.tmp.PID.HEX16` (what ``removeStaleTemporaries(at:parent:)`` recognises).
    package static func temporaryName(for name: String) -> String {
        var g = SystemRandomNumberGenerator()
        let r = String(g.next() as UInt64, radix: 16)
        return ".\(name).qemuctl.tmp.\(getpid()).\(String(repeating: "0", count: 16 - r.count))\(r)"
    }

    /// Whether `name` is a temporary name ``temporaryName(for:)`` made, and its pid.
    package static func temporaryNamePID(_ name: String) -> Int32? {
        guard name.hasPrefix(".") else { return nil }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 6, parts[parts.count - 4] == "qemuctl", parts[parts.count - 3] == "tmp",
              let pid = Int32(parts[parts.count - 2]), pid > 0,
              parts[parts.count - 1].count == 16, parts[parts.count - 1].allSatisfy(\.isHexDigit) else { return nil }
        return pid
    }

    /// Writes `bytes` atomically to `name` in `dirFD` (path `parent/name`): a new file under an
    /// unpredictable name (``temporaryName(for:)``, `O_CREAT|O_EXCL|O_NOFOLLOW`), written,
    /// synced, renamed over `name` (`renameat`, which replaces a link rather than following it),
    /// then the directory synced. A crash or failed write leaves the old file or the new one; on
    /// failure the temporary file is removed and the message says `parent/name` is unchanged.
    package static func writeFileAtomically(at dirFD: CInt, _ name: String, parent: String, _ bytes: [UInt8], mode: UInt32 = 0o600,
                                            faultPoint: FaultPoint? = nil, durable: Bool = true) -> String? {
        let path = parent + "/" + name
        let temp = temporaryName(for: name)
        let fd = openat(dirFD, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { return "cannot write \(path): creating \(parent)/\(temp) failed: \(errorText(errno)); \(path) is unchanged" }
        _ = fchmod(fd, mode)
        func fail(_ what: String, _ e: CInt) -> String {
            close(fd)
            unlinkat(dirFD, temp, 0)
            return "cannot write \(path): \(what) \(parent)/\(temp) failed: \(errorText(e)); \(path) is unchanged"
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return fail("writing", errno)
            }
            offset += n
        }
        if durable && fsync(fd) != 0 { return fail("syncing", errno) }
        if close(fd) != 0 {
            let e = errno
            unlinkat(dirFD, temp, 0)
            return "cannot write \(path): closing \(parent)/\(temp) failed: \(errorText(e)); \(path) is unchanged"
        }
        if let faultPoint { FaultPoint.hit(faultPoint) }
        if renameat(dirFD, temp, dirFD, name) != 0 {
            let e = errno
            unlinkat(dirFD, temp, 0)
            return "rename(\(parent)/\(temp), \(path)) failed: \(errorText(e)); \(path) is unchanged"
        }
        if durable { _ = fsync(dirFD) }
        return nil
    }

    /// Removes, in `dirFD` (path `parent`), the regular files of this user named as
    /// ``temporaryName(for:)`` names them whose process no longer runs: what a writer killed
    /// between writing and renaming left. Nothing else is touched, no link is followed.
    /// Returns the removed paths.
    @discardableResult
    package static func removeStaleTemporaries(at dirFD: CInt, parent: String) -> [String] {
        var removed: [String] = []
        for name in entryNames(at: dirFD) {
            guard let pid = temporaryNamePID(name), pid != getpid(), !processExists(pid) else { continue }
            var st = stat()
            guard fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                  st.st_uid == geteuid() else { continue }
            if unlinkat(dirFD, name, 0) == 0 { removed.append(parent + "/" + name) }
        }
        return removed
    }

    /// The names in directory `dirFD` (without `.` and `..`); empty when it cannot be read.
    package static func entryNames(at dirFD: CInt) -> [String] {
        let copy = openat(dirFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard copy >= 0 else { return [] }
        guard let d = fdopendir(copy) else {
            close(copy)
            return []
        }
        defer { closedir(d) }
        var out: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Whether entry `name` of `dirFD` exists (not following a link).
    package static func entryExists(at dirFD: CInt, _ name: String) -> Bool {
        var st = stat()
        return fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Whether entry `name` of `dirFD` is a symbolic link.
    package static func entryIsSymbolicLink(at dirFD: CInt, _ name: String) -> Bool {
        var st = stat()
        return fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// Removes entry `name` of `dirFD` (a file, a socket or a link itself; never what a link points to).
    package static func unlinkEntry(at dirFD: CInt, _ name: String) { _ = unlinkat(dirFD, name, 0) }

    /// Removes directory `name` of `dirFD` and the files in it, without following any link:
    /// the directory is opened `O_NOFOLLOW`, its entries unlinked relative to it, a
    /// subdirectory emptied the same way. Returns why not, or `nil`.
    package static func removeTree(at dirFD: CInt, _ name: String, parent: String) -> String? {
        let path = parent + "/" + name
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return nil }
            // A link or a file where the directory was: remove the entry itself.
            if e == ELOOP || e == ENOTDIR { return unlinkat(dirFD, name, 0) == 0 ? nil : "unlink(\(path)) failed: \(errorText(errno))" }
            return "open(\(path)) failed: \(errorText(e))"
        }
        defer { close(fd) }
        for entry in entryNames(at: fd) {
            var st = stat()
            if fstatat(fd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                if let e = removeTree(at: fd, entry, parent: path) { return e }
            } else if unlinkat(fd, entry, 0) != 0 && errno != ENOENT {
                return "unlink(\(path)/\(entry)) failed: \(errorText(errno))"
            }
        }
        if unlinkat(dirFD, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
            return "rmdir(\(path)) failed: \(errorText(errno))"
        }
        return nil
    }

    /// Appends `line` and a newline to `name` in `dirFD` as ``appendLine(_:_:)`` does, opened
    /// without following a link; a file that is not this user's regular file is left alone.
    package static func appendLine(at dirFD: CInt, _ name: String, parent: String, _ line: String) {
        let (fd, _) = openFile(at: dirFD, name, parent: parent, flags: O_RDWR | O_CREAT | O_APPEND, mode: 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        appendLine(fd: fd, line)
    }

    /// The limit on a secret file's size: a password or key is far smaller; more is refused, never cut.
    package static let secretSizeLimit = 64 << 10

    /// Reads a secret file with the one policy every secret follows: opened `O_NONBLOCK|O_NOFOLLOW`
    /// (a FIFO cannot hang the reader, a symbolic link is not followed), it must be a regular file
    /// owned by the effective user with no group or other permission bits, at most
    /// ``secretSizeLimit`` bytes, and not empty. One trailing `\n` (or `\r\n`) is removed.
    ///
    /// - Returns: the value, or why it is refused (naming the file and the fix, never the content).
    package static func readSecretFile(_ path: String) -> (value: String?, error: String?) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let e = errno
            if e == ELOOP { return (nil, "secret file \(path) is a symbolic link; secrets are never read through links (give the real path)") }
            return (nil, "cannot open secret file \(path): open failed: \(errorText(e))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return (nil, "cannot read secret file \(path): fstat failed: \(errorText(errno))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return (nil, "secret file \(path) is not a regular file (a FIFO, device or directory); give a regular file (chmod 600)")
        }
        if st.st_uid != geteuid() {
            return (nil, "secret file \(path) is not owned by this user (it is \(describeOwner(st.st_uid))'s; qemuctl runs as \(describeOwner(geteuid()))); refusing it (fix: chown \(geteuid()) \(path) && chmod 600 \(path))")
        }
        if st.st_mode & 0o077 != 0 {
            let how = st.st_mode & 0o044 != 0 ? "readable" : "accessible"
            return (nil, "secret file \(path) is \(how) by group or others (mode \(octal(st.st_mode))); refusing it (fix: chmod 600 \(path))")
        }
        if st.st_size > off_t(secretSizeLimit) {
            return (nil, "secret file \(path) is \(st.st_size) bytes, over the \(secretSizeLimit / 1024) KiB limit for a secret; refusing it")
        }
        let fl = fcntl(fd, F_GETFL)
        if fl >= 0 { _ = fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) }
        let (bytes, error) = readAll(fd, path: path, limit: secretSizeLimit)
        guard let bytes else {
            return (nil, (error ?? "cannot read secret file \(path)") + (error?.contains("larger") == true ? " (the limit for a secret; refusing it)" : ""))
        }
        var trimmed = bytes[...]
        if trimmed.last == UInt8(ascii: "\n") {
            trimmed.removeLast()
            if trimmed.last == UInt8(ascii: "\r") { trimmed.removeLast() }
        }
        let value = String(decoding: trimmed, as: UTF8.self)
        guard !value.isEmpty else { return (nil, "secret file \(path) is empty; an empty secret is refused (write the secret into it)") }
        return (value, nil)
    }

    /// The owner and permission bits of open descriptor `fd`.
    package static func ownerAndMode(fd: CInt) -> (uid: UInt32, mode: Int)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (st.st_uid, Int(st.st_mode & 0o7777))
    }

    /// Removes the group and other permission bits of the open file or directory `fd` (a 0755
    /// directory becomes 0700; a 0500 one stays 0500: never loosened).
    package static func makePrivate(fd: CInt) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return }
        _ = fchmod(fd, st.st_mode & 0o7700)
    }

    /// The target of symbolic link `name` in `dirFD`, or `nil` when it is not a link.
    package static func linkTarget(at dirFD: CInt, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlinkat(dirFD, name, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The outcome of ``tryLock(fd:)``.
    package enum LockAttempt: Sendable, Equatable {
        /// This process holds the lock now.
        case locked
        /// Another holds it.
        case busy
        /// `flock` failed: why.
        case failed(String)
    }

    /// Takes an exclusive `flock` on `fd` without waiting.
    package static func tryLock(fd: CInt) -> LockAttempt {
        var rc: CInt
        repeat { rc = flock(fd, LOCK_EX | LOCK_NB) } while rc != 0 && errno == EINTR
        if rc == 0 { return .locked }
        let e = errno
        return e == EWOULDBLOCK ? .busy : .failed(errorText(e))
    }

    /// The process id ``writeLockHolder(_:)`` wrote into the open lock file `fd`, if it still runs.
    package static func lockHolder(fd: CInt) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0, let pid = Int32(trimmed(String(decoding: buffer[0..<n], as: UTF8.self))), processExists(pid) else { return nil }
        return pid
    }

    /// Checks the file `name` a child just created in the private directory `dirFD` (this user's
    /// regular file, one link, not a link itself), sets `mode` and syncs it. Returns why not, or `nil`.
    package static func sealNewFile(at dirFD: CInt, _ name: String, parent: String, mode: UInt32) -> String? {
        let (fd, error) = openFile(at: dirFD, name, parent: parent, flags: O_RDONLY)
        guard fd >= 0 else { return error ?? "\(parent)/\(name) was not created" }
        defer { close(fd) }
        if fchmod(fd, mode) != 0 { return "fchmod(\(parent)/\(name)) failed: \(errorText(errno))" }
        if fsync(fd) != 0 { return "fsync(\(parent)/\(name)) failed: \(errorText(errno))" }
        return nil
    }

    /// Gives file `name` of `fromFD` the name `newName` in `toFD` (`linkat`: fails when anything,
    /// even a dangling link, stands at the new name; follows nothing), then syncs `toFD`. The old
    /// name is left for the caller to remove. Returns why not, naming `path`, or `nil`.
    ///
    /// On a file system without hard links (`linkat` fails with `EPERM`, `EOPNOTSUPP` or `EMLINK`:
    /// vfat, some FUSE and network file systems) the file is renamed with
    /// `renameat2(RENAME_NOREPLACE)` instead, which refuses an existing name just as `linkat` does
    /// (the old name is then gone). Where that is not supported either (`EINVAL`), nothing is
    /// renamed and the message names both calls: nothing is ever put in place by a call that could
    /// replace what stands there.
    package static func linkNoReplace(from fromFD: CInt, _ name: String, to toFD: CInt, _ newName: String, path: String) -> String? {
        func appeared() -> String {
            "\(path) appeared while the image was being created (\(entryKind(at: toFD, newName))); it was left as it is and nothing was written through it"
        }
        #if DEBUG
        let injectedLink = injectedFailure(.linkat, newName), injectedRename = injectedFailure(.renameNoReplace, newName)
        #else
        let injectedLink: CInt? = nil, injectedRename: CInt? = nil
        #endif
        var e: CInt = 0
        if let injectedLink { e = injectedLink } else if linkat(fromFD, name, toFD, newName, 0) != 0 { e = errno }
        if e != 0 {
            if e == EEXIST { return appeared() }
            guard e == EPERM || e == EOPNOTSUPP || e == EMLINK else { return "linkat(\(path)) failed: \(errorText(e))" }
            var r: CInt = 0
            if let injectedRename { r = injectedRename } else if cfs_rename_noreplace(fromFD, name, toFD, newName) != 0 { r = errno }
            if r != 0 {
                if r == EEXIST { return appeared() }
                return "cannot put \(path) in place without risking replacing another file: linkat failed (\(errorText(e))) "
                    + "and renameat2(RENAME_NOREPLACE) failed (\(errorText(r))); this file system supports neither (create the image elsewhere)"
            }
        }
        _ = fsync(toFD)
        return nil
    }

    #if DEBUG
    /// A system call whose failure a test can inject (debug builds only).
    package enum InjectableCall: Sendable, Hashable {
        /// `linkat` in ``linkNoReplace(from:_:to:_:path:)``.
        case linkat
        /// `renameat2(RENAME_NOREPLACE)` in ``linkNoReplace(from:_:to:_:path:)``.
        case renameNoReplace
    }

    /// Failures to inject, by call and the name it gives (``injectFailure(_:giving:errno:)``).
    private static let injectedFailures = Mutex<[String: CInt]>([:])

    /// Makes the next `call` that gives the name `name` fail with `errno` (once), for tests of
    /// file systems this host does not have (one without hard links, or without
    /// `RENAME_NOREPLACE`); keyed by name so that no other caller meets it.
    package static func injectFailure(_ call: InjectableCall, giving name: String, errno: CInt) {
        injectedFailures.withLock { $0["\(call):\(name)"] = errno }
    }

    /// Whether an injected failure is still waiting to be taken.
    package static var hasInjectedFailures: Bool { injectedFailures.withLock { !$0.isEmpty } }

    /// The injected failure of `call` giving `name`, removed as it is taken.
    private static func injectedFailure(_ call: InjectableCall, _ name: String) -> CInt? {
        injectedFailures.withLock { $0.removeValue(forKey: "\(call):\(name)") }
    }
    #endif

    /// `path` with symbolic links, `.` and `..` resolved (`realpath`), or `nil` when it does not resolve.
    package static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// `path` made absolute against `/` with `.`, `..` and repeated slashes removed, links not resolved.
    package static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }
}
