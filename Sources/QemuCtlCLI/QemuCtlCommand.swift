import ArgumentParser
import Manifest
import QemuCtl
import Reconcile

/// The `qemuctl` command line.
@main
struct QemuCtlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemuctl",
        abstract: "Declarative, YAML-driven manager for QEMU virtual machines.",
        discussion: """
            Every command works on one state directory: --state-dir DIR, else $QEMUCTL_STATE_DIR, else \
            /var/run/qemu as root and ~/.cache/qemuctl otherwise. `qemuctl COMMAND --help` shows a \
            command's options and examples.
            """,
        version: QemuCtlCommand.version,
        subcommands: [Manual.self],
        groupedSubcommands: [
            CommandGroup(name: "Declarative", subcommands: [
                Apply.self, Controller.self, Diff.self, PlanCommand.self, Validate.self, Schema.self, Import.self, Export.self,
            ]),
            CommandGroup(name: "Operations", subcommands: [
                Start.self, Stop.self, Pause.self, Resume.self, Reset.self, Delete.self,
            ]),
            CommandGroup(name: "Access", subcommands: [Console.self, VNC.self, SPICE.self, QMPRaw.self, HMP.self]),
            CommandGroup(name: "Inspection", subcommands: [Get.self, Describe.self, Events.self, Wait.self]),
            CommandGroup(name: "Other", subcommands: [Version.self, Completion.self]),
        ]
    )

    /// The version `qemuctl version` and `--version` print.
    static let version = "0.1.0"

    /// Parses and runs the command; usage errors are printed as `qemuctl: error: …`
    /// with a hint, and exit with status 2 (1 for `plan`, whose 2 means "changes").
    static func main() async {
        Interruption.unblockAtStart()
        Posix.startQEMUAsChild()
        await Observer.$early.withValue(earlyPreconnection()) { await runCommandLine() }
    }

    /// Parses the command line and runs the command, or prints why not and exits.
    private static func runCommandLine() async {
        if let unknown = unknownVerb() {
            let hint = unknown.suggestion.map { "did you mean `qemuctl \($0)`?" } ?? "see `qemuctl --help` for the commands"
            Terminal.fail("unknown command '\(unknown.word)'", hint: hint)
            exit(withError: ExitCode(2))
        }
        do {
            var command = try parseCommandLine()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            // Help, --version, completion scripts and an ExitCode thrown by a command
            // (which printed its own message): ArgumentParser exits as usual.
            if code == .success || error is ExitCode { exit(withError: error) }
            let message = self.message(for: error).prefix { $0 != "\n" }.description
            if code == .validationFailure {
                Terminal.fail(message, hint: "see `\(usageCommand()) --help`")
                exit(withError: ExitCode(CommandLine.arguments.dropFirst().first == "plan" ? 1 : 2))
            }
            // An ExitCode thrown while validating options comes wrapped, with its message printed already.
            if !message.isEmpty { Terminal.fail(message) }
            exit(withError: ExitCode(code.rawValue))
        }
    }

    /// The commands whose speed is measured (`apply`, `diff`, `plan`, `get`), parsed on their own.
    ///
    /// Parsing from the root makes ArgumentParser reflect over every subcommand, which costs
    /// milliseconds of runtime conformance lookups at each start (measured: 5.5 ms for `apply -f`
    /// from the root, 3.0 ms for the subcommand alone). A command line that parses as the named
    /// subcommand alone gives the same value; anything else (help, usage errors) is parsed from the
    /// root as before, so every message stays the same.
    static let parsedDirectly: [String: any ParsableCommand.Type] = [
        "apply": Apply.self, "diff": Diff.self, "plan": PlanCommand.self, "get": Get.self,
    ]

    /// For `diff` and `plan`, which read every VM's monitor first: the connections to the monitors
    /// of the state directory the command line names (`--state-dir`, else the environment's or the
    /// default), opened with the opening queries before the command line is parsed, so the QEMUs
    /// answer while it is (on a loaded host, parsing takes a large share of the command's time).
    /// Only read-only queries go out; connections the command does not take (another state
    /// directory, a usage error) are closed unused at exit.
    private static func earlyPreconnection() -> Observer.Preconnection? {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, name == "diff" || name == "plan",
              !arguments.contains(where: { $0 == "--help" || $0 == "-h" }) else { return nil }
        var directory: String? = nil
        for (i, a) in arguments.enumerated() {
            if a == "--" { break }
            if a == "--state-dir", i + 1 < arguments.count { directory = arguments[i + 1] }
            if a.hasPrefix("--state-dir=") { directory = String(a.dropFirst("--state-dir=".count)) }
        }
        return Observer(store: StateStore(directory: directory ?? StateStore.defaultDirectory())).preconnect()
    }

    /// The command of this process's command line.
    private static func parseCommandLine() throws -> any ParsableCommand {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // `import NAME` takes a positional name, which would swallow the word `kubevirt`.
        if arguments.starts(with: ["import", "kubevirt"]) {
            return try Import.KubeVirt.parseAsRoot(Array(arguments.dropFirst(2)))
        }
        if let name = arguments.first, let type = parsedDirectly[name],
           let command = try? type.parseAsRoot(Array(arguments.dropFirst())) {
            return command
        }
        return try parseAsRoot()
    }

    /// The command line's first word when it is neither an option nor a command (kubectl's
    /// "unknown command"), with the nearest command name.
    private static func unknownVerb() -> (word: String, suggestion: String?)? {
        guard let first = CommandLine.arguments.dropFirst().first, !first.hasPrefix("-"), parsedDirectly[first] == nil else { return nil }
        let names = configuration.subcommands.map { $0._commandName }
        if names.contains(first) || first == "help" { return nil }
        return (first, Spelling.nearest(to: first, among: names.filter { !$0.hasPrefix("_") }))
    }

    /// `qemuctl SUBCOMMAND` when the command line names one.
    private static func usageCommand() -> String {
        let names = configuration.subcommands.map { $0._commandName }
        if let first = CommandLine.arguments.dropFirst().first, names.contains(first) { return "qemuctl \(first)" }
        return "qemuctl"
    }
}
