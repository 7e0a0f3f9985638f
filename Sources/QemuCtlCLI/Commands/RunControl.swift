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

/// What `pause`, `resume` and `reset` share: names, the lock, one short QMP connection per VM.
struct RunControlOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Argument(help: "VM names.", completion: .vmNames, transform: VMNameArgument.parse)
    var names: [String]

    @OptionGroup var lock: LockWaitOption

    /// The lock wait in seconds (`--lock-wait`).
    var wait: Double { lock.seconds }

    /// Runs `action` on each VM (under the state directory's lock), then reads the run
    /// state back and prints `NAME: DONE (QEMU reports STATE)`.
    func run(_ action: @escaping (Instance, Duration) async throws(InstanceError) -> Void, verb: String, done: String) async throws {
        let store = global.store
        let access = MonitorAccess(store: store, deadline: global.deadline)
        let deadline = global.deadline
        try await withLock(store, wait: wait) {
            try await forEachVM(names) { name throws(OperatorError) in
                let status = try await access.with(name) { qmp throws(QMPError) in
                    let vm = Instance.controlling(qmp, name: name)
                    do throws(InstanceError) {
                        try await action(vm, deadline)
                        return try await vm.refreshState(timeout: deadline).rawValue
                    } catch {
                        throw error.qmp ?? QMPError(code: .commandFailed, command: verb, message: error.message)
                    }
                }
                store.journal(name, "\(done) by qemuctl \(verb) (QEMU reports \(status))")
                print("\(name): \(Terminal.paint(done, .green)) (QEMU reports \(status))")
            }
        }
    }
}

/// Runs `body` holding the state directory's apply lock; a busy lock after `wait`
/// seconds is exit status 2 (nothing tried).
func withLock(_ store: StateStore, wait: Double, _ body: () async throws -> Void) async throws {
    Verbosity.say("taking the lock of \(store.directory) (apply, delete, start, stop, … take turns)")
    do {
        try await store.withApplyLock(wait: .milliseconds(Int(wait * 1000)), onWait: { holder in
            Terminal.error("qemuctl: another qemuctl\(holder.map { " (pid \($0))" } ?? "") is changing \(store.directory); waiting up to \(Int(wait)) s…")
        }, body)
    } catch let error as StateError {
        Terminal.fail(error.message, hint: "another qemuctl (apply, delete, start, stop, …) is running on this state directory; retry when it is done, or pass a longer --lock-wait")
        throw ExitCode(OperatorExit.usage)
    }
}

extension QemuCtlCommand {
    /// `qemuctl pause NAME…`: QMP `stop`.
    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause VMs' vCPUs (QMP stop); the manifest is not changed, so `diff` shows the drift.",
            discussion: OperatorExit.help + "\n\nEXAMPLES:\n  qemuctl pause web-1\n  qemuctl pause web-1 web-2")

        @OptionGroup var options: RunControlOptions

        func run() async throws { try await options.run({ (vm, deadline) throws(InstanceError) in try await vm.pause(timeout: deadline) }, verb: "pause", done: "paused") }
    }

    /// `qemuctl resume NAME…`: QMP `cont`.
    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume paused VMs (QMP cont).",
            discussion: OperatorExit.help + "\n\nEXAMPLES:\n  qemuctl resume web-1")

        @OptionGroup var options: RunControlOptions

        func run() async throws { try await options.run({ (vm, deadline) throws(InstanceError) in try await vm.resume(timeout: deadline) }, verb: "resume", done: "resumed") }
    }

    /// `qemuctl reset NAME…`: QMP `system_reset`.
    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reset VMs as the reset button would (QMP system_reset); a paused VM stays paused.",
            discussion: OperatorExit.help + "\n\nEXAMPLES:\n  qemuctl reset web-1")

        @OptionGroup var options: RunControlOptions

        func run() async throws { try await options.run({ (vm, deadline) throws(InstanceError) in try await vm.reset(timeout: deadline) }, verb: "reset", done: "reset") }
    }
}
