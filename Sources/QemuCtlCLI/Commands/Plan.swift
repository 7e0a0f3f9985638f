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

extension QemuCtlCommand {
    /// `qemuctl plan`: the plan apply would carry out, as text, JSON or YAML.
    struct PlanCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan",
            abstract: "Show (and optionally save) what apply would do.",
            discussion: """
                -o json|yaml prints the plan as JSON or YAML (--json is -o json); --out FILE \
                saves it for `qemuctl apply FILE` (terraform's -out), which applies exactly that \
                plan and refuses it if the VMs changed in between. A saved plan is authenticated \
                with a key kept in the state directory: apply refuses one that was modified, made \
                for another state directory, owned by another user or writable by others; --out \
                refuses a directory other users may write without the sticky bit. Secrets never \
                appear in a plan.

                Exit status: 0 success; with --detailed-exitcode (terraform's rule) 0 no changes, \
                1 error, 2 changes.

                EXAMPLES:
                  qemuctl plan -f vms/
                  qemuctl plan -f vms/ -o json | jq .summary
                  # then: qemuctl apply plan.json
                  qemuctl plan -f vms/ --out plan.json
                  qemuctl plan -f vms/ --detailed-exitcode       # 2 when there are changes
                """
        )

        @OptionGroup var global: GlobalOptions

        @Option(name: .shortAndLong, help: "A manifest file, a directory, or - for standard input (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Option(name: .shortAndLong, help: "Output format: text, json or yaml.", completion: .list(TextOutputFormat.allCases.map(\.rawValue)))
        var output: String?

        @Flag(help: "The same as -o json.")
        var json = false

        @Option(help: "Save the plan to this file, for `qemuctl apply FILE`.", completion: .file())
        var out: String?

        /// The output format -o (or --json) asks for.
        var format: TextOutputFormat { json ? .json : output.flatMap(TextOutputFormat.init(rawValue:)) ?? .text }

        @Flag(help: "Exit 2 when there are changes, 0 when there are none, 1 on error.")
        var detailedExitcode = false

        @Flag(help: "Plan the deletion of managed VMs of this manifest set that no manifest declares any more.")
        var prune = false

        @OptionGroup var scope: PruneScope

        @Option(help: "never or if-needed (see apply).")
        var restart: PlanOptions.RestartPolicy = .never

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one -f PATH") }
            if scope.selector != nil && !prune { throw ValidationError("-l selects what --prune deletes: give --prune too") }
            // -o used to save the plan: a file name given to it is not taken for a format, nor written.
            if let output, TextOutputFormat(rawValue: output) == nil {
                throw ValidationError("-o/--output is the output format (text, json or yaml), not '\(output)'; "
                                      + "to save the plan use --out \(output)")
            }
        }

        func run() async throws {
            let session = Session(store: global.store, timeout: global.deadline)
            let result: Session.Result
            do {
                result = try await session.plan(paths: file, prune: prune, restart: restart, applySet: scope.applySet, selector: scope.selector)
            } catch {
                error.report()
                throw ExitCode(Plan.planErrorExitCode)
            }
            for w in result.observed.warnings { Terminal.warn(w) }
            let plan = result.plan
            if let out {
                // Authenticated with the state directory's key, written under an unpredictable name
                // with O_EXCL and renamed into place (readable by others, as a plan carries no secret).
                do {
                    try PlanFile.save(plan, to: out, store: global.store)
                } catch {
                    Terminal.fail(error.message, hint: "check that the directory exists and is writable")
                    throw ExitCode(Plan.planErrorExitCode)
                }
            }
            if format.isStructured {
                try StructuredOutput.print(plan, as: format)
            } else {
                let renderer = PlanRenderer(color: Terminal.color)
                print(renderer.render(plan), terminator: "")
                if let out { print("Saved the plan to \(out); apply it with: qemuctl apply \(out)") }
            }
            if detailedExitcode, plan.detailedExitCode != 0 { throw ExitCode(plan.detailedExitCode) }
        }
    }
}
