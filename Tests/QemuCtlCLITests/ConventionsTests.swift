import Foundation
import QemuCtlTestSupport
import Testing

/// The conventions of the command line as a whole: grouped help, unknown verbs, `version`, `completion`.
@Suite("Command-line conventions")
struct ConventionsTests {
    @Test("an unknown verb is named, with the nearest command as a hint, and exits 2")
    func unknownVerbSuggestsTheNearest() async throws {
        let typo = try await QemuctlBinary.run(["aply", "-f", "vms/"])
        #expect(typo.status == 2)
        #expect(typo.err.contains("unknown command 'aply'"), "\(typo.err)")
        #expect(typo.err.contains("did you mean `qemuctl apply`?"), "\(typo.err)")
        let swapped = try await QemuctlBinary.run(["dleete", "web"])
        #expect(swapped.err.contains("did you mean `qemuctl delete`?"), "\(swapped.err)")
        let far = try await QemuctlBinary.run(["frobnicate"])
        #expect(far.status == 2)
        #expect(far.err.contains("unknown command 'frobnicate'"), "\(far.err)")
        #expect(!far.err.contains("did you mean"), "\(far.err)")
    }

    @Test("the top-level help groups the verbs and names the state directory's option and variable")
    func helpGroupsTheVerbs() async throws {
        let help = try await QemuctlBinary.run(["--help"])
        #expect(help.status == 0)
        let order = ["DECLARATIVE SUBCOMMANDS:", "OPERATIONS SUBCOMMANDS:", "ACCESS SUBCOMMANDS:",
                     "INSPECTION SUBCOMMANDS:", "OTHER SUBCOMMANDS:"]
        let positions = order.map { help.out.range(of: $0)?.lowerBound }
        #expect(!positions.contains(nil), "\(help.out)")
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
        // Each verb sits in its group: apply under Declarative, stop under Operations, get under Inspection.
        func group(of verb: String) -> String? {
            var current: String?
            for line in help.out.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasSuffix("SUBCOMMANDS:") { current = String(line) }
                if line.hasPrefix("  \(verb) ") { return current }
            }
            return nil
        }
        #expect(group(of: "apply") == "DECLARATIVE SUBCOMMANDS:")
        #expect(group(of: "stop") == "OPERATIONS SUBCOMMANDS:")
        #expect(group(of: "console") == "ACCESS SUBCOMMANDS:")
        #expect(group(of: "get") == "INSPECTION SUBCOMMANDS:")
        #expect(group(of: "version") == "OTHER SUBCOMMANDS:")
        #expect(help.out.contains("--state-dir"))
        #expect(help.out.contains("QEMUCTL_STATE_DIR"))
    }

    @Test("version and completion are visible verbs")
    func versionAndCompletion() async throws {
        let version = try await QemuctlBinary.run(["version"])
        let flag = try await QemuctlBinary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.out == "qemuctl \(flag.out)", "\(version.out) vs \(flag.out)")
        for shell in ["bash", "zsh", "fish"] {
            let script = try await QemuctlBinary.run(["completion", shell])
            #expect(script.status == 0)
            #expect(script.out.contains("qemuctl"), "\(shell)")
            #expect(script.out.contains("apply"), "\(shell): the script completes the verbs")
        }
        let bash = try await QemuctlBinary.run(["completion", "bash"])
        #expect(bash.out.hasPrefix("#!/bin/bash"))
        let bad = try await QemuctlBinary.run(["completion", "tcsh"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("'bash', 'zsh' or 'fish'"), "\(bad.err)")
    }
}
