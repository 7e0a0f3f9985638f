import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl import`: describe a QEMU started elsewhere as a manifest, and adopt it.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the manifest of a QEMU started without qemuctl, and optionally adopt it.",
            discussion: """
                Finds the QEMU by NAME (its socket NAME.sock in the state directory, as the seed library \
                puts it), by --pid (its QMP socket read from /proc/PID/cmdline: -qmp unix:PATH or \
                -chardev socket,path=PATH + -mon mode=control) or by --socket PATH. What it runs is read \
                over QMP (a short-lived connection) and from its command line, and printed as a manifest \
                that validate accepts and diff shows clean against the VM once adopted.

                Options no manifest can express are listed on standard error as warnings; they would be \
                dropped when qemuctl relaunches the VM.

                --adopt records the VM in the state directory: from then on apply, diff, get and delete \
                manage it (the state directory's NAME.sock links to its socket).

                EXAMPLES:
                  # by the socket STATE/legacy.sock
                  qemuctl import legacy > vms/legacy.yaml
                  qemuctl import --pid 4242 -o json
                  qemuctl import legacy --adopt
                """,
            subcommands: [KubeVirt.self]
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name (default: QEMU's -name).", transform: VMNameArgument.parse)
        var name: String?

        @Option(help: "The process id of the QEMU.")
        var pid: Int32?

        @Option(help: "The QEMU's QMP socket.")
        var socket: String?

        @Option(name: .shortAndLong, help: "yaml (or text, the same: a manifest is YAML text) or json.")
        var output: ManifestFormat = .yaml

        @Flag(help: "Record the VM so that apply manages it from now on.")
        var adopt = false

        @Flag(help: "With --adopt: adopt a QEMU that libvirt manages (two managers would then fight over it).")
        var force = false

        /// How the manifest is printed (`-o`, as on every read command).
        enum ManifestFormat: String, ExpressibleByArgument, CaseIterable { case yaml, text, json }

        func validate() throws {
            if name == nil && pid == nil && socket == nil { throw ValidationError("give a VM NAME, --pid PID or --socket PATH") }
        }

        func run() async throws {
            let store = global.store
            var path = socket
            if path == nil, pid == nil, let name { path = store.layout(name).socketPath }
            let vm: ImportedVM
            do {
                vm = try await Importer.inspect(socketPath: path, pid: pid, name: name, timeout: global.deadline)
            } catch {
                Terminal.fail(error.message)
                throw ExitCode(1)
            }
            for w in vm.warnings { Terminal.error("qemuctl: warning: \(w)") }
            let yaml = vm.document.yaml()
            print(output == .json ? vm.document.json() : yaml, terminator: output == .json ? "\n" : "")
            if adopt, let domain = vm.libvirtDomain, !force {
                Terminal.fail("\(vm.name) (pid \(vm.pid)) is managed by libvirt (domain \(domain)): adopting it would give it two managers",
                              hint: "manage it with virsh, or `virsh undefine \(domain)` first; --force adopts it anyway")
                throw ExitCode(1)
            }
            guard adopt else {
                do { _ = try Importer.load(vm, yaml: yaml, store: store) } catch {
                    Terminal.error("qemuctl: warning: qemuctl could not relaunch this VM from the manifest as printed: \(error.message)")
                }
                return
            }
            do {
                _ = try Importer.adopt(vm, yaml: yaml, store: store)
            } catch {
                Terminal.fail(error.message)
                throw ExitCode(1)
            }
            Terminal.error("adopted \(vm.name) (pid \(vm.pid)) into \(store.directory); apply with this manifest manages it from now on")
        }
    }
}
