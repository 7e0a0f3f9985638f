import ArgumentParser
import Synchronization
import Reconcile

/// Options every command that touches VMs shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"),
            help: "Where VM sockets and state live (env QEMUCTL_STATE_DIR; default /var/run/qemu as root, ~/.cache/qemuctl otherwise).",
            completion: .directory)
    var stateDir: String?

    @Option(name: .customLong("timeout"), help: "Seconds to wait for each VM's monitor (connect and each command) before calling it busy or unresponsive.")
    var timeout: Double = 5

    @OptionGroup var verbosity: VerbosityOption

    /// The state store these options select.
    var store: StateStore { StateStore(directory: stateDir ?? StateStore.defaultDirectory()) }

    /// Refuses a state directory that is not safe to use before the command does anything (see
    /// ``StateDirectoryCheck``); a missing one is fine here.
    func validate() throws {
        try StateDirectoryCheck.run(store)
    }

    /// The QMP deadline.
    var deadline: Duration { .milliseconds(Int(timeout * 1000)) }
}

/// The check every command makes of its state directory before it runs: it must be the
/// effective user's and not writable by group or others, and its parents root's or this
/// user's (``StateStore/checkReadable()``). A missing directory holds no VMs and is not
/// created here; a refused or unusable one ends the command with the path, the reason and
/// the fix.
enum StateDirectoryCheck {
    /// Checks `store`; on refusal prints the error (once: the command line may be parsed twice)
    /// and throws the command's error exit code (2; 1 for `plan`, whose 2 means "changes").
    static func run(_ store: StateStore) throws {
        do {
            try store.checkReadable()
        } catch {
            if !printed.exchange(true, ordering: .relaxed) { Terminal.fail(error.message) }
            throw ExitCode(CommandLine.arguments.dropFirst().first == "plan" ? Plan.planErrorExitCode : 2)
        }
    }

    private static let printed = Atomic<Bool>(false)
}
