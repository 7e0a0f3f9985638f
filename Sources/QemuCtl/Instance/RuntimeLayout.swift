#if canImport(Glibc)
import Glibc
#endif

/// Where a VM's control socket and runtime files live.
///
/// The socket is `<socketDirectory>/<name>.sock`, where the Go seed puts it, so a VM
/// started by either library can be attached by name. The VM's own files (pid file,
/// lock, QEMU log, secrets while starting, serial log, launch record) live in the
/// private directory `<socketDirectory>/<name>/`. Both directories are 0700.
public struct RuntimeLayout: Sendable, Hashable {
    /// The directory holding control sockets.
    public var socketDirectory: String
    /// The VM name.
    public var name: String

    /// The seed's default socket directory: `/var/run/qemu` as root, else
    /// `$XDG_CACHE_HOME/qemuctl` (or `~/.cache/qemuctl`, the home from `$HOME` or else from
    /// `/etc/passwd`, read as a file). Never a shared directory such as `/tmp`: without a home it
    /// is ``noHomeDirectory``, which every use refuses with ``noHomeMessage``.
    public static var defaultSocketDirectory: String {
        if Posix.effectiveUID == 0 { return "/var/run/qemu" }
        if let xdg = Posix.environmentValue("XDG_CACHE_HOME"), xdg.hasPrefix("/") { return xdg + "/qemuctl" }
        guard let home = Posix.homeDirectory() else { return noHomeDirectory }
        return home + "/.cache/qemuctl"
    }

    /// The ``defaultSocketDirectory`` of a user without a home directory: not a usable place
    /// (preparing it fails with ``noHomeMessage``).
    public static let noHomeDirectory = "/nonexistent/.qemuctl-no-home-directory"

    /// Why there is no default socket directory, and the fix.
    public static var noHomeMessage: String {
        "no state directory: HOME is not set and uid \(Posix.effectiveUID) has no home directory in /etc/passwd; set HOME or XDG_CACHE_HOME, or choose one with --state-dir DIR (or QEMUCTL_STATE_DIR)"
    }

    /// Creates the layout of VM `name` under `socketDirectory` (default: ``defaultSocketDirectory``).
    public init(name: String, socketDirectory: String? = nil) {
        self.name = name
        var dir = socketDirectory ?? Self.defaultSocketDirectory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        self.socketDirectory = dir
    }

    /// The QMP control socket.
    public var socketPath: String { "\(socketDirectory)/\(name).sock" }
    /// The VM's private runtime directory.
    public var runtimeDirectory: String { "\(socketDirectory)/\(name)" }
    /// QEMU's pid file.
    public var pidFile: String { runtimeDirectory + "/qemu.pid" }
    /// The lock that serialises starts of this name.
    public var lockFile: String { runtimeDirectory + "/lock" }
    /// The serial console log.
    public var serialLog: String { runtimeDirectory + "/serial.log" }
    /// QEMU's own standard output and error (warnings, and why it refused to start), 0600,
    /// started afresh at each launch.
    public var qemuLog: String { runtimeDirectory + "/qemu.log" }
    /// The serial console's unix socket (a chardev server QEMU listens on; one client at a time).
    public var consoleSocket: String { runtimeDirectory + "/console.sock" }
    /// The lock an attached console holds, so a second one fails at once instead of waiting.
    public var consoleLock: String { runtimeDirectory + "/console.lock" }
    /// The second QMP monitor, for long-lived followers such as `qemuctl events`
    /// (see ``LaunchOptions/followerSocketPath``). Inside the 0700 runtime directory,
    /// so only this user reaches it; the control socket stays free for commands.
    public var followerSocketPath: String { runtimeDirectory + "/events.sock" }

    /// The largest socket path a unix socket address holds.
    public static let maxSocketPathLength = 107

    /// The pid of the QEMU that owns this layout: the pid file's process, if it is
    /// alive (not a zombie) and its command line names this socket; when the pid file
    /// exists but is empty or garbage, the process whose command line names this socket
    /// (a scan of `/proc`, only then), so a damaged pid file never hides a running
    /// QEMU; else `nil`.
    ///
    /// The socket is named in `-chardev socket,…,path=…`, where a comma of the path
    /// is written `,,`: both spellings are looked for.
    package func runningPID() -> Int32? { runningQEMU()?.pid }

    /// ``runningPID()`` and the command line it was recognised by (`/proc/PID/cmdline`'s bytes),
    /// for callers that check more of it.
    package func runningQEMU() -> (pid: Int32, commandLine: [UInt8])? {
        // QEMU's option syntax doubles a comma in a path: both spellings match (no comma, one spelling).
        let spellings = socketPath.utf8.contains(UInt8(ascii: ",")) ? [socketPath, socketPath.replacing(",", with: ",,")] : [socketPath]
        let pidFile = readPIDFile()
        if let pid = pidFile.pid {
            guard let argv = Posix.commandLineBytes(of: pid), Posix.mentionsAnyOf(spellings, commandLine: argv) else { return nil }
            return (pid, argv)
        }
        guard pidFile.exists else { return nil }
        for pid in Posix.processIDs() where pid != Posix.currentPID {
            guard let argv = Posix.commandLineBytes(of: pid),
                  String(decoding: argv.prefix { $0 != 0 }, as: UTF8.self).contains("qemu"),
                  Posix.mentionsAnyOf(spellings, commandLine: argv) else { continue }
            return (pid, argv)
        }
        return nil
    }

    /// The pid file, read relative to the directories' descriptors without following a link:
    /// whether something stands there, and the pid when it is this user's regular file holding
    /// one (a link, another user's file or garbage exists without a pid).
    private func readPIDFile() -> (exists: Bool, pid: Int32?) {
        let (dirFD, _) = Posix.openDirectory(socketDirectory)
        guard dirFD >= 0 else { return (false, nil) }
        defer { Posix.closeFD(dirFD) }
        let (vmFD, vmError) = Posix.openPrivateDirectory(at: dirFD, name, parent: socketDirectory, create: false)
        guard vmFD >= 0 else { return (vmError != nil, nil) }
        defer { Posix.closeFD(vmFD) }
        guard Posix.entryExists(at: vmFD, "qemu.pid") else { return (false, nil) }
        let (bytes, _) = Posix.readFile(at: vmFD, "qemu.pid", parent: runtimeDirectory, limit: 64)
        return (true, bytes.flatMap { Int32(Posix.trimmed(String(decoding: $0, as: UTF8.self))) })
    }

    /// Problems with the name or path lengths, or `nil` when usable.
    func problem() -> String? {
        if socketDirectory == Self.noHomeDirectory { return Self.noHomeMessage }
        if let p = Names.vmNameProblem(name) { return "invalid VM name: \(p)" }
        for path in [socketPath, followerSocketPath] where path.utf8.count > Self.maxSocketPathLength {
            return "socket path \(path) is \(path.utf8.count) bytes; a unix socket path holds at most \(Self.maxSocketPathLength): use a shorter socket directory"
        }
        return nil
    }

    /// Makes both directories safe before QEMU opens files in them by path (its pid file, chardev
    /// log, sockets): the socket directory is created 0700 when missing and must then pass
    /// ``Posix/checkTrustedDirectory(_:)`` (this user's, not writable by group or others, parents
    /// root's or this user's); the runtime directory is created or opened without following a
    /// link and must be this user's (tightened to 0700). Nothing in it may be a link, another
    /// user's, a hard link or of the wrong kind (`*.sock` sockets, the rest regular files); nor
    /// may `NAME.sock`. Since only this user can write either directory, nothing checked here can
    /// be swapped before QEMU opens it.
    package func prepare() throws(InstanceError) {
        if let p = problem() { throw InstanceError(code: .invalidConfig, message: p) }
        func fail(_ m: String) -> InstanceError { InstanceError(code: .runtimeDirectory, message: m) }
        switch Posix.checkTrustedDirectory(socketDirectory) {
        case .trusted: break
        case .missing:
            if let e = Posix.makePrivateDirectory(socketDirectory) { throw fail(e) }
            if case .refused(let why) = Posix.checkTrustedDirectory(socketDirectory) {
                throw fail("refusing socket directory \(socketDirectory): \(why)")
            }
        case .refused(let why):
            throw fail("refusing socket directory \(socketDirectory): \(why)")
        }
        let (dirFD, openError) = Posix.openDirectory(socketDirectory)
        guard dirFD >= 0 else { throw fail(openError ?? "cannot open \(socketDirectory)") }
        defer { Posix.closeFD(dirFD) }
        if let e = Posix.entryProblem(at: dirFD, name + ".sock", parent: socketDirectory, type: S_IFSOCK) { throw fail(e) }
        let (vmFD, vmError) = Posix.openPrivateDirectory(at: dirFD, name, parent: socketDirectory, create: true)
        guard vmFD >= 0 else { throw fail(vmError ?? "cannot create \(runtimeDirectory)") }
        defer { Posix.closeFD(vmFD) }
        for entry in Posix.entryNames(at: vmFD) {
            let type: mode_t? = entry.hasSuffix(".sock") ? S_IFSOCK : Posix.temporaryNamePID(entry) != nil ? nil : S_IFREG
            if let e = Posix.entryProblem(at: vmFD, entry, parent: runtimeDirectory, type: type) { throw fail(e) }
        }
    }
}
