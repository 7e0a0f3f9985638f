#if canImport(Glibc)
import Glibc
#endif
import CSocketShims
import Synchronization

// With PosixTrust.swift, the only files in QemuCtl that call process and file-system syscalls directly.

package enum Posix {
    package static var errnoValue: CInt { errno }

    package static func errorText(_ e: CInt) -> String { String(cString: strerror(e)) }

    /// Creates `path` (and missing parents) and forces mode 0700, whatever the umask.
    /// Returns nil or an error message.
    package static func makePrivateDirectory(_ path: String) -> String? {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                return "cannot create directory \(prefix): \(errorText(errno))"
            }
        }
        // Tightened through a descriptor opened without following a link: a link that appeared at
        // `path` (another user's, in a sticky /tmp) never gets its target chmod'ed; callers check
        // the directory afterwards (``checkTrustedDirectory(_:)``).
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ELOOP { return nil }
            return e == ENOTDIR ? "\(path) exists and is not a directory" : "open(\(path)) failed: \(errorText(e))"
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "fstat(\(path)) failed: \(errorText(errno))" }
        if st.st_mode & 0o7777 != 0o700 {
            // Only tighten directories this user owns; a shared parent like /var/run is left alone.
            if st.st_uid == geteuid() && fchmod(fd, 0o700) != 0 {
                return "cannot make \(path) private (fchmod 0700): \(errorText(errno))"
            }
        }
        return nil
    }

    /// Creates the missing directories of `path` with mode 0700 (never looser, whatever the umask); existing
    /// ones are left as they are. Returns nil or an error message.
    package static func makeMissingDirectories(_ path: String) -> String? {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                return "cannot create directory \(prefix): \(errorText(errno))"
            }
        }
        return nil
    }

    /// Creates `path` empty with exactly `mode` (`O_EXCL`: an existing file is an error, never truncated).
    /// Returns nil or an error message.
    package static func createEmptyFile(_ path: String, mode: UInt32) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { return "cannot create \(path): \(errorText(errno))" }
        _ = fchmod(fd, mode)
        close(fd)
        return nil
    }

    /// Writes `bytes` to `path` atomically with mode `mode`: a temporary file beside
    /// it (`PATH.RANDOM.tmp.PID`, created with `O_EXCL`), fsync, rename over `path`, fsync of the directory. A crash
    /// or a failed write (disk full, file size limit) at any moment leaves either the
    /// old file or the new one, never a mix; on failure the temporary file is removed
    /// and the message says that `path` is unchanged. Returns nil or an error message.
    ///
    /// - Parameter faultPoint: The ``FaultPoint`` to pass between the synced
    ///   temporary file and the rename (state files pass ``FaultPoint/midStateWrite``).
    /// - Parameter durable: Sync the file and its directory (default); runtime files that do
    ///   not outlive the host's uptime (a pid file) skip it.
    package static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o600,
                                            faultPoint: FaultPoint? = nil, durable: Bool = true) -> String? {
        guard let slash = path.lastIndex(of: "/") else {
            return writeFileAtomically(".", path: path, bytes, mode: mode, faultPoint: faultPoint, durable: durable)
        }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        return writeFileAtomically(dir, path: path, bytes, mode: mode, faultPoint: faultPoint, durable: durable)
    }

    private static func writeFileAtomically(_ dir: String, path: String, _ bytes: [UInt8], mode: UInt32,
                                            faultPoint: FaultPoint?, durable: Bool) -> String? {
        let name = String(path.split(separator: "/").last ?? Substring(path))
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { return "cannot write \(path): open(\(dir)) failed: \(errorText(errno)); \(path) is unchanged" }
        defer { close(dirFD) }
        return writeFileAtomically(at: dirFD, name, parent: dir, bytes, mode: mode, faultPoint: faultPoint, durable: durable)
    }

    /// Removes the temporary files ``writeFileAtomically(_:_:mode:faultPoint:durable:)`` left in
    /// `directory` when a process died between writing and renaming (see
    /// ``removeStaleTemporaries(at:parent:)``: only names qemuctl makes, links never followed).
    /// Returns their paths.
    @discardableResult
    package static func removeStaleTemporaries(inDirectory directory: String) -> [String] {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        return removeStaleTemporaries(at: fd, parent: directory)
    }

    package static func readFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // Sized by the file when it says (files in /proc say 0): a record, a pid file or a command
        // line is read with one small buffer, not a zeroed 64 KiB one per call.
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        let chunk = min(max(size + 1, 4096), 1 << 16)
        var out: [UInt8] = []
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buffer -> [UInt8] in
            while out.count < limit {
                let n = read(fd, buffer.baseAddress, min(chunk, limit - out.count))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
            }
            return out
        }
    }

    package static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The owner's uid and the permission bits (`0o777`) of `path`, following symlinks; `nil`
    /// when it cannot be stat'ed.
    package static func ownerAndMode(_ path: String) -> (uid: UInt32, mode: Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (st.st_uid, Int(st.st_mode & 0o777))
    }

    /// Whether `path` is a directory (symbolic links followed).
    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether `path` is a regular file this process may execute (symbolic links followed).
    package static func isExecutableFile(_ path: String) -> Bool {
        isRegularFile(path) && access(path, X_OK) == 0
    }

    /// Whether `path` is a regular file (symbolic links followed).
    package static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Size and modification time (whole seconds) of `path`, following symlinks; `nil` when it
    /// cannot be stat'ed. (Foundation's `attributesOfItem` also looks up the owner's and group's
    /// names in the user database, which a hot path does not need.)
    package static func sizeAndModificationTime(_ path: String) -> (size: Int64, mtime: Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (Int64(st.st_size), Int(st.st_mtim.tv_sec))
    }

    /// Whether `path` itself is a symbolic link.
    package static func isSymbolicLink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// The current time as ISO 8601 UTC, `2026-11-26T00:48:18Z`, from the C library: Foundation's
    /// date formatters load ICU's time zone data, which costs a short-lived command tens of ms.
    package static func utcTimestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// The current time as ISO 8601 UTC with milliseconds, `2026-11-26T00:48:18.123Z` (journal lines:
    /// `events --since-start` shows them beside QEMU's millisecond timestamps).
    package static func utcTimestampMilliseconds() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(now.tv_nsec / 1_000_000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }

    /// The time ``utcTimestamp()`` (`2026-11-26T07:32:17Z`) or ``utcTimestampMilliseconds()``
    /// (`2026-11-26T07:32:17.123Z`) wrote, in seconds since the epoch.
    package static func parseUTCTimestamp(_ text: String) -> Double? {
        var u = Array(text.utf8)
        var fraction = 0.0
        if u.count == 24, u[19] == UInt8(ascii: "."), u[23] == UInt8(ascii: "Z") {
            var ms = 0
            for c in u[20..<23] {
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                ms = ms * 10 + Int(c - UInt8(ascii: "0"))
            }
            fraction = Double(ms) / 1000
            u = Array(u[..<19]) + [UInt8(ascii: "Z")]
        }
        guard u.count == 20, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"), u[10] == UInt8(ascii: "T"),
              u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"), u[19] == UInt8(ascii: "Z") else { return nil }
        func number(_ at: Int, _ digits: Int) -> Int32? {
            var v: Int32 = 0
            for c in u[at..<at + digits] {
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                v = v * 10 + Int32(c - UInt8(ascii: "0"))
            }
            return v
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900; parts.tm_mon = month - 1; parts.tm_mday = day
        parts.tm_hour = hour; parts.tm_min = minute; parts.tm_sec = second
        return Double(timegm(&parts)) + fraction
    }

    /// Appends `line` and a newline to `path` (created 0600) in one `write`.
    ///
    /// Not synced: a journal is a trail for people; records, written with
    /// ``writeFileAtomically(_:_:mode:faultPoint:)``, are what must survive a crash.
    /// (A killed process loses nothing the kernel accepted; only a power cut could.)
    /// Every complete line is an entry. A last line without a newline is an entry
    /// whose writer died mid-write (or hit a full disk): readers ignore it, and the
    /// next append cuts it off first, so a torn entry never merges with the next one.
    /// Callers serialise appends to one file (qemuctl holds the state directory lock).
    package static func appendLine(_ path: String, _ line: String) {
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        appendLine(fd: fd, line)
    }

    /// ``appendLine(_:_:)`` into the open descriptor `fd` (opened `O_APPEND`).
    package static func appendLine(fd: CInt, _ line: String) {
        var bytes = Array((line + "\n").utf8)
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, off_t(st.st_size - 1)) == 1 && last != UInt8(ascii: "\n") {
                // Find the end of the last complete entry (the torn one is at most a line long).
                let window = Int(min(st.st_size, 65536))
                var tail = [UInt8](repeating: 0, count: window)
                let start = off_t(st.st_size) - off_t(window)
                let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, window, start) }
                if n == window {
                    let keep = tail.lastIndex(of: UInt8(ascii: "\n")).map { start + off_t($0) + 1 } ?? start
                    if ftruncate(fd, keep) != 0 { bytes.insert(UInt8(ascii: "\n"), at: 0) }
                }
            }
        }
        #if DEBUG
        if FaultPoint.isSelected(.midJournalWrite) {
            let half = bytes.count / 2
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, half) }
            FaultPoint.hit(.midJournalWrite)
            bytes.removeFirst(half)
        }
        #endif
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    package static func unlinkFile(_ path: String) { unlink(path) }

    /// Takes an exclusive `flock` on `path` (created 0600). Returns the fd holding the
    /// lock, or -1 when another process holds it (and `wait` is false).
    package static func lockFile(_ path: String, wait: Bool) -> (fd: CInt, error: String?) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else { return (-1, "cannot open lock file \(path): \(errorText(errno))") }
        // This user's regular file only: never another user's file, a FIFO or a device.
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid() else {
            close(fd)
            return (-1, "lock file \(path) is not a regular file of \(describeOwner(geteuid())); refusing to use it (remove it: rm \(path))")
        }
        var rc: CInt
        repeat { rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) } while rc != 0 && errno == EINTR
        if rc != 0 {
            let e = errno
            close(fd)
            return (-1, e == EWOULDBLOCK ? nil : "cannot lock \(path): \(errorText(e))")
        }
        return (fd, nil)
    }

    package static func closeFD(_ fd: CInt) { close(fd) }

    /// Writes this process's id into the lock file held by `fd`, so a process that
    /// finds the lock busy can name its holder.
    package static func writeLockHolder(_ fd: CInt) {
        let bytes = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0 else { return }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The process id written by ``writeLockHolder(_:)`` into the lock file `path`,
    /// if that process still exists.
    package static func lockHolder(_ path: String) -> Int32? {
        guard let bytes = readFile(path, limit: 64),
              let pid = Int32(trimmed(String(decoding: bytes, as: UTF8.self))), processExists(pid) else { return nil }
        return pid
    }

    /// Whether a process with this id exists (a zombie counts as gone).
    package static func processExists(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        // A zombie has exited: only its parent's wait is missing.
        if let stat = readFile("/proc/\(pid)/stat", limit: 4096),
           let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count {
            return stat[close + 2] != UInt8(ascii: "Z")
        }
        return true
    }

    /// Sends `signal` to `pid`; returns whether it was delivered.
    @discardableResult
    package static func signal(_ pid: Int32, _ signal: Int32) -> Bool { kill(pid, signal) == 0 }

    /// This process's id.
    package static var currentPID: Int32 { getpid() }

    /// The ids of every process in `/proc`.
    package static func processIDs() -> [Int32] {
        guard let d = opendir("/proc") else { return [] }
        defer { closedir(d) }
        var out: [Int32] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let pid = Int32(name) { out.append(pid) }
        }
        return out
    }

    /// The NUL-separated command line of a process.
    package static func commandLine(of pid: Int32) -> [String]? {
        guard let bytes = readFile("/proc/\(pid)/cmdline") else { return nil }
        guard !bytes.isEmpty else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast(bytes.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether any argument of `pid`'s command line contains one of `needles`; `nil` when the
    /// command line cannot be read (no such process, or a zombie's empty one). A byte search
    /// of `/proc/PID/cmdline`: String's generic `contains` was 7 % of the CPU time of a
    /// `diff` of 50 VMs.
    package static func commandLine(of pid: Int32, mentionsAnyOf needles: [String]) -> Bool? {
        commandLineBytes(of: pid).map { mentionsAnyOf(needles, commandLine: $0) }
    }

    /// `/proc/PID/cmdline` as it is (arguments NUL-separated); `nil` when there is no such process
    /// (no file) or it is a zombie (an empty one).
    package static func commandLineBytes(of pid: Int32) -> [UInt8]? {
        guard let bytes = readFile("/proc/\(pid)/cmdline"), !bytes.isEmpty else { return nil }
        return bytes
    }

    /// Whether a command line as `/proc/PID/cmdline` holds it (arguments NUL-separated) contains
    /// one of `needles`.
    package static func mentionsAnyOf(_ needles: [String], commandLine bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { hay in
            needles.contains { needle in
                let n = Array(needle.utf8)
                guard !n.isEmpty else { return true }
                return n.withUnsafeBytes { cmem_contains(hay.baseAddress, hay.count, $0.baseAddress, $0.count) != 0 }
            }
        }
    }

    /// The resolved executable of a process.
    package static func executable(of pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Called once by the qemuctl command, whose every file gets an explicit mode and which
    /// expects its children: QEMU is then started as a direct child (posix_spawn, with the process
    /// umask set to 077 around it) instead of daemonizing itself, which is milliseconds faster.
    /// A library caller's QEMU daemonizes: never its child, and its umask never touched.
    package static func startQEMUAsChild() { directChild.store(true, ordering: .relaxed) }
    /// Whether ``startQEMUAsChild()`` was called.
    package static var startsQEMUAsChild: Bool { directChild.load(ordering: .relaxed) }
    private static let directChild = Atomic<Bool>(false)

    /// Starts `binary` as a long-lived child in a session of its own (no terminal signal reaches
    /// it), in `/`, with umask 077 (QEMU's sockets are private whatever this process's umask),
    /// with stdin on /dev/null and stdout and stderr written to `logPath` (created
    /// 0600, truncated). Every descriptor above 2 is closed in the child. Between this process and
    /// the child sits a keeper (`cproc_spawn_kept`): the child's parent for its whole life, which
    /// appends how it ended (exit status or signal) to `logPath`, and is reaped by a thread of its
    /// own when it exits (see ``ChildExit``). Returns the child's pid, or an error message.
    package static func spawnDetached(_ binary: String, _ arguments: [String], environment: [String], logPath: String)
        -> (pid: Int32, exit: ChildExit?, error: String?) {
        // Never O_TRUNC by name: the file is opened without following a link, checked (this user's
        // regular file with one link), and only then emptied.
        let slash = logPath.lastIndex(of: "/") ?? logPath.startIndex
        let dir = slash == logPath.startIndex ? "/" : String(logPath[..<slash])
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { return (-1, nil, "open(\(dir)) failed: \(errorText(errno))") }
        let (logFD, logError) = openFile(at: dirFD, String(logPath[logPath.index(after: slash)...]), parent: dir,
                                         flags: O_WRONLY | O_CREAT, mode: 0o600)
        close(dirFD)
        guard logFD >= 0 else { return (-1, nil, logError ?? "cannot open \(logPath)") }
        defer { close(logFD) }
        guard ftruncate(logFD, 0) == 0 else { return (-1, nil, "ftruncate(\(logPath)) failed: \(errorText(errno))") }
        _ = fchmod(logFD, 0o600)
        var pid: pid_t = 0
        var keeper: pid_t = 0
        // Through a keeper (see cproc_spawn_kept): QEMU's parent for its whole life, which appends
        // how QEMU ended to qemu.log (ExitReport in Reconcile reads it).
        let rc = withCArguments(binary, arguments, environment) { argv, envp in
            cproc_spawn_kept(binary, argv, envp, logFD, &pid, &keeper)
        }
        guard rc == 0 else {
            if keeper > 0 {
                var status: Int32 = 0
                while waitpid(keeper, &status, 0) < 0 && errno == EINTR {}
            }
            return (-1, nil, "cannot execute \(binary): \(errorText(rc))")
        }
        return (pid, ChildExit(reaping: keeper, for: pid), nil)
    }

    /// Calls `body` with NULL-terminated C arrays of `binary` + `arguments` and of `environment`,
    /// freed afterwards.
    private static func withCArguments(_ binary: String, _ arguments: [String], _ environment: [String],
                                       _ body: ([UnsafeMutablePointer<CChar>?], [UnsafeMutablePointer<CChar>?]) -> CInt) -> CInt {
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        return body(argv, envp)
    }

    /// What ``run(_:_:environment:input:collectOutput:deadline:onTimeout:)`` saw.
    package struct RunResult: Sendable {
        /// The exit code, 128 + N when signal N ended the child, -1 when it never ran.
        package var status: CInt
        /// Standard output (when collected; at most 1 MiB).
        package var stdout: String
        /// Standard error (at most 1 MiB).
        package var stderr: String
        /// Why the child could not be started, if it was not.
        package var spawnError: String?
        /// Whether the deadline passed and the child was killed.
        package var timedOut: Bool
    }

    /// Runs `binary` with `arguments` and `environment` (a minimal one, from the callers), stdin
    /// fed `input` (else /dev/null), stdout collected when `collectOutput` (else /dev/null) and
    /// stderr collected; waits for it to exit (QEMU with `-daemonize` exits once the daemon is
    /// set up). Every descriptor above 2 is closed in the child, which runs in a session of its own.
    ///
    /// `input` is written to a pipe before the child starts and the pipe closed (it must fit the
    /// pipe's buffer, 64 KiB): a child that exits early cannot make this process's write fail.
    ///
    /// With a `deadline` (nanoseconds from the start): when the output has not reached its end by
    /// then, the child is killed (SIGKILL) and `timedOut` is true; `onTimeout` runs first, to kill
    /// what the child may have forked.
    package static func run(_ binary: String, _ arguments: [String], environment: [String], input: [UInt8]? = nil,
                            collectOutput: Bool = false, deadline: UInt64? = nil, onTimeout: () -> Void = {}) -> RunResult {
        func failed(_ message: String, closing fds: [CInt]) -> RunResult {
            fds.filter { $0 >= 0 }.forEach { _ = close($0) }
            return RunResult(status: -1, stdout: "", stderr: "", spawnError: message, timedOut: false)
        }
        var errPipe: [CInt] = [-1, -1], outPipe: [CInt] = [-1, -1], inPipe: [CInt] = [-1, -1]
        guard cproc_pipe(&errPipe) == 0 else { return failed("pipe: \(errorText(errno))", closing: []) }
        if collectOutput && cproc_pipe(&outPipe) != 0 { return failed("pipe: \(errorText(errno))", closing: errPipe) }
        if let input {
            guard input.count <= 65_536, cproc_pipe(&inPipe) == 0 else {
                return failed("pipe for the input: \(errorText(errno))", closing: errPipe + outPipe)
            }
            let written = input.withUnsafeBytes { write(inPipe[1], $0.baseAddress, $0.count) }
            close(inPipe[1])
            inPipe[1] = -1
            if written != input.count { return failed("writing the input: \(errorText(errno))", closing: errPipe + outPipe + inPipe) }
        }
        var pid: pid_t = 0
        let rc = withCArguments(binary, arguments, environment) { argv, envp in
            cproc_spawn(binary, argv, envp, inPipe[0], outPipe[1], errPipe[1], &pid)
        }
        for fd in [errPipe[1], outPipe[1], inPipe[0]] where fd >= 0 { close(fd) }
        guard rc == 0 else { return failed("cannot execute \(binary): \(errorText(rc))", closing: [errPipe[0], outPipe[0]]) }
        // Both pipes are read until their end: a child that fills one while this waits on the other would hang.
        var open: [(fd: CInt, bytes: [UInt8])] = [(errPipe[0], [])] + (collectOutput ? [(outPipe[0], [])] : [])
        var collected: [CInt: [UInt8]] = [:]
        var buffer = [UInt8](repeating: 0, count: 4096)
        let start = monotonicNanoseconds()
        var timedOut = false
        while !open.isEmpty {
            var waitMillis: CInt = -1
            if let deadline {
                let elapsed = monotonicNanoseconds() - start
                if elapsed >= deadline {
                    timedOut = true
                    onTimeout()
                    kill(pid, SIGKILL)
                    break
                }
                waitMillis = CInt(min((deadline - elapsed) / 1_000_000 + 1, 1_000))
            }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), waitMillis)
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            for i in fds.indices.reversed() where fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(open[i].fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    collected[open[i].fd] = open[i].bytes
                    close(open[i].fd)
                    open.remove(at: i)
                } else if open[i].bytes.count < 1 << 20 {
                    open[i].bytes += buffer[0..<n]
                }
            }
        }
        for o in open {
            collected[o.fd] = o.bytes
            close(o.fd)
        }
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitCode: CInt = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return RunResult(status: exitCode, stdout: String(decoding: collected[outPipe[0]] ?? [], as: UTF8.self),
                         stderr: String(decoding: collected[errPipe[0]] ?? [], as: UTF8.self), spawnError: nil, timedOut: timedOut)
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    package static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    package static var effectiveUID: UInt32 { geteuid() }

    /// Writes the first `count` bytes of `bytes` to `fd`, retrying short writes; returns an
    /// error text or `nil`.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8], count: Int) -> String? {
        var offset = 0
        while offset < count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return errorText(errno)
            }
            offset += n
        }
        return nil
    }

    /// Writes `text` to standard error, unbuffered.
    package static func writeStandardError(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// Ends the process at once with `status` (no cleanup handlers).
    package static func exitImmediately(_ status: CInt) -> Never { _exit(status) }

    /// Sends `signal` to this process (a fault point's SIGKILL or SIGSTOP).
    package static func signalSelf(_ signal: Int32) { _ = kill(getpid(), signal) }

    package static let sigkill = SIGKILL
    package static let sigterm = SIGTERM
    package static let sigstop = SIGSTOP
    package static let sigcont = SIGCONT

    package static func trimmed(_ s: String) -> String {
        var s = Substring(s)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }

    package static func environmentValue(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// `$HOME` when it is an absolute path, else the effective user's home from `/etc/passwd`
    /// (read as a file: `getpwuid` in the static release binary loads NSS modules and crashes),
    /// else `nil`.
    package static func homeDirectory() -> String? {
        if let h = environmentValue("HOME"), h.hasPrefix("/") { return h }
        guard let home = passwdHome(geteuid()), home.hasPrefix("/"), home != "/" else { return nil }
        return home
    }
}
