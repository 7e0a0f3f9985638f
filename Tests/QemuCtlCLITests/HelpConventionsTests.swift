import Foundation
import QemuCtlTestSupport
import Testing

/// #19 item 4: every verb's help has examples; one meaning per option name.
@Suite("Help and option names")
struct HelpConventionsTests {
    /// The verbs of `qemuctl --help` (every group).
    static func verbs() async throws -> [String] {
        let help = try await QemuctlBinary.run(["--help"])
        var verbs: [String] = []
        var inGroup = false
        for line in help.out.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix("SUBCOMMANDS:") { inGroup = true; continue }
            if line.isEmpty { inGroup = false; continue }
            // A verb's line starts with two spaces and its name; a wrapped abstract with more spaces.
            if inGroup, line.hasPrefix("  "), !line.hasPrefix("   "), let word = line.split(separator: " ").first, !word.hasPrefix("-") {
                verbs.append(String(word))
            }
        }
        return verbs
    }

    @Test("every verb's --help has an EXAMPLES section that runs qemuctl VERB")
    func everyVerbHasExamples() async throws {
        let verbs = try await Self.verbs()
        #expect(verbs.count >= 20, "\(verbs)")
        for verb in verbs {
            let help = try await QemuctlBinary.run([verb, "--help"])
            #expect(help.status == 0, "\(verb)")
            let examples = try #require(help.out.range(of: "EXAMPLES:"), "\(verb) --help has no EXAMPLES:\n\(help.out)")
            #expect(help.out[examples.upperBound...].contains("qemuctl \(verb)"), "\(verb): \(help.out)")
        }
    }

    @Test("--lock-wait is the lock wait (--wait a hidden, warned alias); stop's power-off wait is --stop-timeout, --timeout the monitor's")
    func oneMeaningPerOptionName() async throws {
        for verb in ["apply", "delete", "start", "stop", "pause", "resume", "reset"] {
            let help = try await QemuctlBinary.run([verb, "--help"])
            #expect(help.out.contains("--lock-wait"), "\(verb)")
            #expect(!help.out.contains("--wait <"), "\(verb): \(help.out)")
        }
        let stop = try await QemuctlBinary.run(["stop", "--help"])
        #expect(stop.out.contains("--stop-timeout <stop-timeout>"), "\(stop.out)")
        let timeout = try #require(stop.out.split(separator: "\n").first { $0.hasPrefix("  --timeout <") }, "\(stop.out)")
        #expect(timeout.contains("monitor"), "\(timeout)")
        #expect(!stop.out.contains("--monitor-timeout"))
        for verb in ["apply", "delete", "controller"] {
            #expect(try await QemuctlBinary.run([verb, "--help"]).out.contains("--stop-timeout"), "\(verb)")
        }
        // The old spelling still works, with a warning: an empty state directory, nothing to delete.
        let dir = try TempDir("lw")
        defer { dir.remove() }
        let old = try await QemuctlBinary.run(["delete", "-l", "x=y", "--wait", "0"], environment: ["QEMUCTL_STATE_DIR": dir.file("s")])
        #expect(old.status == 0, "\(old.err)")
        #expect(old.err.contains("--wait is deprecated"), "\(old.err)")
    }
}
