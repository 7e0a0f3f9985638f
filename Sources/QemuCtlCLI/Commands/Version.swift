import ArgumentParser

extension QemuCtlCommand {
    /// `qemuctl version`: the same text as `qemuctl --version`, as a visible verb (kubectl's habit).
    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print qemuctl's version.",
            discussion: """
                EXAMPLES:
                  qemuctl version
                """)

        @OptionGroup var verbosity: VerbosityOption

        func run() {
            print("qemuctl \(QemuCtlCommand.version)")
        }
    }

    /// `qemuctl completion SHELL`: the shell completion script (VM names complete from the state directory).
    struct Completion: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shell completion script for bash, zsh or fish.",
            discussion: """
                EXAMPLES:
                  source <(qemuctl completion bash)                       # this shell only
                  qemuctl completion bash > /etc/bash_completion.d/qemuctl
                  qemuctl completion zsh > "${fpath[1]}/_qemuctl"
                  qemuctl completion fish > ~/.config/fish/completions/qemuctl.fish
                """)

        /// The shells ArgumentParser writes scripts for.
        enum Shell: String, ExpressibleByArgument, CaseIterable {
            case bash, zsh, fish
        }

        @Argument(help: "The shell: bash, zsh or fish.")
        var shell: Shell

        @OptionGroup var verbosity: VerbosityOption

        func run() throws {
            guard let target = CompletionShell(rawValue: shell.rawValue) else { throw ValidationError("no completion script for \(shell.rawValue)") }
            print(QemuCtlCommand.completionScript(for: target))
        }
    }
}
