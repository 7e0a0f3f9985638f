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
import Reconcile

/// `apply --wait-ready`: after the changes, waits until each VM that was launched, restarted or updated
/// and declares `spec.readiness` passes its probe, all within one deadline, and prints each VM's time.
enum ReadyWait {
    /// What the wait found.
    enum Outcome: Equatable {
        /// Every VM waited for is ready (or none declares readiness).
        case ready
        /// A probe cannot work for a VM (no agent socket, no forward, no serial log, QEMU gone).
        case notApplicable
        /// The deadline passed before every VM was ready.
        case timedOut
    }

    /// Waits for the VMs of `results` that changed and declare a probe; prints one line per VM.
    static func run(_ results: [VMResult], store: StateStore, timeout: Duration, timeoutText: String) async -> Outcome {
        let changed: Set<VMResult.Status> = [.created, .restarted, .updated]
        var waited: [(name: String, probe: ReadinessProbe)] = []
        for r in results where changed.contains(r.status) {
            guard let probe = VMReadiness.declaredProbe(r.name, store: store) else { continue }
            guard let stored = try? store.loadRecord(StoredRecord.self, name: r.name), stored.launch.spec.runState == .running else { continue }
            waited.append((r.name, probe))
        }
        guard !waited.isEmpty else { return .ready }
        print("Waiting up to \(timeoutText) for \(waited.map { "\($0.name) (\($0.probe))" }.joined(separator: ", ")) to be ready…")
        fflush(nil)
        let start = ContinuousClock.now
        let outcomes = await withTaskGroup(of: (String, Outcome, String).self) { group in
            for (name, probe) in waited {
                group.addTask {
                    guard let target = VMReadiness.target(name, store: store) else {
                        return (name, .notApplicable, "no QEMU runs for \(name)")
                    }
                    do throws(ReadinessError) {
                        try await ReadinessCheck.wait(for: probe, target: target, timeout: timeout)
                        let waitedFor = ContinuousClock.now - start
                        var line = "\(name): \(Terminal.paint("ready", .green)) (\(probe), after \(QemuCtlCommand.Wait.seconds(waitedFor)) of waiting"
                        if let startedAt = (try? store.loadRecord(StoredRecord.self, name: name))??.startedAt {
                            let sinceStart = Date().timeIntervalSince1970 - startedAt
                            line += "; \(QemuCtlCommand.Wait.seconds(.milliseconds(Int64(sinceStart * 1000)))) after QEMU started"
                        }
                        return (name, .ready, line + ")")
                    } catch {
                        return (name, error.code == .timedOut ? Outcome.timedOut : Outcome.notApplicable, "\(name): \(error.message)")
                    }
                }
            }
            var out: [(String, Outcome, String)] = []
            for await o in group { out.append(o) }
            return out.sorted { $0.0 < $1.0 }
        }
        for (name, outcome, line) in outcomes {
            if outcome == .ready {
                print(line)
            } else {
                Terminal.fail(line, hint: outcome == .timedOut
                              ? "a longer --ready-timeout, or `qemuctl console \(name)` to see the guest" : nil)
            }
        }
        if outcomes.contains(where: { $0.1 == Outcome.notApplicable }) { return .notApplicable }
        if outcomes.contains(where: { $0.1 == Outcome.timedOut }) { return .timedOut }
        return .ready
    }
}
