import ArgumentParser
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Manifest
import QMP
import QemuCtl
import Reconcile
import Synchronization

extension QemuCtlCommand {
    /// `qemuctl controller`: apply continuously.
    struct Controller: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the VMs matching the manifests: apply at start, then on every change.",
            discussion: """
                A foreground process (for systemd, a container or a terminal). It applies the \
                manifests at start as `apply` does, then applies again, through the same planner \
                and applier and under the same state-directory lock (an `apply` run by hand takes \
                turns with it), within a second or two of: a manifest file created, changed or \
                removed (inotify; a manifest that fails to parse changes nothing and is reported \
                on standard error, as by `apply`); a QEMU exiting or a QMP event on a VM's follower \
                monitor (STOP, RESUME, device and block events); and every --resync seconds, which \
                catches drift no event reports (a throttle changed over QMP).

                spec.restartPolicy decides what happens when a QEMU exits while the manifest wants \
                it running: always launches it again; onFailure too, unless the guest shut down or \
                powered off by itself (SHUTDOWN with guest: true); never (the default) leaves it \
                down. The first restart is at once; further restarts in a row back off: 1 s, \
                doubling up to 5 min, counted from the first again once a VM stayed up 10 min. The count, the last exit and the backoff are kept in the VM's \
                record (`get` RESTARTS, `describe`). At start, VMs whose QEMU went down with the \
                host (started before the host booted) are launched whatever their policy: they \
                come back at boot.

                While it runs, the controller holds each VM's follower monitor (events.sock), so \
                `qemuctl events` waits until it ends. Restart-class changes follow --restart as \
                in apply. One line per action on standard output (--json: one object per line: \
                time, timestamp, vm, action, detail); errors on standard error. SIGHUP re-reads \
                everything; SIGTERM and SIGINT end it with status 0 and leave the VMs running.

                EXAMPLES:
                  qemuctl controller -f vms/ --prune
                  qemuctl controller -f vms/ --resync 30 --json
                """)

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: "A manifest file or a directory (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Flag(help: "Delete managed VMs that no manifest declares (their disks are kept).")
        var prune = false

        @Option(help: "Seconds between full passes that catch drift no event reports.")
        var resync: Double = 30

        @Option(help: "Relaunch VMs whose change needs it: never (report it pending) or if-needed.")
        var restart: PlanOptions.RestartPolicy = .never

        @Flag(help: "One JSON object per line.")
        var json = false

        @Option(help: "How many VMs to change at once.")
        var parallel = 16

        @Option(help: "Seconds a VM may take to power off before the stop ladder escalates.")
        var stopTimeout: Double = 30

        func validate() throws {
            if file.isEmpty { throw ValidationError("give the manifests with -f PATH (a file or a directory)") }
            if file.contains("-") { throw ValidationError("the controller watches files: standard input (-) cannot be one") }
            if !(resync >= 0.5) { throw ValidationError("--resync must be at least 0.5 seconds") }
            if parallel < 1 { throw ValidationError("--parallel must be at least 1") }
        }

        func run() async throws {
            signal(SIGPIPE, SIG_IGN)
            let paths = file.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
            for p in paths where !Posix.fileExists(p) {
                Terminal.warn("\(p) does not exist (yet); the controller applies it once it does")
            }
            let loop = ControllerLoop(
                store: global.store, paths: paths, prune: prune, restart: restart, resync: resync, json: json,
                parallel: parallel, stopTimeout: .milliseconds(Int(stopTimeout * 1000)), deadline: global.deadline)
            let watcher: ManifestWatcher
            do { watcher = try ManifestWatcher(paths: paths) } catch {
                Terminal.fail("cannot watch the manifests: \(error.message)")
                throw ExitCode(1)
            }
            let queue = DispatchQueue(label: "qemuctl.controller")
            watcher.start(queue: queue) { changed in loop.manifestsChanged(changed) }
            var sources: [any DispatchSourceSignal] = []
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler {
                    if sig == SIGHUP {
                        watcher.rewatch()
                        loop.requestReload()
                    } else {
                        loop.requestStop()
                    }
                }
                source.resume()
                sources.append(source)
            }
            // VMs appear mostly by the controller's own launches: a rescan each second is enough (each
            // scan reads every record), and exits are seen at once (the monitor connection closes).
            let follower = EventFollower(store: global.store, names: [], json: false, sinceStart: false,
                                         deadline: global.deadline, sink: { vm, event, data in loop.event(vm: vm, event, data) },
                                         rescanInterval: .seconds(1))
            let following = Task { await follower.run() }
            await loop.run()
            follower.requestStop()
            await following.value
            watcher.stop()
            sources.forEach { $0.cancel() }
            loop.say(vm: "-", "stopped", "VMs left running")
        }
    }
}

/// The controller's loop: waits (without polling) for a manifest change, a VM event, a signal, a
/// backoff that ends or the resync period, then runs one pass under the apply lock.
final class ControllerLoop: Sendable {
    let store: StateStore
    let paths: [String]
    let prune: Bool
    let restart: PlanOptions.RestartPolicy
    let resync: Double
    let json: Bool
    let parallel: Int
    let stopTimeout: Duration
    let deadline: Duration

    /// Quiet time after a manifest change before the pass (editors write in several steps).
    static let fileDebounce = 0.3
    /// Quiet time after a VM event before the pass.
    static let eventDebounce = 0.2
    /// Longest a pass waits behind a stream of changes.
    static let maximumDebounce = 1.0
    /// The reason of a pass for VMs whose QEMU exited.
    static let exitedReason = "QEMU exited"
    /// QMP events that may mean the VM drifted from its manifest.
    static let driftEvents: Set<String> = [
        "STOP", "RESUME", "SUSPEND", "WAKEUP", "GUEST_PANICKED", "DEVICE_DELETED", "DEVICE_TRAY_MOVED",
        "BLOCK_IO_ERROR", "MEMORY_DEVICE_SIZE_CHANGE",
    ]

    private struct State {
        var stop = false
        var reload = false
        var changedFiles: Set<String> = []
        var filesFirstAt: Double?
        var filesLastAt: Double?
        var eventsFirstAt: Double?
        var eventsLastAt: Double?
        /// `SHUTDOWN` seen on a VM's monitor before it closed: reason and whether the guest asked.
        var shutdowns: [String: QEMUExit] = [:]
        /// Exits seen since the last pass.
        var exits: [String: QEMUExit] = [:]
        /// VMs whose exit no pass was started for yet (a pass starts at once for them).
        var exitsUnhandled: Set<String> = []
        /// Histories as last saved or decided.
        var histories: [String: RestartHistory] = [:]
        /// Restarts waiting for their backoff: when each is due.
        var waits: [String: Double] = [:]
        /// The exit of each VM last reported (its time), so an exit is said once.
        var reportedExit: [String: Double] = [:]
        /// The last problem reported for the manifests, so a resync does not repeat it.
        var lastProblem: String?
    }
    private let state = Mutex(State())
    private let wakeup = Wakeup()
    private let output = Mutex(())

    init(store: StateStore, paths: [String], prune: Bool, restart: PlanOptions.RestartPolicy, resync: Double,
         json: Bool, parallel: Int, stopTimeout: Duration, deadline: Duration) {
        self.store = store
        self.paths = paths
        self.prune = prune
        self.restart = restart
        self.resync = resync
        self.json = json
        self.parallel = parallel
        self.stopTimeout = stopTimeout
        self.deadline = deadline
    }

    static var now: Double { Date().timeIntervalSince1970 }

    // MARK: - Inputs (any thread)

    /// SIGTERM/SIGINT: end after the current pass.
    func requestStop() {
        state.withLock { $0.stop = true }
        wakeup.signal()
    }

    /// SIGHUP: a full pass that re-reads the manifests and the records.
    func requestReload() {
        state.withLock { $0.reload = true }
        wakeup.signal()
    }

    /// The watcher saw these paths change.
    func manifestsChanged(_ changed: [String]) {
        let t = Self.now
        state.withLock { s in
            s.changedFiles.formUnion(changed)
            if s.filesFirstAt == nil { s.filesFirstAt = t }
            s.filesLastAt = t
        }
        wakeup.signal()
    }

    /// An event from a VM's follower monitor (or the follower's own VM_GONE, VM_APPEARED).
    func event(vm: String, _ name: String, _ data: JSONValue) {
        let t = Self.now
        var wake = false
        state.withLock { s in
            switch name {
            case "SHUTDOWN":
                // QEMU exits right after (no -no-shutdown): this is how it ends, whenever the exit is seen.
                let byGuest = data["guest"]?.boolValue ?? false
                let reason = "SHUTDOWN \(data["reason"]?.stringValue ?? "shutdown")\(byGuest ? " (by the guest)" : "")"
                s.shutdowns[vm] = QEMUExit(reason: reason, byGuest: byGuest, at: t)
            case "VM_FOLLOWED", "VM_APPEARED":
                s.shutdowns[vm] = nil
            case "VM_GONE":
                let gone = data["reason"]?.stringValue ?? "QEMU exited"
                s.exits[vm] = s.shutdowns.removeValue(forKey: vm)
                    ?? QEMUExit(reason: "\(gone) without a SHUTDOWN event (killed or crashed)", byGuest: false, at: t)
                s.exitsUnhandled.insert(vm)
                wake = true
            default:
                wake = Self.driftEvents.contains(name)
            }
            if wake {
                if s.eventsFirstAt == nil { s.eventsFirstAt = t }
                s.eventsLastAt = t
            }
        }
        if wake { wakeup.signal() }
    }

    // MARK: - Output

    /// One line on standard output: `TIME  VM  ACTION  DETAIL`, or one JSON object.
    func say(vm: String, _ action: String, _ detail: String = "") {
        let t = Self.now
        let stamp = EventFollower.timestamp(t)
        let line: String
        if json {
            let object: JSONValue = ["time": .string(stamp), "timestamp": .double(t), "vm": .string(vm),
                                     "action": .string(action), "detail": .string(detail)]
            line = object.description
        } else {
            line = "\(stamp)  \(vm)  \(action)" + (detail.isEmpty ? "" : "  \(detail)")
        }
        output.withLock { _ in _ = Terminal.writeLine(line) }
    }

    // MARK: - Loop

    /// Runs passes until ``requestStop()``.
    func run() async {
        loadHistories()
        say(vm: "-", "started", "watching \(paths.joined(separator: ", ")); resync every \(Self.seconds(resync))")
        await pass(reason: "start", initial: true)
        var nextResync = Self.now + resync
        while true {
            let now = Self.now
            let wakeAt = state.withLock { s -> Double in
                var t = nextResync
                if let last = s.filesLastAt, let first = s.filesFirstAt {
                    t = min(t, min(last + Self.fileDebounce, first + Self.maximumDebounce))
                }
                if let last = s.eventsLastAt, let first = s.eventsFirstAt {
                    t = min(t, min(last + Self.eventDebounce, first + Self.maximumDebounce))
                }
                if let due = s.waits.values.min() { t = min(t, due) }
                // A QEMU that exited is decided on at once (no debounce): its replacement is the point.
                if !s.exitsUnhandled.isEmpty { t = now }
                return t
            }
            if wakeAt > now {
                await wakeup.wait(for: .milliseconds(Int(((wakeAt - now) * 1000).rounded(.up))))
            }
            let t = Self.now
            var exited: Set<String> = []
            let reasons: [String]? = state.withLock { s in
                if s.stop { return nil }
                var why: [String] = []
                if s.reload {
                    s.reload = false
                    why.append("SIGHUP")
                }
                if let last = s.filesLastAt, let first = s.filesFirstAt,
                   t >= min(last + Self.fileDebounce, first + Self.maximumDebounce) {
                    let names = s.changedFiles.sorted().map { ManifestWatcher.split($0).name }
                    why.append("changed: \(names.joined(separator: ", "))")
                    s.changedFiles = []
                    s.filesFirstAt = nil
                    s.filesLastAt = nil
                }
                if let last = s.eventsLastAt, let first = s.eventsFirstAt,
                   t >= min(last + Self.eventDebounce, first + Self.maximumDebounce) {
                    why.append("VM events")
                    s.eventsFirstAt = nil
                    s.eventsLastAt = nil
                }
                if !s.exitsUnhandled.isEmpty {
                    why.append(Self.exitedReason)
                    exited = s.exitsUnhandled
                    s.exitsUnhandled = []
                }
                if s.waits.values.contains(where: { $0 <= t }) { why.append("backoff over") }
                if t >= nextResync { why.append("resync") }
                return why
            }
            guard let reasons else { return }
            if reasons.isEmpty { continue }
            if reasons.contains("SIGHUP") { loadHistories() }
            if reasons == [Self.exitedReason] {
                // Only exits: a pass over those VMs alone, so a relaunch does not wait for every
                // other VM's monitor (the next full pass, at the latest the resync, sees the rest).
                await pass(reason: Self.exitedReason, initial: false, only: exited)
                continue
            }
            await pass(reason: reasons.joined(separator: "; "), initial: false)
            nextResync = Self.now + resync
        }
    }

    /// Reads the restart histories of the records.
    private func loadHistories() {
        var found: [String: RestartHistory] = [:]
        for name in store.recordedNames() {
            if let h = (try? store.loadRecord(StoredRecord.self, name: name))?.restarts { found[name] = h }
        }
        state.withLock { $0.histories = found }
    }

    /// One pass under the state directory's lock; waits for the lock as long as another qemuctl
    /// holds it (re-checking for a stop every second).
    /// - Parameter only: Observe and plan only these VMs (``Session/plan(paths:prune:restart:fingerprint:only:)``).
    private func pass(reason: String, initial: Bool, only: Set<String>? = nil) async {
        var announced = false
        while !state.withLock({ $0.stop }) {
            do {
                try await store.withApplyLock(wait: .seconds(1), onWait: { holder in
                    if !announced {
                        announced = true
                        say(vm: "-", "waiting", "another qemuctl\(holder.map { " (pid \($0))" } ?? "") holds the lock on \(store.directory)")
                    }
                }) {
                    await passLocked(reason: reason, initial: initial, only: only)
                }
                return
            } catch let error as StateError {
                if Posix.lockHolder(store.directory + "/.apply.lock") == nil || !error.message.contains("lock") {
                    Terminal.fail(error.message)
                    return
                }
            } catch {
                Terminal.fail("\(error)")
                return
            }
        }
    }

    private func passLocked(reason: String, initial: Bool, only: Set<String>?) async {
        let session = Session(store: store, timeout: deadline)
        let result: Session.Result
        do {
            result = try await session.plan(paths: paths, prune: prune, restart: restart, fingerprint: false, only: only)
        } catch {
            let text = "\(error)" + (error.manifestsText ?? "")
            let repeated = state.withLock { s in
                defer { s.lastProblem = text }
                return s.lastProblem == text
            }
            if !repeated {
                say(vm: "-", "invalid", "the manifests have errors (on standard error); nothing was changed")
                error.report()
            }
            return
        }
        state.withLock { $0.lastProblem = nil }
        for w in result.observed.warnings { Terminal.warn(w) }
        let observed = Dictionary(result.observed.vms.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var startedAt: [String: Double] = [:]
        for vm in result.plan.vms where RestartGate.isDeath(vm, observed: observed[vm.name]) {
            if let t = (try? store.loadRecord(StoredRecord.self, name: vm.name))?.startedAt { startedAt[vm.name] = t }
        }
        let now = ControllerLoop.now
        var (exits, histories) = state.withLock { s in
            defer {
                if let only { only.forEach { s.exits[$0] = nil } } else { s.exits = [:] }
            }
            // A SHUTDOWN whose exit the follower has not reported yet (it waits for the process to
            // vanish): the same exit, so a guest's poweroff is never taken for a crash.
            return (s.exits.merging(s.shutdowns) { seen, _ in seen }, s.histories)
        }
        // An exit without a SHUTDOWN event: what QEMU's keeper saw (the signal or status) says more.
        for (name, exit) in exits where !exit.byGuest && exit.reason.hasSuffix("(killed or crashed)") {
            if let kept = ExitReport.keeperSummary(store.layout(name)) {
                exits[name]?.reason = String(exit.reason.dropLast(1)) + ": \(kept))"
            }
        }
        // A death no follower saw (the controller was not running, or not attached yet): QEMU's keeper
        // still tells how it ended.
        for (name, started) in startedAt where exits[name] == nil {
            if let last = histories[name]?.lastExit, last.at >= started { continue }
            if let kept = ExitReport.read(layout: store.layout(name), record: nil, tailLines: 0),
               kept.signal != nil || kept.exitStatus != nil, let at = kept.at, at >= started {
                let reason = kept.signal != nil ? "no follower saw QEMU go (killed or crashed: \(kept.summary))"
                    : "no follower saw QEMU go: \(kept.summary)"
                exits[name] = QEMUExit(reason: reason, byGuest: false, at: at)
            }
        }
        // A death already decided on keeps its exit: a late report of it is not a second exit.
        for (name, exit) in exits {
            if let last = histories[name]?.lastExit, last != exit, last.at >= (startedAt[name] ?? 0), !exit.byGuest {
                exits[name] = nil
            }
        }
        let outcome = RestartGate.filter(result.plan, observed: observed, exits: exits, histories: histories,
                                         startedAt: startedAt, hostBootTime: initial ? Self.hostBootTime() : nil, now: now)
        var updated = histories
        var waits: [String: Double] = [:]
        for (name, d) in outcome.decisions.sorted(by: { $0.key < $1.key }) {
            updated[name] = d.history
            let exit = d.history.lastExit
            let fresh = state.withLock { s in
                guard let at = exit?.at, s.reportedExit[name] != at else { return false }
                s.reportedExit[name] = at
                return true
            }
            switch d.decision {
            case .leaveDown(let why):
                if fresh { say(vm: name, "exited", "\(exit?.reason ?? "QEMU exited"); left down: \(why)") }
            case .wait(let until):
                waits[name] = until
                if fresh {
                    say(vm: name, "exited", "\(exit?.reason ?? "QEMU exited"); restart in \(Self.seconds(until - now)) (backoff)")
                }
            case .restart:
                if fresh { say(vm: name, "exited", exit?.reason ?? "QEMU exited") }
            }
        }
        let plan = outcome.plan
        if plan.hasChanges || plan.vms.contains(where: \.pendingRestartCleared) {
            let applier = Applier(store: store, parallel: parallel, stopTimeout: stopTimeout, timeout: deadline)
            let results = await applier.apply(plan, observed: result.observed.vms)
            for r in results where r.status != .unchanged || !r.messages.isEmpty {
                var action = r.status.rawValue
                var detail = r.messages.joined(separator: "; ")
                if outcome.decisions[r.name]?.decision == .restart, let h = updated[r.name] {
                    let t = ControllerLoop.now
                    if r.status == .created {
                        updated[r.name] = RestartRules.restarted(h, at: t)
                        action = "restarted"
                        detail = "restart \(updated[r.name]!.count) (restartPolicy \(plan[r.name]?.desired?.spec.effectiveRestartPolicy.rawValue ?? "?"))"
                            + (detail.isEmpty ? "" : "; " + detail)
                    } else {
                        let next = RestartRules.launchFailed(h, reason: detail, at: t)
                        updated[r.name] = next
                        if let due = next.nextRestartAt { waits[r.name] = due }
                    }
                }
                say(vm: r.name, action, detail)
            }
        }
        if initial || reason.contains("changed") || reason.contains("SIGHUP") {
            if !plan.hasChanges { say(vm: "-", "in-sync", "\(result.plan.vms.count) VM\(result.plan.vms.count == 1 ? " matches" : "s match") the manifests (\(reason))") }
        }
        state.withLock { s in
            s.histories = updated
            s.waits = waits
        }
        saveHistories(updated)
    }

    /// Writes each history into its VM's record when it differs (a launch writes a fresh record).
    private func saveHistories(_ histories: [String: RestartHistory]) {
        for (name, h) in histories {
            guard var record = try? store.loadRecord(StoredRecord.self, name: name), record.restarts != h else { continue }
            record.restarts = h
            do { try store.saveRecord(record, name: name) } catch { Terminal.warn(error.message) }
        }
    }

    /// When this host booted (`btime` of /proc/stat, seconds since the Unix epoch).
    static func hostBootTime() -> Double? {
        guard let bytes = Posix.readFile("/proc/stat", limit: 1 << 20) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(Posix.trimmed(String(line.dropFirst(6))))
        }
        return nil
    }

    static func seconds(_ s: Double) -> String {
        s < 10 ? "\((s * 10).rounded() / 10) s" : "\(Int(s.rounded())) s"
    }
}

extension Session.Failure {
    /// The diagnostics' text, so the same problems are reported once.
    fileprivate var manifestsText: String? {
        if case .manifests(let set) = self { return set.diagnostics.map(\.description).joined(separator: "\n") }
        return nil
    }
}
