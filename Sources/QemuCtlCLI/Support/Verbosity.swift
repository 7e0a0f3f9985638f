import ArgumentParser
import QMP
import QemuCtl
import Synchronization

/// `-v/--verbose` (repeatable), on standard error: at `-v` what a command does step by step
/// (apply: loading, observing, planning, each VM's steps); at `-vv` also each QMP command sent
/// and QEMU's answer (``QMPTrace``, secrets redacted) and each QEMU command line started
/// (``LaunchTrace``).
enum Verbosity {
    private static let current = Atomic<Int>(0)

    /// The level asked for (0: quiet).
    static var level: Int { current.load(ordering: .relaxed) }

    /// Sets the level and, from 2, turns the QMP and launch traces on.
    static func set(_ level: Int) {
        current.store(level, ordering: .relaxed)
        if level >= 2 {
            QMPTrace.install { Terminal.error("qemuctl: " + $0) }
            LaunchTrace.install { Terminal.error("qemuctl: " + $0) }
        }
    }

    /// Writes `text` to standard error when the level is at least `minimum`.
    static func say(_ text: @autoclosure () -> String, at minimum: Int = 1) {
        if level >= minimum { Terminal.error("qemuctl: " + text()) }
    }
}

/// `-v/--verbose` (repeatable): the one declaration of the flag, in ``GlobalOptions``,
/// ``StateDirOption`` and the commands that take neither (`validate`, `schema`, `version`,
/// `completion`, `export kubevirt`, `import kubevirt`). Parsing it sets ``Verbosity/level``.
struct VerbosityOption: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Say what is done on standard error; -vv also each QMP command and answer (secrets redacted) and each QEMU command line.")
    var verbose: Int

    /// Sets ``Verbosity/level`` from the flag.
    func validate() throws {
        Verbosity.set(verbose)
    }
}
