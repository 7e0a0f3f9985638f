import ArgumentParser

/// The `qemuctl` command line.
@main
struct QemuCtlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemuctl",
        abstract: "Declarative, YAML-driven manager for QEMU virtual machines.",
        version: "0.1.0",
        subcommands: [Apply.self, Diff.self, PlanCommand.self, Get.self, Describe.self, Delete.self, Validate.self, Schema.self,
                      Console.self, VNC.self, SPICE.self, Import.self]
    )
}
