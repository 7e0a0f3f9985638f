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
    /// `qemuctl diff`: what apply would change, for CI.
    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show how the running VMs differ from the manifests.",
            discussion: """
                Values come from QEMU over QMP (and the launch record where QMP cannot tell), so \
                changes made by hand on a running VM show up as drift.

                Exit status (kubectl's rule): 0 no differences, 1 differences, 2 or more an error.

                EXAMPLES:
                  # exit 1 when the VMs drifted
                  qemuctl diff -f vms/
                  qemuctl diff -f vms/ --prune -o yaml
                """
        )

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: "A manifest file, a directory, or - for standard input (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Flag(help: "Also show managed VMs of this manifest set that no manifest declares any more (as deletions).")
        var prune = false

        @OptionGroup var scope: PruneScope

        @Option(name: .shortAndLong, help: "text, json or yaml (json and yaml: the plan apply would carry out, as `qemuctl plan -o` prints it).")
        var output: TextOutputFormat = .text

        @Flag(help: "The same as -o json.")
        var json = false

        /// The output format -o (or --json) asks for.
        var format: TextOutputFormat { json ? .json : output }

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one -f PATH") }
            if scope.selector != nil && !prune { throw ValidationError("-l selects what --prune deletes: give --prune too") }
        }

        func run() async throws {
            let session = Session(store: global.store, timeout: global.deadline)
            let result: Session.Result
            do {
                result = try await session.plan(paths: file, prune: prune, restart: .never, fingerprint: format.isStructured,
                                                applySet: scope.applySet, selector: scope.selector)
            } catch {
                error.report()
                throw ExitCode(Plan.diffErrorExitCode)
            }
            for w in result.observed.warnings { Terminal.warn(w) }
            if format.isStructured {
                try StructuredOutput.print(result.plan, as: format)
            } else {
                print(PlanRenderer(color: Terminal.color).render(result.plan), terminator: "")
            }
            let code = result.plan.diffExitCode
            if code != 0 { throw ExitCode(code) }
        }
    }
}
