import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl start NAME…`: launch stopped managed VMs from their launch records.
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Launch managed VMs that are not running, from their launch records.",
            discussion: """
                Launches each VM with the spec it was last launched or applied with (kept in \
                STATE/NAME/record.json), vCPUs running; a VM that already runs is reported and \
                left alone. The manifest is not consulted: when it says runState: stopped, \
                `qemuctl diff` shows the started VM as drift.

                \(OperatorExit.help)

                EXAMPLES:
                  qemuctl start web-1
                  qemuctl start web-1 web-2
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names.", completion: .vmNames, transform: VMNameArgument.parse)
        var names: [String]

        @OptionGroup var lock: LockWaitOption

        /// The lock wait in seconds (`--lock-wait`).
        var wait: Double { lock.seconds }

        func run() async throws {
            let store = global.store
            let access = MonitorAccess(store: store, deadline: global.deadline)
            let applier = Applier(store: store, timeout: global.deadline, progress: { Verbosity.say("\($0): \($1)") })
            try await withLock(store, wait: wait) {
                try await forEachVM(names) { name throws(OperatorError) in
                    _ = try access.layout(name)
                    guard Posix.fileExists(store.recordPath(name)) else {
                        throw OperatorError("\(name) has no launch record in \(store.directory): qemuctl did not launch it",
                                            hint: "VMs are created with `qemuctl apply -f MANIFEST`", status: OperatorExit.notRunning)
                    }
                    Verbosity.say("\(name): launching QEMU from its launch record (the spec last applied)")
                    let result = await applier.startVM(name)
                    switch result.status {
                    case .unchanged:
                        print("\(name): \(result.messages.first ?? "already running")")
                    case .failed:
                        throw OperatorError("cannot start \(name): \(result.messages.last.map { $0.hasPrefix("failed: ") ? String($0.dropFirst(8)) : $0 } ?? "unknown error")",
                                            status: OperatorExit.refused)
                    default:
                        print("\(name): \(Terminal.paint("started", .green))")
                        for m in result.messages { print("    \(m)") }
                    }
                }
            }
        }
    }
}
