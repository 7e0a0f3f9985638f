#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Manifest
import QemuCtl

// MARK: - Stop, delete and start (the CLI verbs)

extension Applier {

    /// Stops a VM by the ladder, if it runs.
    func stop(_ name: String, log: inout Log) async throws(ApplyError) {
        let layout = store.layout(name)
        guard Posix.fileExists(layout.socketPath) else {
            progress(name, "no QEMU runs (no \(layout.socketPath)): nothing to stop")
            return
        }
        let instance: Instance
        do {
            instance = try await Instance.attach(socketPath: layout.socketPath, timeout: timeout)
        } catch {
            if error.code == .notFound { return }
            if error.code == .unresponsive {
                throw ApplyError("VM \(name) is unresponsive (its monitor did not answer within \(timeout)); not stopped. "
                                 + "Retry when it answers, or `qemuctl delete --force \(name)` kills it")
            }
            throw ApplyError(error.message)
        }
        defer { instance.close() }
        if let why = store.disproof(ofPeer: instance.pid, uid: instance.peerUID, name: name) {
            throw ApplyError("refusing to stop \(name): \(why)")
        }
        do {
            progress(name, "stopping QEMU pid \(instance.pid) by the ladder (power button, quit, SIGTERM, SIGKILL)")
            let outcome = try await instance.stop(timeout: stopTimeout) { step in progress(name, "trying \(step.attempt)") }
            log.say("stopped (\(outcome))")
            log.journal("stopped \(outcome)")
        } catch {
            throw ApplyError(error.message)
        }
    }

    /// `qemuctl delete`: stops the VM (by the ladder, or at once with `force`) and
    /// removes its runtime files. Disk images are never touched.
    package func deleteVM(_ name: String, force: Bool) async -> VMResult {
        var log = Log(name: name, store: store, progress: progress)
        do throws(ApplyError) {
            if force {
                let layout = store.layout(name)
                let record = try loadRecord(name)
                // Only a pid proven to be the recorded QEMU serving the VM's socket is signalled.
                var proven: Int32? = nil
                switch record?.signallablePID(layout: layout) {
                case .success(let pid)?: proven = pid
                case .failure(let why)? where record?.expectedProcess(fallbackPID: Instance.readPIDFile(layout.pidFile))?
                        .disproofOfLiveProcess() == nil:
                    // The recorded QEMU still runs as recorded, yet is not proven to serve the socket.
                    throw ApplyError("not killed: \(why.message)")
                default: break  // nothing of it runs (gone, or its pid now names another process: never signalled)
                }
                if let pid = proven {
                    progress(name, "--force: SIGKILL to QEMU pid \(pid)")
                    guard await Instance.signalLadder(pid: pid, [.sigkill], stepTimeout: .seconds(5)) != nil else {
                        throw ApplyError("pid \(pid) survived SIGKILL")
                    }
                    log.say("killed (SIGKILL, pid \(pid))")
                }
                store.removeRuntimeFiles(name)
                log.say("deleted (disk images kept)")
            } else {
                try await delete(name, observed: nil, log: &log)
            }
            return log.result(.deleted)
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    /// `qemuctl start`: launches a managed VM that is not running from its launch
    /// record (the spec it was last launched or applied with), vCPUs running.
    ///
    /// The record keeps its spec, labels, secret markers and pending-restart flag; only
    /// the pid, accelerator and start time change. So a start that contradicts the
    /// manifest (which says `runState: stopped`) shows as drift in `qemuctl diff`.
    /// A VM that already runs is left alone and reported ``VMResult/Status/unchanged``.
    package func startVM(_ name: String) async -> VMResult {
        var log = Log(name: name, store: store, progress: progress)
        do throws(ApplyError) {
            guard var stored = try loadRecord(name) else {
                throw ApplyError("\(name) is not a VM managed in \(store.directory)")
            }
            if let pid = store.runningPID(name) {
                log.messages.append("already running (pid \(pid))")
                return log.result(.unchanged)
            }
            var spec = stored.launch.spec
            spec.runState = .running
            let vm = VirtualMachine(name: name, labels: stored.launch.labels, spec: spec,
                                    source: SourceLocation(file: stored.source ?? store.recordPath(name), line: 1, column: 1))
            try await launch(vm, uuid: stored.launch.uuid, stored: &stored, log: &log)
            return log.result(.created)
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    /// Stops the VM and removes its runtime files; disk images are never touched.
    package func delete(_ name: String, observed: ObservedVM?, log: inout Log) async throws(ApplyError) {
        try await stop(name, log: &log)
        FaultPoint.hit(.deleteAfterStop)
        store.removeRuntimeFiles(name)
        log.say("deleted (disk images kept)")
    }
}
