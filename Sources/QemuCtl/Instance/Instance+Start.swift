#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QMP

/// How ``Instance/start(_:options:)`` launches a VM.
public struct StartOptions: Sendable {
    /// The socket directory; overrides ``VMConfig/socketDirectory``; default ``RuntimeLayout/defaultSocketDirectory``.
    public var socketDirectory: String?
    /// Leave the vCPUs paused after setup (default: continue them).
    public var startPaused: Bool
    /// Deadline for connecting to QMP and for each setup command.
    public var timeout: Duration
    /// The accelerator and CPU model to use; `nil` runs ``AcceleratorProbe/shared``
    /// for `auto` and `kvm` (see ``Instance/acceleratorChoice``).
    public var accelerator: AcceleratorChoice?
    /// How long QEMU may take to set the VM up before it detaches (opening images,
    /// connecting to NBD, VDE or socket back ends). A back end that accepts the
    /// connection and never answers would otherwise hold the start forever; at the
    /// deadline QEMU is killed and the start fails.
    public var launchTimeout: Duration
    /// Called once QEMU's process exists, with its pid and the accelerator it was given, while
    /// QEMU is still setting the VM up: a caller records the pid in that time instead of after.
    /// When the start then fails, QEMU is gone (killed if need be) by the time `start` throws.
    public var onSpawn: (@Sendable (_ pid: Int32, _ accelerator: AcceleratorChoice) -> Void)?

    /// Creates options.
    public init(socketDirectory: String? = nil, startPaused: Bool = false, timeout: Duration = .seconds(10),
                accelerator: AcceleratorChoice? = nil, launchTimeout: Duration = .seconds(60),
                onSpawn: (@Sendable (_ pid: Int32, _ accelerator: AcceleratorChoice) -> Void)? = nil) {
        self.socketDirectory = socketDirectory
        self.startPaused = startPaused
        self.timeout = timeout
        self.accelerator = accelerator
        self.launchTimeout = launchTimeout
        self.onSpawn = onSpawn
    }
}

extension Instance {
    /// Starts a VM: QEMU detached (`-daemonize -pidfile`; in the qemuctl command, a child in a
    /// session of its own with its output in `qemu.log`), paused (`-S`) until the
    /// setup over QMP is done (display passwords), then continued; a VM with
    /// nothing to set up starts running at once.
    ///
    /// - A start of a name that is already running, or that another program is
    ///   starting at this moment (a lock in the runtime directory that dies with its
    ///   holder), fails with ``InstanceError/Code-swift.struct/alreadyRunning``;
    ///   the live VM's socket is never touched.
    /// - A stale socket (nobody listening) is replaced.
    /// - When QEMU refuses to start, its own error message is reported at once.
    /// - A UEFI variable store that does not exist is created from its template
    ///   (``Firmware/prepareVariableStore()``); an existing one is never overwritten.
    /// - Secrets are written 0600 into the 0700 runtime directory for QEMU to read
    ///   and deleted once QMP is up; QEMU gets a minimal environment.
    /// - Images whose header names other host files (a qcow2 external data file, a VMDK
    ///   descriptor's extents), and a VDE socket that is a regular file (libvdeplug would read
    ///   a switch URL from it), are refused (``HostFileCheck``); backing files are never opened.
    ///
    /// - Throws: ``InstanceError``.
    public static func start(_ config: VMConfig, options: StartOptions = StartOptions()) async throws(InstanceError) -> Instance {
        do {
            try config.validate()
        } catch {
            throw InstanceError(code: .invalidConfig, message: "\(error)")
        }
        let hostFileProblems = HostFileCheck.problems(config)
        if !hostFileProblems.isEmpty {
            throw InstanceError(code: .invalidConfig, message: "VM \(config.name): " + hostFileProblems.joined(separator: "; "))
        }
        let layout = RuntimeLayout(name: config.name, socketDirectory: options.socketDirectory ?? config.socketDirectory)
        try layout.prepare()

        let (lockFD, lockError) = Posix.lockFile(layout.lockFile, wait: false)
        if let lockError { throw InstanceError(code: .runtimeDirectory, message: lockError) }
        guard lockFD >= 0 else {
            throw InstanceError(code: .alreadyRunning, message: "VM \(config.name) is being started or stopped by another program right now (lock \(layout.lockFile))")
        }
        defer { Posix.closeFD(lockFD) }

        try await ensureNotRunning(layout)
        // The VM's own UEFI variable store, copied from its template once (under the start lock).
        do { try config.firmware?.prepareVariableStore() } catch {
            throw InstanceError(code: .startFailed, message: "VM \(config.name): \(error)")
        }

        let binary: String
        do {
            binary = try QEMUDiscovery.findBinary(arch: config.arch ?? .host, configuredPath: config.qemuPath)
        } catch {
            throw InstanceError(code: .startFailed, message: "\(error)")
        }
        var accelerator = options.accelerator
        if accelerator == nil && config.machine.accel != .tcg {
            do {
                accelerator = try await AcceleratorProbe.shared.probe(
                    binary: binary, machineType: config.machine.type ?? "q35", requested: config.machine.accel)
            } catch {
                throw InstanceError(code: .startFailed, message: "VM \(config.name): \(error)")
            }
        }
        var commandLine: QEMUCommandLine
        do {
            commandLine = try config.commandLine(LaunchOptions(
                qmpSocketPath: layout.socketPath, runtimeDirectory: layout.runtimeDirectory,
                pidFile: layout.pidFile, daemonize: !Posix.startsQEMUAsChild, startPaused: true, accelerator: accelerator,
                followerSocketPath: layout.followerSocketPath))
            // -S only when there is setup to do before the guest runs (or the caller
            // wants it paused); otherwise QEMU starts the vCPUs itself, one round trip sooner.
            if commandLine.postStartActions.isEmpty && !options.startPaused {
                commandLine = try config.commandLine(LaunchOptions(
                    qmpSocketPath: layout.socketPath, runtimeDirectory: layout.runtimeDirectory,
                    pidFile: layout.pidFile, daemonize: !Posix.startsQEMUAsChild, startPaused: false, accelerator: accelerator,
                    followerSocketPath: layout.followerSocketPath))
            }
        } catch {
            throw InstanceError(code: .invalidConfig, message: "\(error)")
        }
        let startsPaused = commandLine.arguments.contains("-S")

        var written: [String] = []
        defer { written.forEach(Posix.unlinkFile) }
        for file in commandLine.secretFiles {
            let value: String
            do { value = try file.secret.read() } catch {
                throw InstanceError(code: .invalidConfig, message: "VM \(config.name): \(error)")
            }
            if let e = Posix.writeFileAtomically(file.path, Array(value.utf8), mode: 0o600) {
                throw InstanceError(code: .runtimeDirectory, message: e)
            }
            written.append(file.path)
        }

        Posix.unlinkFile(layout.pidFile)
        let choice = accelerator ?? AcceleratorChoice(accelerator: commandLine.accelerator, reasons: ["\(commandLine.accelerator.rawValue) requested"])
        let pid: Int32
        let qmp: QMPClient
        if Posix.startsQEMUAsChild {
            // The qemuctl command: QEMU runs as its child in a session of its own (no -daemonize:
            // its double fork and the wait for its parent cost milliseconds), reaped by a thread
            // when it exits. The QMP socket is connected as soon as QEMU binds it; QEMU answers
            // qmp_capabilities once the VM is set up, so that answer is the "started" signal.
            LaunchTrace.starting(config.name, binary, commandLine.arguments)
            let spawned = Posix.spawnDetached(binary, commandLine.arguments, environment: minimalEnvironment(), logPath: layout.qemuLog)
            guard let exit = spawned.exit else {
                throw InstanceError(code: .startFailed, message: "cannot start VM \(config.name): \(spawned.error ?? "spawn failed")")
            }
            pid = spawned.pid
            // QEMU writes this file itself once it has parsed its options; written now, a qemuctl
            // killed right after the spawn cannot leave a starting QEMU that the next run misses.
            _ = Posix.writeFileAtomically(layout.pidFile, Array("\(pid)\n".utf8), mode: 0o600, durable: false)
            FaultPoint.hit(.spawnedUnrecorded)
            options.onSpawn?(pid, choice)
            qmp = try await connectWhileStarting(config.name, layout: layout, binary: binary, exit: exit,
                                                 launchTimeout: options.launchTimeout)
            FaultPoint.hit(.afterSpawn)
        } else {
            // A library caller: QEMU detaches itself (-daemonize), so it is never a child of this
            // process (whose other code may not expect children to come and go), and its parent
            // exits once the VM is set up; waited for on a thread of its own so many starts overlap.
            let arguments = commandLine.arguments
            LaunchTrace.starting(config.name, binary, arguments)
            let deadline = nanoseconds(options.launchTimeout)
            let result = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
                Posix.run(binary, arguments, environment: minimalEnvironment(), deadline: deadline,
                          // The daemon has written its pid file before it opens back ends: kill it too.
                          onTimeout: { if let pid = layout.runningPID() { Posix.signal(pid, Posix.sigkill) } })
            }
            if let spawnError = result.spawnError {
                throw InstanceError(code: .startFailed, message: "cannot start VM \(config.name): \(spawnError)")
            }
            if result.timedOut {
                throw InstanceError(code: .startFailed, message: "QEMU did not finish starting VM \(config.name) within \(options.launchTimeout) (a back end it connects to at start, such as an NBD, VDE or socket server, may not be answering); it was killed")
            }
            guard result.status == 0 else {
                let text = result.stderr.split(separator: "\n").map { $0.trimmingPrefix("\(binary): ") }.joined(separator: "\n")
                throw InstanceError(code: .startFailed, message: "QEMU refused to start VM \(config.name) (exit status \(result.status)): \(text.isEmpty ? "no message" : text)")
            }
            guard let daemon = readPIDFile(layout.pidFile) else {
                throw InstanceError(code: .startFailed, message: "QEMU started VM \(config.name) but wrote no pid file at \(layout.pidFile)")
            }
            pid = daemon
            FaultPoint.hit(.spawnedUnrecorded)
            options.onSpawn?(pid, choice)
            FaultPoint.hit(.afterSpawn)
            do {
                qmp = try await QMPClient.connect(to: layout.socketPath, timeout: options.timeout)
            } catch {
                Posix.signal(pid, Posix.sigkill)
                throw InstanceError(code: .startFailed, message: "VM \(config.name) started (pid \(pid)) but its QMP socket did not answer: \(error); it was killed")
            }
        }
        let instance = Instance(name: config.name, socketPath: layout.socketPath, pid: pid, qmp: qmp,
                                accelerator: commandLine.accelerator, initial: startsPaused ? .prelaunch : .running)
        instance.setAcceleratorChoice(choice)
        do throws(InstanceError) {
            for action in commandLine.postStartActions {
                let value: String
                do { value = try action.secret.read() } catch {
                    throw InstanceError(code: .invalidConfig, message: "VM \(config.name): \(error)")
                }
                let arguments = action.arguments(secretValue: value).mapValues { JSONValue.string($0) }
                do {
                    try await qmp.execute(action.command, arguments: .object(arguments), timeout: options.timeout)
                } catch {
                    // Never echo the arguments: they hold the secret.
                    throw InstanceError(code: .startFailed, message: "VM \(config.name): \(action.command) failed: \(error.message)")
                }
            }
            if startsPaused && !options.startPaused {
                try await instance.resume(timeout: options.timeout)
            }
        } catch {
            _ = try? await instance.forceStop()
            throw error
        }
        return instance
    }

    /// Connects to a QEMU that is starting: retries until its QMP socket accepts, then
    /// negotiates, all within `deadline`. When QEMU exits first, its own message (from
    /// its log) is the error; at the deadline it is killed.
    private static func connectWhileStarting(_ name: String, layout: RuntimeLayout, binary: String, exit: ChildExit,
                                             launchTimeout: Duration) async throws(InstanceError) -> QMPClient {
        let deadline = ContinuousClock.now + launchTimeout
        func refused(_ status: Int32) -> InstanceError {
            let bytes = Posix.readFile(layout.qemuLog, limit: 64 << 10) ?? []
            let text = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
                .map { $0.trimmingPrefix("\(binary): ") }.joined(separator: "\n")
            return InstanceError(code: .startFailed, message: "QEMU refused to start VM \(name) (exit status \(status)): \(text.isEmpty ? "no message" : text)")
        }
        func timedOut() -> InstanceError {
            Posix.signal(exit.pid, Posix.sigkill)
            return InstanceError(code: .startFailed, message: "QEMU did not finish starting VM \(name) within \(launchTimeout) (a back end it connects to at start, such as an NBD, VDE or socket server, may not be answering); it was killed")
        }
        // QEMU binds its socket early in its start (the VM is set up tens of milliseconds
        // later, and the connection then waits for qmp_capabilities' answer, woken by the
        // reply): polled every 1 ms at first, backing off to 5 ms so that many VMs starting at
        // once on a loaded host do not spend the CPU they need on polling.
        var pause = Duration.milliseconds(1)
        while true {
            if let status = exit.status { throw refused(status) }
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { throw timedOut() }
            if Posix.fileExists(layout.socketPath) {
                do {
                    return try await QMPClient.connect(to: layout.socketPath, timeout: left)
                } catch {
                    // QEMU may be exiting (a back end failed after its monitor was up): give its reaper a moment.
                    for _ in 0..<200 where exit.status == nil && error.code != .connectFailed {
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                    if let status = exit.status { throw refused(status) }
                    if error.code == .timedOut { throw timedOut() }
                    if error.code != .connectFailed {
                        Posix.signal(exit.pid, Posix.sigkill)
                        throw InstanceError(code: .startFailed, message: "VM \(name) started (pid \(exit.pid)) but its QMP socket did not answer: \(error); it was killed")
                    }
                }
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 3 / 2, .milliseconds(5))
        }
    }

    /// Refuses to start when a live QEMU owns the name; removes a stale socket.
    static func ensureNotRunning(_ layout: RuntimeLayout) async throws(InstanceError) {
        if let pid = layout.runningPID() {
            throw InstanceError(code: .alreadyRunning, message: "VM \(layout.name) is already running (pid \(pid), socket \(layout.socketPath))")
        }
        // No live QEMU owns the runtime directory (checked above), so a follower
        // socket left there is stale; QEMU binds a fresh one.
        Posix.unlinkFile(layout.followerSocketPath)
        guard Posix.fileExists(layout.socketPath) else { return }
        do {
            let probe = try await QMPClient.connect(to: layout.socketPath, timeout: .seconds(2))
            let pid = probe.peerPID.map { " (pid \($0))" } ?? ""
            probe.close()
            throw InstanceError(code: .alreadyRunning, message: "VM \(layout.name) is already running\(pid): \(layout.socketPath) answers")
        } catch let error as InstanceError {
            throw error
        } catch let error as QMPError where error.code == .timedOut {
            throw InstanceError(code: .alreadyRunning, message: "VM \(layout.name) looks alive: \(layout.socketPath) accepts connections but its monitor is busy; not starting a second QEMU")
        } catch {
            // Nobody listens: the socket of a VM that exited. Safe to replace.
            Posix.unlinkFile(layout.socketPath)
        }
    }

    package static func readPIDFile(_ path: String) -> Int32? {
        guard let bytes = Posix.readFile(path, limit: 64) else { return nil }
        return Int32(Posix.trimmed(String(decoding: bytes, as: UTF8.self)))
    }

    /// QEMU gets no inherited environment: a secret passed to this process in a
    /// variable must not be readable in QEMU's `/proc/PID/environ`.
    static func minimalEnvironment() -> [String] {
        var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        if let tmp = Posix.environmentValue("TMPDIR") { env.append("TMPDIR=\(tmp)") }
        return env
    }
}
