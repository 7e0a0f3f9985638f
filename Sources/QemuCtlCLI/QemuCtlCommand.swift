import ArgumentParser

/// The `qemuctl` command line.
@main
struct QemuCtlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemuctl",
        abstract: "Declarative, YAML-driven manager for QEMU virtual machines.",
        version: "0.1.0",
        subcommands: [Apply.self, Diff.self, PlanCommand.self, Get.self, Describe.self, Delete.self, Validate.self, Schema.self,
                      Console.self, VNC.self, SPICE.self, Import.self,
                      Start.self, Stop.self, Pause.self, Resume.self, Reset.self, QMPRaw.self, HMP.self, Events.self,
                      Manual.self]
    )

    /// Parses and runs the command; usage errors are printed as `qemuctl: error: …`
    /// with a hint, and exit with status 2 (1 for `plan`, whose 2 means "changes").
    static func main() async {
        do {
            var command = try parseAsRoot()
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
            Terminal.fail(message)
            exit(withError: ExitCode(code.rawValue))
        }
    }

    /// `qemuctl SUBCOMMAND` when the command line names one.
    private static func usageCommand() -> String {
        let names = configuration.subcommands.compactMap { $0.configuration.commandName ?? String(describing: $0).lowercased() }
        if let first = CommandLine.arguments.dropFirst().first, names.contains(first) { return "qemuctl \(first)" }
        return "qemuctl"
    }
}
