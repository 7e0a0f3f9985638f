import ArgumentParser

/// `--lock-wait SECONDS`: how long a command that changes VMs waits for another qemuctl holding
/// the state directory's lock. (It was `--wait`, which kubectl and helm users read as "wait until
/// ready"; `--wait` is still accepted, hidden, with a warning.)
struct LockWaitOption: ParsableArguments {
    @Option(name: .customLong("lock-wait"), help: ArgumentHelp(
        "Seconds to wait for another qemuctl holding the state directory; 0 fails at once.", valueName: "seconds"))
    var lockWait: Double = 60

    @Option(name: .customLong("wait"), help: .hidden)
    var deprecatedWait: Double?

    /// Warns about the old spelling.
    func validate() throws {
        if deprecatedWait != nil { Terminal.warn("--wait is deprecated: it is the lock wait, now spelled --lock-wait") }
        if seconds < 0 { throw ValidationError("--lock-wait must not be negative") }
    }

    /// The lock wait in seconds.
    var seconds: Double { deprecatedWait ?? lockWait }
}
