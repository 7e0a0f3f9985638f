import ArgumentParser

/// The `qemuctl` command line.
@main
struct QemuCtlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemuctl",
        abstract: "Declarative, YAML-driven manager for QEMU virtual machines.",
        version: "0.1.0",
        subcommands: [Validate.self, Schema.self]
    )
}
