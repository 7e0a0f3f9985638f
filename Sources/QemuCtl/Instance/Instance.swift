public import QMP
import Synchronization

/// A running QEMU virtual machine: started by this library or attached to.
///
/// An instance holds one QMP connection to the VM's monitor and follows its events
/// to keep ``state`` current. The VM itself is a detached process: it outlives the
/// instance and the program that created it. ``close()`` only ends the connection.
///
/// ```swift
/// let vm = try await Instance.start(config)
/// for await state in vm.stateChanges() { print(state) }
/// let outcome = try await vm.stop(timeout: .seconds(30))
/// print("stopped by \(outcome.step) in \(outcome.duration)")
/// ```
public final class Instance: Sendable {
    /// The VM name (from the configuration, or `query-name` when attached).
    public let name: String
    /// The QMP socket path.
    public let socketPath: String
    /// The QEMU process id: from the pid file when started, `SO_PEERCRED` when
    /// attached by socket, the argument when attached by pid.
    public let pid: Int32
    /// The QMP connection. Use it for commands this type does not wrap.
    public let qmp: QMPClient
    /// What the accelerator choice was, when this instance started the VM.
    public let accelerator: Accelerator?
    /// The QEMU process (pid, start time, executable) as it was when this instance started or
    /// attached to it; `nil` when it could not be read. The stop ladder's signals and
    /// ``forceStop(timeout:)`` go only to a process proven to still be this one
    /// (``signalDisproof()``): a pid alone is not proof (pids are reused).
    public let process: ProcessIdentity?

    private struct Watch {
        var state: VMState = .unknown
        /// Counts state changes made by events, so a query-status answer that
        /// raced with an event does not overwrite the newer state.
        var eventSequence = 0
        var observers: [Int: AsyncStream<VMState>.Continuation] = [:]
        var nextObserver = 0
    }
    private let watch = Mutex(Watch())
    private let choice = Mutex<AcceleratorChoice?>(nil)

    /// How the accelerator and CPU model were chosen, when this instance started
    /// the VM (the probe's reasons, one per step); `nil` when attached.
    public var acceleratorChoice: AcceleratorChoice? { choice.withLock { $0 } }

    func setAcceleratorChoice(_ c: AcceleratorChoice) { choice.withLock { $0 = c } }

    init(name: String, socketPath: String, pid: Int32, qmp: QMPClient, accelerator: Accelerator?, initial: VMState) {
        self.name = name
        self.socketPath = socketPath
        self.pid = pid
        self.qmp = qmp
        self.accelerator = accelerator
        process = pid > 0 ? ProcessIdentity.current(pid: pid) : nil
        watch.withLock { $0.state = initial }
        // Follow the run state on the reading thread, in stream order, so that the
        // STOP QEMU sends before its reply to `stop` is applied before pause() returns.
        qmp.addTap(event: { [weak self] event in
            guard let self else { return }
            let action = event.data["action"]?.stringValue
            self.transition(fromEvent: true) { current in
                VMState.after(event: event.name, data: QMPEventData(action: action), from: current)
            }
        }, closed: { [weak self] _ in
            // The connection ended: QEMU exited, or the monitor was closed.
            self?.transition(fromEvent: true) { _ in .unknown }
            self?.finishObservers()
        })
    }

    deinit {
        qmp.close()
    }

    // MARK: - State

    /// The last known run state, kept current by QMP events.
    public var state: VMState { watch.withLock { $0.state } }

    /// Whether the QMP connection is open.
    public var isConnected: Bool { !qmp.isClosed }

    /// The user id of the process serving the monitor (`SO_PEERCRED`), when the kernel said.
    public var peerUID: UInt32? { qmp.peerUID }

    /// Whether the QEMU process exists (a zombie counts as gone).
    public var isProcessAlive: Bool { Posix.processExists(pid) }

    /// A stream of run-state changes, starting with the current state. It ends when
    /// the QMP connection ends (after yielding ``VMState/unknown``). The state follows
    /// QMP events in the order QEMU sent them, so it is current when a control call
    /// (``pause(timeout:)``, ``resume(timeout:)``, …) returns.
    public func stateChanges() -> AsyncStream<VMState> {
        let (stream, continuation) = AsyncStream.makeStream(of: VMState.self, bufferingPolicy: .bufferingNewest(64))
        let (key, current): (Int, VMState) = watch.withLock { w in
            let key = w.nextObserver
            w.nextObserver += 1
            w.observers[key] = continuation
            return (key, w.state)
        }
        continuation.yield(current)
        continuation.onTermination = { [weak self] _ in
            _ = self?.watch.withLock { $0.observers.removeValue(forKey: key) }
        }
        if qmp.isClosed { continuation.finish() }
        return stream
    }

    /// Subscribes to the VM's QMP events (see ``QMPClient/events(bufferSize:)``).
    public func events(bufferSize: Int = 1024) -> QMPEventStream { qmp.events(bufferSize: bufferSize) }

    /// Runs `handler` for every event, in a task of its own: a handler may call back
    /// into this instance (send commands) without blocking event delivery.
    /// Cancel the returned task to stop.
    @discardableResult
    public func onEvent(_ handler: @escaping @Sendable (QMPEvent) async -> Void) -> Task<Void, Never> {
        let events = qmp.events()
        return Task {
            do {
                for try await e in events { await handler(e) }
            } catch {}
        }
    }

    /// Asks QEMU for the run state (`query-status`) and updates ``state``.
    @discardableResult
    public func refreshState(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> VMState {
        let status: QMPRunStatus
        let before = watch.withLock { $0.eventSequence }
        do {
            status = try await qmp.queryStatus(timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "query-status on VM \(name)")
        }
        let s = VMState(qemuRunState: status.status)
        transition(fromEvent: false, unlessEventsSince: before) { _ in s }
        return s
    }

    /// Applies a state change under the lock and tells observers.
    /// - Parameters:
    ///   - fromEvent: The change comes from a QMP event (counted in `eventSequence`).
    ///   - unlessEventsSince: Skip the change if events changed the state since this count.
    private func transition(fromEvent: Bool, unlessEventsSince: Int? = nil, _ next: (VMState) -> VMState?) {
        let (observers, new): ([AsyncStream<VMState>.Continuation], VMState) = watch.withLock { w in
            if fromEvent { w.eventSequence += 1 }
            if let since = unlessEventsSince, w.eventSequence != since { return ([], w.state) }
            guard let n = next(w.state), n != w.state else { return ([], w.state) }
            w.state = n
            return (Array(w.observers.values), n)
        }
        for o in observers { o.yield(new) }
    }

    private func finishObservers() {
        let observers = watch.withLock { w in
            defer { w.observers = [:] }
            return Array(w.observers.values)
        }
        observers.forEach { $0.finish() }
    }

    /// Closes the QMP connection; the VM keeps running.
    public func close() {
        qmp.close()
    }

    // MARK: - Control

    private func run(_ command: String, _ what: String, timeout: Duration) async throws(InstanceError) {
        do {
            try await qmp.execute(command, timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "\(what) VM \(name)")
        }
    }

    /// Pauses the vCPUs. The corresponding QMP command is `stop`.
    public func pause(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        try await run("stop", "pausing", timeout: timeout)
    }

    /// Resumes the vCPUs (also the first start after `-S`). The corresponding QMP command is `cont`.
    public func resume(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        try await run("cont", "resuming", timeout: timeout)
    }

    /// Resets the machine; a paused VM stays paused. The corresponding QMP command is `system_reset`.
    public func reset(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        try await run("system_reset", "resetting", timeout: timeout)
    }

    /// Presses the ACPI power button and returns at once; the guest decides what to
    /// do. The corresponding QMP command is `system_powerdown`.
    public func shutdown(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        try await run("system_powerdown", "powering down", timeout: timeout)
    }

    /// Makes QEMU exit at once (no guest shutdown). The corresponding QMP command is `quit`.
    public func quit(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.quit(timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "quitting VM \(name)")
        }
    }

    /// Why the process at ``pid`` may not be signalled, or `nil` when it is proven to be this
    /// instance's QEMU: the identity read when the instance was made (``process``) still matches
    /// the live process (same start time and executable, so not a reused pid), and it is a QEMU
    /// system emulator running as this user.
    public func signalDisproof() -> String? {
        guard let process else { return "the identity of pid \(pid) could not be read when the instance was made" }
        return process.disproofAsSignalTarget()
    }

    /// Throws ``InstanceError/Code/notProven`` unless ``signalDisproof()`` finds nothing.
    private func requireSignallable() throws(InstanceError) {
        if let why = signalDisproof() {
            throw InstanceError(code: .notProven, message: "not signalling VM \(name) (pid \(pid)): \(why)")
        }
    }

    /// Kills QEMU with SIGKILL and waits until the process is gone.
    /// - Throws: ``InstanceError/Code/notProven`` (nothing sent) when the process is not proven
    ///   to be this instance's QEMU (``signalDisproof()``).
    public func forceStop(timeout: Duration = .seconds(10)) async throws(InstanceError) {
        if !Posix.processExists(pid) { return }
        try requireSignallable()
        if await Self.signalLadder(pid: pid, [.sigkill], stepTimeout: timeout) == nil {
            throw InstanceError(code: .unresponsive, message: "VM \(name) (pid \(pid)) did not exit after SIGKILL within \(timeout)")
        }
    }

    /// Waits until the QEMU process has exited.
    ///
    /// Works the same whether the instance was started or attached (by socket or
    /// pid): it watches the process id, not a child handle.
    /// - Returns: `true` when the process is gone, `false` at the timeout.
    public func wait(timeout: Duration? = nil) async -> Bool {
        await Self.waitForExit(pid: pid, timeout: timeout)
    }

    /// Waits until process `pid` is gone (polled every 5 ms); `false` at the timeout or when
    /// the task is cancelled first.
    package static func waitForExit(pid: Int32, timeout: Duration?) async -> Bool {
        let clock = ContinuousClock()
        let end = timeout.map { clock.now + $0 }
        while Posix.processExists(pid) {
            if let end, clock.now >= end { return false }
            do { try await Task.sleep(for: .milliseconds(5)) } catch { return !Posix.processExists(pid) }
        }
        return true
    }

    /// The signal steps of the stop ladder, the one place that kills a QEMU by pid: each of
    /// `steps` (``StopOutcome/Step/sigterm``, ``StopOutcome/Step/sigkill``) sends its signal and
    /// waits up to `stepTimeout` for the process to go.
    /// - Returns: The step that ended the process; nil when it survived them all.
    ///   - onStep: Called as each step begins (for `-v` logs).
    package static func signalLadder(pid: Int32, _ steps: [StopOutcome.Step] = [.sigterm, .sigkill],
                                     stepTimeout: Duration, onStep: (StopOutcome.Step) -> Void = { _ in }) async -> StopOutcome.Step? {
        for step in steps {
            if step == .sigterm || step == .sigkill { onStep(step) }
            switch step {
            case .sigterm: Posix.signal(pid, Posix.sigterm)
            case .sigkill: Posix.signal(pid, Posix.sigkill)
            default: continue
            }
            if await waitForExit(pid: pid, timeout: stepTimeout) { return step }
        }
        return nil
    }

    /// Stops the VM by the ladder: ACPI power button, wait up to `timeout`; then
    /// `quit`; then SIGTERM; then SIGKILL (each later step waits a few seconds).
    ///
    /// A guest that powers itself off in time is a success of the first step, not a
    /// timeout. A paused VM cannot react to the power button, so its ladder starts
    /// at `quit`.
    /// - Parameter onStep: Called as each step begins (`qemuctl stop -v` says what it tries).
    /// - Returns: Which step ended the process and how long the whole stop took.
    /// - Throws: ``InstanceError`` when even SIGKILL did not end the process, or, with
    ///   ``InstanceError/Code/notProven`` and no signal sent, when the process at ``pid`` is not
    ///   proven to be this instance's QEMU any more (``signalDisproof()``).
    @discardableResult
    public func stop(timeout: Duration = .seconds(30), stepTimeout: Duration = .seconds(5),
                     onStep: (StopOutcome.Step) -> Void = { _ in }) async throws(InstanceError) -> StopOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        func outcome(_ step: StopOutcome.Step) -> StopOutcome { StopOutcome(step: step, duration: clock.now - start) }
        if !Posix.processExists(pid) { return outcome(.alreadyStopped) }
        let current = state
        if current == .running || current == .suspended || current == .unknown {
            onStep(.powerdown)
            if (try? await qmp.systemPowerdown(timeout: stepTimeout)) != nil, await wait(timeout: timeout) {
                return outcome(.powerdown)
            }
        }
        if !Posix.processExists(pid) { return outcome(.powerdown) }
        onStep(.quit)
        if (try? await qmp.quit(timeout: stepTimeout)) != nil, await wait(timeout: stepTimeout) {
            return outcome(.quit)
        }
        if !Posix.processExists(pid) { return outcome(.quit) }
        try requireSignallable()
        if let step = await Self.signalLadder(pid: pid, stepTimeout: stepTimeout, onStep: onStep) { return outcome(step) }
        throw InstanceError(code: .unresponsive, message: "VM \(name) (pid \(pid)) survived SIGKILL for \(stepTimeout)")
    }
}

/// How a ``Instance/stop(timeout:stepTimeout:)`` ended the VM.
public struct StopOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The ladder step that ended the process.
    public enum Step: String, Sendable, Hashable, Codable {
        /// The process was already gone.
        case alreadyStopped = "already-stopped"
        /// The guest powered off after the ACPI power button.
        case powerdown
        /// QEMU exited on the QMP `quit` command.
        case quit
        /// QEMU exited on SIGTERM.
        case sigterm = "SIGTERM"
        /// QEMU was killed with SIGKILL.
        case sigkill = "SIGKILL"

        /// What the step does, as a log line says it is tried ("QMP quit").
        public var attempt: String {
            switch self {
            case .alreadyStopped: "nothing (QEMU is gone)"
            case .powerdown: "the ACPI power button (QMP system_powerdown), then waiting for the guest to power off"
            case .quit: "QMP quit"
            case .sigterm: "SIGTERM"
            case .sigkill: "SIGKILL"
            }
        }
    }
    /// The step that ended it.
    public var step: Step
    /// How long the stop took, from the first step.
    public var duration: Duration

    /// Creates an outcome (for callers that end a VM by other means, e.g. a kill at once).
    public init(step: Step, duration: Duration) {
        self.step = step
        self.duration = duration
    }

    /// "powerdown after 1.2 s".
    public var description: String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return "\(step.rawValue) after \(ms < 1000 ? "\(Int(ms)) ms" : String(Double(Int(ms / 100)) / 10) + " s")"
    }
}
