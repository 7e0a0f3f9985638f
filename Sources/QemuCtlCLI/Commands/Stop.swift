import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QMP
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl stop NAME…`: the stop ladder.
    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop VMs by the ladder: ACPI power button, then quit, SIGTERM, SIGKILL. The launch record is kept.",
            discussion: """
                Prints the step that ended each VM and how long the stop took. The guest gets \
                --stop-timeout seconds to power off after the power button; each later step a few \
                seconds. A paused VM cannot react to the button, so its ladder starts at quit. \
                --force sends SIGKILL at once (it needs no monitor, so it also ends a QEMU whose \
                monitor is busy or hung). A QEMU whose monitor answers nobody (stopped or hung, \
                not busy with another client) gets the ladder's last steps, SIGTERM then SIGKILL; \
                a monitor busy with another client is reported instead. The VM's record stays: `qemuctl start NAME` launches it \
                again, and `qemuctl diff` shows the stop as drift while the manifest says running.

                \(OperatorExit.help)

                EXAMPLES:
                  # power button, then quit, SIGTERM, SIGKILL
                  qemuctl stop web-1
                  # give the guest a minute to power off
                  qemuctl stop web-1 --stop-timeout 60
                  qemuctl stop web-1 --force                     # SIGKILL at once
                """)

        @OptionGroup var state: StateDirOption

        @Argument(help: "VM names.", completion: .vmNames, transform: VMNameArgument.parse)
        var names: [String]

        @Option(help: "Seconds the guest may take to power off before the ladder escalates (quit, SIGTERM, SIGKILL); as on apply, delete and controller.")
        var stopTimeout: Double = 30

        @Flag(help: "Kill at once (SIGKILL), without asking the guest.")
        var force = false

        @Option(help: "Seconds to wait for each VM's monitor (connect and each ladder command), as --timeout means on every command.")
        var timeout: Double = 5

        @Option(name: .customLong("monitor-timeout"), help: .hidden)
        var monitorTimeoutAlias: Double?

        /// The monitor deadline in seconds (`--timeout`; `--monitor-timeout` is its old name).
        var monitorTimeout: Double { monitorTimeoutAlias ?? timeout }

        @OptionGroup var lock: LockWaitOption

        /// The lock wait in seconds (`--lock-wait`).
        var wait: Double { lock.seconds }

        func validate() throws {
            if stopTimeout < 0 || monitorTimeout <= 0 { throw ValidationError("--stop-timeout and --timeout must be positive") }
        }

        func run() async throws {
            let store = state.store
            let deadline = Duration.milliseconds(Int(monitorTimeout * 1000))
            let access = MonitorAccess(store: store, deadline: deadline)
            try await withLock(store, wait: wait) {
                try await forEachVM(names) { name throws(OperatorError) in
                    let layout = try access.layout(name)
                    let outcome: StopOutcome
                    if force {
                        Verbosity.say("\(name): --force: SIGKILL to its QEMU (only the recorded one, proven to serve \(layout.socketPath))")
                        outcome = try await kill(name, pid: try Self.provenPID(name, store: store))
                    } else {
                        guard store.runningPID(name) != nil || Posix.fileExists(layout.socketPath) else {
                            print("\(name): not running")
                            return
                        }
                        let start = ContinuousClock.now
                        Verbosity.say("\(name): connecting to QEMU's monitor at \(layout.socketPath)")
                        let instance: Instance
                        do throws(InstanceError) {
                            instance = try await Instance.attach(socketPath: layout.socketPath, timeout: deadline)
                        } catch {
                            if error.code == .notFound { print("\(name): not running"); return }
                            var failure = error.qmp.map { access.failure($0, name: name) }
                                ?? OperatorError(error.message, status: OperatorExit.refused)
                            // A QEMU that answers nobody (stopped or hung, not busy with another
                            // client) cannot take the power button or quit: the ladder goes on
                            // with the signals. A busy monitor is reported instead: the guest
                            // would lose its clean shutdown only because someone holds the socket.
                            if failure.status == OperatorExit.unresponsive, let pid = try Self.provenPID(name, store: store),
                               !MonitorProbe.diagnose(socketPath: layout.socketPath, pid: pid).isBusy {
                                Terminal.warn("\(failure.message); going on with SIGTERM")
                                outcome = try await signals(name, pid: pid, start: start, stepTimeout: deadline)
                                report(name, outcome, store: store)
                                return
                            }
                            if failure.status == OperatorExit.unresponsive {
                                failure.hint = (failure.hint.map { $0 + "; " } ?? "") + "`qemuctl stop --force \(name)` kills it without the monitor"
                            }
                            throw failure
                        }
                        defer { instance.close() }
                        // The ladder ends in signals to the monitor's peer: only to the recorded QEMU.
                        if let why = store.disproof(ofPeer: instance.pid, uid: instance.qmp.peerUID, name: name) {
                            throw OperatorError("not stopping \(name): the process on its socket is not the QEMU qemuctl launched or adopted: \(why)",
                                                status: OperatorExit.refused)
                        }
                        Verbosity.say("\(name): stopping QEMU pid \(instance.pid) by the ladder: power button (the guest has up to "
                                      + "\(Self.text(.milliseconds(Int(stopTimeout * 1000))))), then quit, SIGTERM, SIGKILL (each up to \(Self.text(deadline)))")
                        do throws(InstanceError) {
                            outcome = try await instance.stop(timeout: .milliseconds(Int(stopTimeout * 1000)), stepTimeout: deadline) { step in
                                Verbosity.say("\(name): trying \(step.attempt)")
                            }
                        } catch {
                            throw OperatorError("cannot stop \(name): \(error.message)", status: OperatorExit.refused)
                        }
                    }
                    report(name, outcome, store: store)
                }
            }
        }

        /// The pid of the VM's QEMU, proven to be the recorded one serving its socket
        /// (``StoredRecord/signallablePID(layout:)``), or `nil` when none runs.
        ///
        /// - Throws: ``OperatorError`` when a process runs but is not proven to be the
        ///   recorded QEMU: it is never signalled.
        static func provenPID(_ name: String, store: StateStore) throws(OperatorError) -> Int32? {
            let layout = store.layout(name)
            guard let record = try? store.loadRecord(StoredRecord.self, name: name) else {
                // No record: only a listener on the VM's socket that runs as this user and is a QEMU.
                guard let peer = ProcessIdentity.listener(of: layout.socketPath) else { return nil }
                guard peer.uid == Posix.effectiveUID, let exe = ProcessIdentity.executable(of: peer.pid),
                      exe.split(separator: "/").last?.hasPrefix("qemu") == true else {
                    throw OperatorError("not signalling pid \(peer.pid) on \(layout.socketPath): it is not this user's QEMU",
                                        status: OperatorExit.refused)
                }
                return peer.pid
            }
            switch record.signallablePID(layout: layout) {
            case .success(let pid): return pid
            case .failure(let why):
                guard record.expectedProcess(fallbackPID: Instance.readPIDFile(layout.pidFile)) != nil else { return nil }
                throw OperatorError("not signalling VM \(name): \(why.message)", status: OperatorExit.refused)
            }
        }

        /// Prints (and journals) how the VM ended.
        private func report(_ name: String, _ outcome: StopOutcome, store: StateStore) {
            if outcome.step == .alreadyStopped {
                print("\(name): not running")
                return
            }
            store.journal(name, "stopped by qemuctl stop (\(outcome))")
            Verbosity.say("\(name): QEMU is gone (\(outcome)); the launch record is kept for `qemuctl start \(name)`")
            print("\(name): \(Terminal.paint("stopped", .green)) by \(outcome.step.rawValue) after \(Self.text(outcome.duration))")
        }

        /// The ladder's last steps for a QEMU whose monitor answers nobody: SIGTERM,
        /// then SIGKILL, each given `stepTimeout`.
        private func signals(_ name: String, pid: Int32, start: ContinuousClock.Instant,
                             stepTimeout: Duration) async throws(OperatorError) -> StopOutcome {
            if let step = await Instance.signalLadder(pid: pid, stepTimeout: stepTimeout, onStep: { Verbosity.say("\(name): trying \($0.attempt)") }) {
                return StopOutcome(step: step, duration: ContinuousClock.now - start)
            }
            throw OperatorError("QEMU of VM \(name) (pid \(pid)) survived SIGKILL for \(MonitorAccess.seconds(stepTimeout))",
                                status: OperatorExit.refused)
        }

        /// `--force`: SIGKILL to the VM's QEMU (pid file, or the adopted process), then wait until it is gone.
        private func kill(_ name: String, pid: Int32?) async throws(OperatorError) -> StopOutcome {
            let clock = ContinuousClock()
            let start = clock.now
            guard let pid else { return StopOutcome(step: .alreadyStopped, duration: .zero) }
            guard await Instance.signalLadder(pid: pid, [.sigkill], stepTimeout: .seconds(10)) != nil else {
                throw OperatorError("QEMU of VM \(name) (pid \(pid)) survived SIGKILL for 10 s", status: OperatorExit.refused)
            }
            return StopOutcome(step: .sigkill, duration: clock.now - start)
        }

        /// "53 ms", "1.2 s".
        static func text(_ d: Duration) -> String {
            let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
            return ms < 1000 ? "\(Int(ms.rounded())) ms" : "\(Terminal.oneDecimal(ms / 1000)) s"
        }
    }
}
