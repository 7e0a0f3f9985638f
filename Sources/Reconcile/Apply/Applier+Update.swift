import Manifest
import QemuCtl

// MARK: - Update: live and record-only changes

extension Applier {
    /// Makes a VM's executed changes: metadata into the record, live ones through their
    /// ``LiveChanges`` handler (each reads its change back); then writes the record.
    /// - Parameter config: `desired` mapped onto a QEMU configuration, when the session did it already.
    func update(_ plan: VMPlan, desired: VirtualMachine, config: VMConfig?, markers: SecretMarkers,
                log: inout Log) async throws(ApplyError) {
        guard var stored = try loadRecord(plan.name) else { throw ApplyError("no record for \(plan.name)") }
        // A VM that must run is continued last, once its links and media are as the manifest says.
        let resume = desired.spec.runState == .running
        let changes = plan.executedChanges.filter { !(resume && $0.path == "spec.runState") }
            + plan.executedChanges.filter { resume && $0.path == "spec.runState" }
        for change in changes where change.changeClass == .metadata {
            if change.path.hasPrefix("metadata.labels") { stored.launch.labels = desired.labels }
            if change.path == "metadata.applySet" { stored.launch.applySet = plan.applySet }
            log.say("~ \(change.path) (recorded)")
        }
        var newSpec = stored.launch.spec
        let live = changes.filter { $0.changeClass == .live }
        if !live.isEmpty {
            let instance: Instance
            do {
                instance = try await Instance.attach(socketPath: store.layout(plan.name).socketPath, timeout: timeout)
            } catch {
                throw ApplyError(error.message)
            }
            defer { instance.close() }
            // Secrets and changes go only to the QEMU this record launched (uid, pid, start time, exe).
            if let why = store.disproof(ofPeer: instance.pid, uid: instance.peerUID, name: plan.name) {
                throw ApplyError("refusing to change \(plan.name): \(why)")
            }
            let desiredConfig: VMConfig
            if let config { desiredConfig = config } else { desiredConfig = try self.config(for: desired, uuid: stored.launch.uuid) }
            var step = LiveStep(applier: self, instance: instance, desired: desired, desiredConfig: desiredConfig,
                                markers: markers, stored: stored, newSpec: newSpec, log: log)
            defer { log = step.log }
            for change in live where !step.stopped {
                guard let handler = LiveChanges.handler(for: change.path) else {
                    throw ApplyError("\(change.path): no live handler; use --restart=if-needed to relaunch")
                }
                try await handler.apply(change, &step)
            }
            stored = step.stored
            newSpec = step.newSpec
        }
        stored.launch.spec = plan.restartPending ? newSpec : desired.spec
        if !plan.restartPending {
            stored.launch.labels = desired.labels
            do { stored.launch.secrets = try markers.markers(for: desired.spec) } catch { throw ApplyError(error.message) }
        }
        stored.restartPending = plan.restartPending
        try save(stored, plan.name)
        if plan.restartPending {
            log.say("restart pending: \(plan.deferredChanges.map(\.path).joined(separator: ", ")) (use --restart=if-needed)")
        }
    }
}
