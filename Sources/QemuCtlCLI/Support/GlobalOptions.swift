import ArgumentParser
import Reconcile

/// Options every command that touches VMs shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"),
            help: "Where VM sockets and state live (env QEMUCTL_STATE_DIR; default /var/run/qemu as root, ~/.cache/qemuctl otherwise).",
            completion: .directory)
    var stateDir: String?

    @Option(name: .customLong("timeout"), help: "Seconds to wait for each VM's monitor (connect and each command) before calling it busy or unresponsive.")
    var timeout: Double = 5

    /// The state store these options select.
    var store: StateStore { StateStore(directory: stateDir ?? StateStore.defaultDirectory()) }

    /// The QMP deadline.
    var deadline: Duration { .milliseconds(Int(timeout * 1000)) }
}
