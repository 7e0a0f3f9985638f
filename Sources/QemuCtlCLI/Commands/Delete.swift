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
    /// `qemuctl delete NAME…`: stop VMs and forget them; disks stay.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop VMs (power button, then quit, SIGTERM, SIGKILL) and remove their runtime files. Disk images are kept.",
            discussion: "Exit status: 0 all deleted, 1 some failed, 2 nothing tried."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names.", transform: VMNameArgument.parse)
        var names: [String]

        @Flag(help: "Kill at once (SIGKILL) instead of asking the guest to power off.")
        var force = false

        @Option(help: "Seconds the guest may take to power off before the ladder escalates.")
        var stopTimeout: Double = 30

        @Option(help: "Seconds to wait for another qemuctl holding the state directory; 0 fails at once.")
        var wait: Double = 60

        func run() async throws {
            let store = global.store
            var failed = 0
            do {
                try await store.withApplyLock(wait: .milliseconds(Int(wait * 1000)), onWait: { holder in
                    Terminal.error("qemuctl: another qemuctl\(holder.map { " (pid \($0))" } ?? "") is changing \(store.directory); waiting…")
                }) {
                    let applier = Applier(store: store, stopTimeout: force ? .zero : .milliseconds(Int(stopTimeout * 1000)),
                                          timeout: global.deadline)
                    for name in names {
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
                Terminal.fail(error.message, hint: error.isLockBusy ? "another qemuctl is changing this state directory; retry when it is done, or pass a longer --wait" : nil)
                throw ExitCode(2)
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
