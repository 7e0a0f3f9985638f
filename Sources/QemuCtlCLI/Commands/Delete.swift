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
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl delete NAME… | -f PATH… | -l SELECTOR`: stop VMs and forget them; disks stay.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop VMs (power button, then quit, SIGTERM, SIGKILL) and remove their runtime files. Disk images are kept.",
            discussion: """
                Which VMs: the NAMEs given, the VMs the manifests of -f PATH define (kubectl's delete -f), \
                or the managed VMs whose labels match -l; -l with NAMEs or -f deletes only those that match.

                Exit status: 0 all deleted, 1 some failed, 2 nothing tried.

                EXAMPLES:
                  qemuctl delete web-1 web-2
                  # the VMs that manifest defines
                  qemuctl delete -f vms/web.yaml
                  # every VM labelled team=test, SIGKILL at once
                  qemuctl delete -l team=test --force
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names.", completion: .vmNames, transform: VMNameArgument.parse)
        var names: [String] = []

        @Option(name: .shortAndLong, help: "Delete the VMs these manifests define: a file, a directory, or - (repeatable).",
                completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Option(name: [.customShort("l"), .customLong("selector")],
                help: ArgumentHelp("Delete the managed VMs whose labels match: key=value, key!=value, key, !key; comma-separated.",
                                   valueName: "selector"),
                transform: SelectorArgument.parse)
        var selector: LabelSelector?

        func validate() throws {
            if names.isEmpty && file.isEmpty && selector == nil { throw ValidationError("give VM names, -f PATH or -l SELECTOR") }
            if !names.isEmpty && !file.isEmpty { throw ValidationError("give VM names or -f PATH, not both") }
        }

        /// The VMs to delete: the names, or the manifests' VMs, or every recorded VM, narrowed by -l.
        private func targets(_ store: StateStore) throws -> [String] {
            var targets = names
            if !file.isEmpty {
                let set = ManifestLoader(hostFiles: .ignore).load(paths: file)
                if set.hasErrors || set.hasUnreadablePaths {
                    for d in set.diagnostics where d.severity == .error { Terminal.error(d.description) }
                    Terminal.fail("the manifests have errors; nothing was deleted")
                    throw ExitCode(2)
                }
                targets = set.virtualMachines.map(\.name)
            } else if names.isEmpty {
                targets = store.recordedNames()
            }
            guard let selector else { return targets }
            return targets.filter { name in
                let labels = (try? store.loadRecord(StoredRecord.self, name: name))?.launch.labels
                // A named VM without a readable record is reported below, not filtered away.
                return labels.map(selector.matches) ?? !names.isEmpty
            }
        }

        @Flag(help: "Kill at once (SIGKILL) instead of asking the guest to power off.")
        var force = false

        @Option(help: "Seconds the guest may take to power off before the ladder escalates.")
        var stopTimeout: Double = 30

        @OptionGroup var lock: LockWaitOption

        /// The lock wait in seconds (`--lock-wait`).
        var wait: Double { lock.seconds }

        func run() async throws {
            let store = global.store
            var failed = 0
            do {
                try await store.withApplyLock(wait: .milliseconds(Int(wait * 1000)), onWait: { holder in
                    Terminal.error("qemuctl: another qemuctl\(holder.map { " (pid \($0))" } ?? "") is changing \(store.directory); waiting…")
                }) {
                    let applier = Applier(store: store, stopTimeout: force ? .zero : .milliseconds(Int(stopTimeout * 1000)),
                                          timeout: global.deadline, progress: { Verbosity.say("\($0): \($1)") })
                    let targets = try targets(store)
                    if targets.isEmpty { print("No VMs to delete in \(store.directory).") }
                    Verbosity.say("deleting \(targets.joined(separator: ", ")) from \(store.directory): each is stopped "
                                  + (force ? "at once (SIGKILL)" : "by the ladder (up to \(Int(stopTimeout)) s for the guest)")
                                  + ", then its runtime files are removed; disk images are kept")
                    for name in targets {
                        guard FileManager.default.fileExists(atPath: store.recordPath(name)) else {
                            Terminal.fail("\(name) is not a VM managed in \(store.directory); nothing deleted",
                                          hint: "`qemuctl get` lists the managed VMs; --state-dir selects another state directory")
                            failed += 1
                            continue
                        }
                        let result = await applier.deleteVM(name, force: force)
                        print("\(name): \(result.status.rawValue)")
                        for m in result.messages { print("    \(m)") }
                        if result.status == .failed { failed += 1 }
                    }
                }
            } catch let error as StateError {
                Terminal.fail(error.message, hint: error.isLockBusy ? "another qemuctl is changing this state directory; retry when it is done, or pass a longer --lock-wait" : nil)
                throw ExitCode(2)
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
