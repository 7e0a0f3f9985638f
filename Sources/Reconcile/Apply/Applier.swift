#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Manifest
package import QemuCtl

/// The outcome of applying one VM's plan.
package struct VMResult: Sendable, Hashable, Codable {
    /// How it ended.
    package enum Status: String, Sendable, Hashable, Codable {
        /// Nothing to do.
        case unchanged
        /// Launched.
        case created
        /// Live changes applied and verified.
        case updated
        /// Stopped and launched again (disks and uuid kept).
        case restarted
        /// Stopped and its runtime files removed (disks kept).
        case deleted
        /// Live changes applied; a restart-class change waits for `--restart=if-needed`.
        case restartPending = "restart-pending"
        /// Not touched: unresponsive or not managed by qemuctl.
        case skipped
        /// Something failed; see ``VMResult/messages``.
        case failed
    }
    /// The VM.
    package var name: String
    /// How it ended.
    package var status: Status
    /// What was done, one line each (never a secret).
    package var messages: [String]
}

/// Carries out a ``Plan``: VMs in parallel (bounded), each step journaled, each
/// live change read back over QMP.
package struct Applier: Sendable {
    /// The state directory.
    package var store: StateStore
    /// How many VMs are changed at once.
    package var parallel: Int
    /// How long a graceful stop may take before the ladder escalates.
    package var stopTimeout: Duration
    /// Deadline for each QMP call.
    package var timeout: Duration
    /// Called with a line of progress (VM name, message).
    package var progress: @Sendable (String, String) -> Void
    /// Called when a VM is done, with its result.
    package var finished: @Sendable (VMResult) -> Void = { _ in }
    /// The message of a VM an interrupted apply did not start.
    package static let notStarted = "not started: the apply was interrupted"
    /// Asked before each VM is started: `true` starts nothing more (an interrupted apply finishes
    /// and records the VMs in flight; the others are reported skipped, "not started").
    package var shouldStop: @Sendable () -> Bool = { false }

    /// Creates an applier.
    package init(store: StateStore, parallel: Int = 4, stopTimeout: Duration = .seconds(30), timeout: Duration = .seconds(10),
                 progress: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.store = store
        self.parallel = max(1, parallel)
        self.stopTimeout = stopTimeout
        self.timeout = timeout
        self.progress = progress
    }

    /// Applies every VM of `plan`; failures of one VM do not stop the others.
    /// - Parameter configs: The manifests mapped onto QEMU configurations by VM name, as the
    ///   ``Session`` mapped them (``Session/Result/configs``), so that no VM is mapped twice; a VM
    ///   missing here is mapped when needed.
    package func apply(_ plan: Plan, observed: [ObservedVM], configs: [String: VMConfig] = [:]) async -> [VMResult] {
        let markers: SecretMarkers
        do { markers = try SecretMarkers(store: store) } catch {
            return plan.vms.map { VMResult(name: $0.name, status: .failed, messages: ["\(error)"]) }
        }
        let byName = Dictionary(observed.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var results: [VMResult] = []
        var started: Set<String> = []
        // Off the cooperative pool: each VM's steps make blocking calls (fsync, spawn).
        await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
        await withTaskGroup(of: VMResult.self) { group in
            var iterator = plan.vms.makeIterator()
            func next() -> Bool {
                guard !shouldStop(), let vm = iterator.next() else { return false }
                started.insert(vm.name)
                group.addTask { await self.apply(vm, observed: byName[vm.name], config: configs[vm.name], markers: markers) }
                return true
            }
            for _ in 0..<parallel where next() {}
            while let r = await group.next() {
                finished(r)
                results.append(r)
                _ = next()
            }
        }
        }
        for vm in plan.vms where !started.contains(vm.name) && vm.action != .noOp {
            results.append(VMResult(name: vm.name, status: .skipped, messages: [Self.notStarted]))
        }
        return results.sorted { $0.name < $1.name }
    }

    private func apply(_ vm: VMPlan, observed: ObservedVM?, config: VMConfig?, markers: SecretMarkers) async -> VMResult {
        var log = Log(name: vm.name, store: store, progress: progress)
        progress(vm.name, "\(vm.action)…")
        do throws(ApplyError) {
            switch vm.action {
            case .noOp:
                if vm.pendingRestartCleared, var stored = try loadRecord(vm.name) {
                    stored.restartPending = false
                    try save(stored, vm.name)
                    log.say("the pending restart is no longer needed (manifest reverted)")
                }
                return log.result(.unchanged)
            case .unresponsive, .unmanaged:
                log.say(vm.reason)
                return log.result(.skipped)
            case .create:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                try await create(desired, config: config, uuid: vm.uuid ?? observed?.record?.uuid, applySet: vm.applySet,
                                 markers: markers, log: &log)
                return log.result(.created)
            case .delete:
                try await delete(vm.name, observed: observed, log: &log)
                return log.result(.deleted)
            case .restart where !vm.restartPending:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                let uuid = vm.uuid ?? observed?.record?.uuid
                log.say("restarting: \(vm.changes.filter { $0.changeClass == .restart }.map(\.path).joined(separator: ", "))")
                try await stop(vm.name, log: &log)
                FaultPoint.hit(.restartAfterStop)
                do {
                    try await create(desired, config: config, uuid: uuid, applySet: vm.applySet, markers: markers, log: &log)
                } catch {
                    throw relaunchFailure(error, vm.name)
                }
                return log.result(.restarted)
            case .update, .restart:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                try await update(vm, desired: desired, config: config, markers: markers, log: &log)
                return log.result(vm.restartPending ? .restartPending : .updated)
            }
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    // MARK: - Helpers

    func loadRecord(_ name: String) throws(ApplyError) -> StoredRecord? {
        do { return try store.loadRecord(StoredRecord.self, name: name) } catch { throw ApplyError(error.message) }
    }

    func save(_ record: StoredRecord, _ name: String) throws(ApplyError) {
        do { try store.saveRecord(record, name: name) } catch { throw ApplyError(error.message) }
    }

    /// The error of a failed step: an ``ApplyError`` as it is, an ``InstanceError`` by its message
    /// (which names the VM and what failed), anything else after `context`.
    static func stepError(_ error: any Error, _ context: String) -> ApplyError {
        switch error {
        case let e as ApplyError: e
        case let e as InstanceError: ApplyError(e.message)
        default: ApplyError("\(context): \(error)")
        }
    }

    /// The error of a restart whose relaunch failed after the old QEMU was stopped, completed with
    /// what the VM is left as (a file's "unchanged" must not read as the VM's): relaunched and
    /// running, or stopped and not running. Neither way did the relaunch touch a disk image that
    /// existed (only missing `create:` images are made).
    func relaunchFailure(_ error: ApplyError, _ name: String) -> ApplyError {
        if let pid = store.runningPID(name) {
            if error.message.contains("(pid \(pid))") { return error }  // the launch said so already
            return ApplyError(error.message + ". \(name) was stopped for the restart and relaunched (pid \(pid)), which runs; "
                              + "its disk images are intact. Apply again to finish")
        }
        return ApplyError(error.message + ". \(name) was stopped for the restart and NOT relaunched: it is not running; "
                          + "its disk images are intact. Fix the cause (e.g. free space in \(store.directory)) and apply again to launch it")
    }

    /// `vm` mapped onto a QEMU configuration.
    func config(for vm: VirtualMachine, uuid: String) throws(ApplyError) -> VMConfig {
        do { return try VMConfigMapping.config(for: vm, uuid: uuid, socketDirectory: store.directory) } catch {
            throw ApplyError(error.description)
        }
    }

    /// Collects a VM's messages and journals them.
    package struct Log: Sendable {
        let name: String
        let store: StateStore
        let progress: @Sendable (String, String) -> Void
        var messages: [String] = []

        mutating func say(_ message: String) {
            messages.append(message)
            progress(name, message)
            store.journal(name, message)
        }

        func journal(_ line: String) { store.journal(name, line) }

        func result(_ status: VMResult.Status) -> VMResult {
            VMResult(name: name, status: status, messages: messages)
        }
    }
}

/// A failed step of an apply.
package struct ApplyError: Error, Sendable, CustomStringConvertible {
    /// What failed (never a secret).
    package var message: String
    init(_ message: String) { self.message = message }
    /// The message.
    package var description: String { message }
}
