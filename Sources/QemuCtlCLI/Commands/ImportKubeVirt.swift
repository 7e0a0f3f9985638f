import ArgumentParser
import Manifest
import KubeVirt
import Reconcile

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension QemuCtlCommand.Import {
    /// `qemuctl import kubevirt -f FILE…`: KubeVirt VirtualMachines as manifests.
    struct KubeVirt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kubevirt",
            abstract: "Print KubeVirt VirtualMachines (kubevirt.io/v1, YAML or JSON) as qemuctl manifests.",
            discussion: """
                The reverse of export kubevirt, for moving VMs back to one host or trying a cluster's \
                VM on one. Every field of the object that has no qemuctl equivalent is named on standard \
                error as path:line:col with the reason. Storage does not come over: each disk becomes \
                the image file images/VM-DISK.qcow2 beside the manifest (created empty with the \
                DataVolume's size when it has one), and CD-ROMs come over empty.

                Exit status: 0 printed, nothing dropped; 3 printed, some fields dropped; 1 not a \
                KubeVirt VirtualMachine, or --strict and some field would be dropped (nothing \
                printed); 2 usage error or unreadable file.

                EXAMPLES:
                  kubectl get vm web -o yaml | qemuctl import kubevirt -f - > vms/web.yaml
                """
        )

        @Option(name: .shortAndLong, help: "A file holding VirtualMachines (YAML or JSON), or - for standard input (repeatable).")
        var file: [String] = []

        @OptionGroup var verbosity: VerbosityOption

        @Flag(help: "Fail (exit 1, print nothing) when any field has no qemuctl equivalent.")
        var strict = false

        func validate() throws {
            if file.isEmpty { throw ValidationError("give at least one -f FILE") }
        }

        func run() throws {
            var results: [KubeVirtImport.Result] = []
            var errors: [ManifestDiagnostic] = []
            for path in file {
                guard let bytes = Self.contents(of: path) else {
                    Terminal.fail("cannot read '\(path)': \(String(cString: strerror(errno)))")
                    throw ExitCode(2)
                }
                let read = KubeVirtImport.read(bytes, file: path)
                results += read.results
                errors += read.errors
            }
            if !errors.isEmpty {
                for e in errors.sorted(by: ManifestDiagnostic.reportOrder) { Terminal.error(e.description) }
                throw ExitCode(1)
            }
            if results.isEmpty {
                Terminal.fail("no VirtualMachine in \(file.joined(separator: " "))")
                throw ExitCode(1)
            }
            Verbosity.say("read \(file.joined(separator: " ")): \(results.count) VirtualMachine(s); checking the manifests made from them as validate does")
            let yaml = results.map { $0.document.yaml() }.joined(separator: "---\n")
            // What is printed must be a valid manifest set: check it as validate would.
            let check = ManifestLoader().load(bytes: Array(yaml.utf8), file: "imported", baseDirectory: "/")
            if check.hasErrors {
                Terminal.fail("the manifests made from \(file.joined(separator: " ")) do not validate (a bug in import kubevirt):")
                for d in check.diagnostics { Terminal.error("  \(d)") }
                throw ExitCode(1)
            }
            let dropped = results.flatMap(\.dropped).enumerated()
                .sorted { ($0.element.location, $0.offset) < ($1.element.location, $1.offset) }.map(\.element)
            let severity = strict ? "error" : "warning"
            for d in dropped {
                Terminal.error("\(d.location): \(severity): \(d.path) of VM '\(d.vm)' is dropped: \(d.reason)")
            }
            if !dropped.isEmpty {
                let what = "\(dropped.count) field\(dropped.count == 1 ? "" : "s") \(dropped.count == 1 ? "has" : "have") no qemuctl equivalent"
                if strict {
                    Terminal.fail("\(what); nothing printed (--strict)")
                    throw ExitCode(1)
                }
                Terminal.warn("\(what) and \(dropped.count == 1 ? "was" : "were") dropped (listed above)")
            }
            print(yaml, terminator: "")
            if !dropped.isEmpty { throw ExitCode(3) }
        }

        /// The bytes of `path` (`-`: standard input), or nil with errno set.
        static func contents(of path: String) -> [UInt8]? {
            let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { if fd != 0 { close(fd) } }
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n < 0 { return nil }
                if n == 0 { return out }
                out += buffer[0..<n]
            }
        }
    }
}
