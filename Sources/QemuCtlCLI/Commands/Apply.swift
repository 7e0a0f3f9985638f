import ArgumentParser
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

extension PlanOptions.RestartPolicy: ExpressibleByArgument {}

extension QemuCtlCommand {
    /// `qemuctl apply`: makes the host match the manifests.
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the running VMs match the manifests.",
            discussion: """
                Loads every manifest under the paths (nothing happens when any is invalid), reads \
                the actual state of each VM from QEMU over QMP, plans the difference and carries it \
                out: launches what should run, applies live changes (run state, disk throttle, CD \
                media, NIC link, display passwords, vCPUs and RAM within their maximum, disks and \
                NICs hot-plugged into free root ports) and reads each back, and records the rest. A \
                change that needs a relaunch is left pending unless --restart=if-needed. With a \
                saved plan (qemuctl plan --out plan.json), applies exactly that plan, and refuses it \
                when the VMs changed since it was made.

                Exit status: 0 everything applied (or nothing to do), 1 some change failed, \
                2 nothing was tried (invalid manifests, stale plan, lock busy), 3 applied, but a \
                restart is pending, 4 applied, but --wait-ready timed out (as `qemuctl wait` does).

                --wait-ready: once the changes are made, waits until every VM this apply launched, \
                restarted or updated that declares spec.readiness (and should run) passes its probe, \
                all within --ready-timeout, and prints each VM's time to ready. A probe that cannot \
                work (QEMU gone, no agent channel) exits 1.

                EXAMPLES:
                  # make the VMs match every manifest under vms/
                  qemuctl apply -f vms/
                  # show the plan, change nothing
                  qemuctl apply -f vms/ --dry-run
                  qemuctl apply -f vms/ --prune --restart=if-needed
                  qemuctl apply -f vms/ --wait-ready --ready-timeout 2m
                  # prune only VMs labelled team=web
                  qemuctl apply -f vms/ --prune -l team=web
                  qemuctl plan -f vms/ --out plan.json && qemuctl apply plan.json
                  # the plan and each VM's result as JSON
                  qemuctl apply -f vms/ -o json
                """
        )

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: "A manifest file, a directory, or - for standard input (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Argument(help: "A plan saved by `qemuctl plan --out FILE`, applied exactly (manifests are given with -f).")
        var planFile: String?

        @Flag(help: "Show the plan, change nothing.")
        var dryRun = false

        @Flag(help: "Delete managed VMs of this manifest set that no manifest declares any more (their disks are kept).")
        var prune = false

        @OptionGroup var scope: PruneScope

        @Option(help: "Relaunch VMs whose change needs it: never (report it pending) or if-needed.")
        var restart: PlanOptions.RestartPolicy = .never

        @Option(help: "How many VMs to change at once.")
        var parallel = 16

        @OptionGroup var lock: LockWaitOption

        /// The lock wait in seconds (`--lock-wait`).
        var wait: Double { lock.seconds }

        @Option(help: "Seconds a VM may take to power off before the stop ladder escalates.")
        var stopTimeout: Double = 30

        @Option(name: .shortAndLong, help: "text, json or yaml: with json or yaml, the plan and each VM's result as one object (ApplyReport), and no text.")
        var output: TextOutputFormat = .text

        @Flag(help: "After applying, wait until the VMs launched, restarted or updated pass their spec.readiness probe.")
        var waitReady = false

        @Option(help: ArgumentHelp(
            "How long --wait-ready waits for all the VMs: seconds, or a number with ms, s, m or h (default 5m).",
            discussion: "Not --timeout: that is the QMP monitor deadline on every verb; one option name, one meaning."))
        var readyTimeout: String = "5m"

        func validate() throws {
            if file.isEmpty == (planFile == nil) {
                throw ValidationError("give manifests with -f PATH, or one saved plan file, not both")
            }
            if parallel < 1 { throw ValidationError("--parallel must be at least 1") }
            if scope.selector != nil && !prune { throw ValidationError("-l selects what --prune deletes: give --prune too") }
            if waitReady && output.isStructured {
                throw ValidationError("--wait-ready reports as text: use it without -o \(output.rawValue), or run `qemuctl wait` after")
            }
            if QemuCtlCommand.Wait.duration(readyTimeout) == nil {
                throw ValidationError("--ready-timeout '\(readyTimeout)' is not a duration (seconds, or a number with ms, s, m or h)")
            }
        }

        func run() async throws {
            let store = global.store
            let code: Int32
            do {
                code = try await store.withApplyLock(wait: .milliseconds(Int(wait * 1000)), onWait: { holder in
                    Terminal.error("qemuctl: another qemuctl\(holder.map { " (pid \($0))" } ?? "") is changing \(store.directory); waiting up to \(Int(wait)) s…")
                }) {
                    try await applyLocked(store)
                }
            } catch let error as StateError {
                Terminal.fail(error.message, hint: error.isLockBusy ? "another qemuctl is changing this state directory; retry when it is done, or pass a longer --lock-wait" : nil)
                throw ExitCode(2)
            }
            if code != 0 { throw ExitCode(code) }
        }

        private func applyLocked(_ store: StateStore) async throws -> Int32 {
            let session = Session(store: store, timeout: global.deadline)
            let plan: Plan
            let observed: [ObservedVM]
            var configs: [String: VMConfig] = [:]
            if let planFile {
                let saved: Plan
                do {
                    saved = try PlanFile.load(planFile, store: store)
                } catch {
                    // `apply vms/dev.yaml` without -f: never suggest writing a plan over the manifest.
                    if Self.isManifest(planFile) {
                        Terminal.fail("\(planFile) is a manifest, not a plan saved by `qemuctl plan --out`",
                                      hint: "apply manifests with -f: qemuctl apply -f \(planFile)")
                    } else {
                        Terminal.fail(error.message, hint: "save one with: qemuctl plan -f MANIFESTS --out PLANFILE")
                    }
                    return 2
                }
                // Observed as `plan` did: with the manifests' specs the plan was made for.
                let desired = Dictionary(saved.vms.compactMap { vm in vm.desired.map { (vm.name, $0.spec) } },
                                         uniquingKeysWith: { a, _ in a })
                let report = await session.observer.observe(extraNames: saved.vms.map(\.name), desired: desired)
                guard saved.isCurrent(for: report.vms) else {
                    Terminal.fail("the plan in \(planFile) is stale: the VMs changed since it was made",
                                  hint: "make a new one with `qemuctl plan -f MANIFESTS --out \(planFile)`, or apply the manifests directly")
                    return 2
                }
                plan = saved
                observed = report.vms
            } else {
                Verbosity.say("loading the manifests of \(file.joined(separator: " ")), reading the VMs of \(store.directory) over QMP, planning")
                do {
                    let result = try await session.plan(paths: file, prune: prune, restart: restart, fingerprint: false,
                                                          applySet: scope.applySet, selector: scope.selector)
                    for w in result.observed.warnings { Terminal.warn(w) }
                    plan = result.plan
                    observed = result.observed.vms
                    configs = result.configs
                } catch {
                    error.report()
                    return 2
                }
            }
            let renderer = PlanRenderer(color: Terminal.color)
            Verbosity.say(renderer.summaryLine(plan) + (plan.applySet.map { " Apply set \($0)." } ?? ""))
            if output.isStructured {
                // Nothing but the report goes to standard output.
            } else if plan.hasChanges || plan.hasBlockedVMs {
                print(renderer.render(plan), terminator: "")
                fflush(nil)  // the plan is out before the (possibly long) changes start, also into a pipe
            }
            if dryRun {
                if output.isStructured { return try report(plan, [], dryRun: true, status: 0) }
                if !plan.hasChanges { print(PlanRenderer.noChangesMessage) }
                return 0
            }
            if !plan.hasChanges && !plan.vms.contains(where: \.pendingRestartCleared) {
                if output.isStructured { return try report(plan, [], dryRun: false, status: plan.hasBlockedVMs ? 1 : 0) }
                let matching = plan.vms.filter { $0.action == .noOp }.count
                let blocked = plan.vms.count - matching
                print("No changes: \(matching) VM\(matching == 1 ? " matches" : "s match") the manifests"
                      + (blocked > 0 ? "; \(blocked) not planned (see above)." : "."))
                return plan.hasBlockedVMs ? 1 : 0
            }
            var applier = Applier(store: store, parallel: parallel, stopTimeout: .milliseconds(Int(stopTimeout * 1000)),
                                  timeout: global.deadline)
            // -v: each VM's steps as they happen (the live view, when there is one, shows them too).
            if Verbosity.level >= 1 {
                applier.progress = { name, message in Verbosity.say("\(name): \(message)") }
            }
            // From here VMs change: a first Ctrl-C lets the steps in flight finish and record.
            Interruption.install()
            applier.shouldStop = { Interruption.requested }
            // On a terminal, a live view of the VMs being changed; erased before the results are printed.
            let view = ProgressView.wanted ? ProgressView(names: plan.vms.filter { $0.action != .noOp }.map(\.name)) : nil
            var drawing: Task<Void, Never>? = nil
            if let view {
                fflush(nil)
                let say = applier.progress
                applier.progress = { name, message in
                    view.update(name, message)
                    if Verbosity.level >= 1 { say(name, message) }
                }
                applier.finished = { result in view.finish(result.name, result.status.rawValue) }
                drawing = Task { await view.run() }
            }
            let results = await applier.apply(plan, observed: observed, configs: configs)
            if let view {
                view.stop()
                await drawing?.value
            }
            let count = { (s: VMResult.Status) in results.filter { $0.status == s }.count }
            let status: Int32 = Interruption.requested ? Interruption.status
                : count(.failed) > 0 || count(.skipped) > 0 ? 1 : count(.restartPending) > 0 ? 3 : 0
            if output.isStructured {
                _ = try report(plan, results, dryRun: false, status: status)
                if Interruption.requested {
                    Terminal.fail("interrupted: \(results.filter { $0.messages == [Applier.notStarted] }.count) VM(s) not started",
                                  hint: "run the same apply again to carry out the rest")
                }
                return status
            }
            print("")
            for r in results where r.status != .unchanged || !r.messages.isEmpty {
                print("\(r.name): \(r.status.rawValue)")
                for m in r.messages { print("    \(m)") }
            }
            print("Applied: \(count(.created)) created, \(count(.updated)) updated, \(count(.restarted)) restarted, "
                  + "\(count(.deleted)) deleted, \(count(.restartPending)) restart pending, \(count(.failed)) failed, "
                  + "\(count(.unchanged)) unchanged.")
            if Interruption.requested {
                Terminal.fail("interrupted: \(results.filter { $0.messages == [Applier.notStarted] }.count) VM(s) not started",
                              hint: "run the same apply again to carry out the rest")
                return Interruption.status
            }
            var ready = ReadyWait.Outcome.ready
            if waitReady && !Interruption.requested {
                ready = await ReadyWait.run(results, store: store, timeout: QemuCtlCommand.Wait.duration(readyTimeout)!,
                                            timeoutText: readyTimeout)
            }
            if count(.failed) > 0 || count(.skipped) > 0 || ready == .notApplicable { return 1 }
            if ready == .timedOut { return QemuCtlCommand.Wait.Exit.timedOut }
            if count(.restartPending) > 0 { return 3 }
            return 0
        }

        /// Whether `path` holds manifests rather than a saved plan: a directory, a `.yaml`/`.yml`
        /// file, or a file the manifest loader finds a VM in.
        static func isManifest(_ path: String) -> Bool {
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { return true }
            if path.hasSuffix(".yaml") || path.hasSuffix(".yml") { return true }
            return !ManifestLoader(hostFiles: .ignore).load(paths: [path]).virtualMachines.isEmpty
        }

        /// Prints what `apply -o json|yaml` reports and returns `status`.
        private func report(_ plan: Plan, _ results: [VMResult], dryRun: Bool, status: Int32) throws -> Int32 {
            try StructuredOutput.print(ApplyReport(plan: plan, results: results, dryRun: dryRun, exitStatus: status), as: output)
            return status
        }
    }

    /// What `apply -o json|yaml` prints: the plan it carried out, each changed VM's result
    /// (`results`: empty for a dry run or when nothing changed), the counts by result and the
    /// exit status.
    struct ApplyReport: Encodable {
        /// The plan (as `qemuctl plan -o json` prints it).
        var plan: Plan
        /// One per VM the plan touched.
        var results: [VMResult]
        /// `--dry-run`: nothing was changed.
        var dryRun: Bool
        /// The exit status of the command.
        var exitStatus: Int32

        /// VMs by result status (`created`, `updated`, `failed`, …), every status present.
        var counts: [String: Int] {
            let all: [VMResult.Status] = [.unchanged, .created, .updated, .restarted, .deleted, .restartPending, .skipped, .failed]
            return Dictionary(uniqueKeysWithValues: all.map { s in (s.rawValue, results.filter { $0.status == s }.count) })
        }

        private enum CodingKeys: String, CodingKey { case plan, results, dryRun, exitStatus, counts }

        /// Encodes the report with its counts.
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(plan, forKey: .plan)
            try c.encode(results, forKey: .results)
            try c.encode(dryRun, forKey: .dryRun)
            try c.encode(exitStatus, forKey: .exitStatus)
            try c.encode(counts, forKey: .counts)
        }
    }
}

extension Session.Failure: CustomStringConvertible {
    public var description: String {
        switch self {
        case .manifests: "invalid manifests"
        case .invalid(let p): p.joined(separator: "\n")
        }
    }
}
