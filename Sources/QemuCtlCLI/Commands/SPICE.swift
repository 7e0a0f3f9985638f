import ArgumentParser
import QemuCtl

extension QemuCtlCommand {
    /// `qemuctl spice NAME`: connect SPICE clients to a VM without opening QEMU's port.
    struct SPICE: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "spice",
            abstract: "Hand SPICE connections to a VM's display without opening a TCP port of QEMU's.",
            discussion: """
                Works as qemuctl vnc does (a private unix socket by default, --socket PATH, --stdio, \
                or --listen with a password or --insecure-listen), for the VM's SPICE server \
                (spec.display.spice). A QEMU built without SPICE is reported as such.

                EXAMPLES:
                  qemuctl spice web-1 --listen 127.0.0.1:5930 &
                  remote-viewer spice://127.0.0.1:5930
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var handoff: HandoffOptions

        func run() async throws { try await handoff.run(.spice, global: global) }
    }
}
