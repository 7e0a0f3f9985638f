import ArgumentParser
import Manifest
import QMP
import Reconcile

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension QemuCtlCommand {
    /// `qemuctl validate -f PATH…`: checks manifests statically, touching nothing on the host.
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check manifests without QEMU and without touching the host.",
            discussion: """
                Reads every manifest under the given paths (files; directories, recursively, \
                every *.yaml and *.yml; - for standard input) and reports every problem as \
                path:line:col: error: message. Host files that do not exist yet (kernels, \
                images, secret files) are warnings.

                Exit status: 0 all manifests are valid, 1 some manifest is invalid, \
                2 usage error or unreadable path.

                EXAMPLES:
                  qemuctl validate -f vms/
                  qemuctl validate -f vms/web.yaml -o json
                  cat web.yaml | qemuctl validate -f -
                """
        )

        @Option(name: .shortAndLong, help: "A manifest file, a directory, or - for standard input (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Option(name: .shortAndLong, help: "Output format: text, json or yaml.")
        var output: TextOutputFormat = .text

        @Flag(help: "The same as -o json.")
        var json = false

        @OptionGroup var verbosity: VerbosityOption

        func run() throws {
            guard !file.isEmpty else {
                printError("qemuctl: error: give at least one -f PATH")
                printError("hint: a manifest file, a directory (searched for *.yaml and *.yml), or - for standard input")
                throw ExitCode(2)
            }
            var loader = ManifestLoader(hostFiles: .warn)
            loader.keepsSourceText = true
            var set = loader.load(paths: file)
            // The process ends right after this command: the set (every VM of a big fleet) is left to
            // exit rather than freed object by object.
            defer { _ = Unmanaged.passRetained(KeptUntilExit(set)) }
            // EFI firmware that only the host's firmware descriptors can tell about (Mapping+Firmware.swift).
            set.diagnostics += set.virtualMachines.flatMap(VMConfigMapping.firmwareWarnings)
            // Existing images as the launch would refuse them (backing files), at the field that declares them.
            var maps: [String: ManifestSourceMap]? = nil
            var imageErrors: [ManifestDiagnostic] = []
            for vm in set.virtualMachines where vm.spec.disks.contains(where: { if case .file = $0.backend { true } else { false } }) {
                imageErrors += VMConfigMapping.imageErrors(vm) { [set] field in
                    if maps == nil { maps = ManifestSourceMap.byVirtualMachine(in: set) }
                    return maps?[vm.name]?.nearest(field) ?? vm.source
                }
            }
            set.diagnostics += imageErrors
            // An image two VMs write, and a QEMU that is not installed (a warning here, as missing host files are).
            set.diagnostics += HostChecks.diagnostics(set.virtualMachines, missingQEMU: .warning)
            Verbosity.say("read \(file.joined(separator: " ")): \(set.virtualMachines.count) VM(s), "
                          + "\(set.diagnostics.count(where: { $0.severity == .error })) error(s), "
                          + "\(set.diagnostics.count(where: { $0.severity == .warning })) warning(s); "
                          + "checked images shared between VMs and each architecture's QEMU")
            switch json ? .json : output {
            case .json:
                print(set.jsonReport(), terminator: "")
            case .yaml:
                // The same report as the JSON, keys and values, in YAML.
                let report = set.jsonReport()
                print(StructuredOutput.yaml((try? JSONValue(parsing: report)) ?? .string(report)), terminator: "")
            case .text:
                for d in set.diagnostics { printError(d.description) }
                if !set.hasErrors {
                    // One write per 64 KiB of lines, not one stdio call per VM.
                    var lines: [UInt8] = []
                    lines.reserveCapacity((1 << 16) + 4096)
                    for i in set.virtualMachines.indices {
                        set.virtualMachines[i].appendSummary(to: &lines)
                        lines.append(UInt8(ascii: "\n"))
                        if lines.count >= 1 << 16 {
                            writeAll(1, lines)
                            lines.removeAll(keepingCapacity: true)
                        }
                    }
                    writeAll(1, lines)
                } else {
                    let errors = set.diagnostics.filter { $0.severity == .error }.count
                    printError("\(errors) error\(errors == 1 ? "" : "s") in \(file.joined(separator: " "))")
                }
            }
            if set.hasUnreadablePaths { throw ExitCode(2) }
            if set.hasErrors { throw ExitCode(1) }
        }
    }
}

/// Holds a value that is never freed (``Validate`` keeps its result until the process exits).
private final class KeptUntilExit<Value> {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Writes one line to standard error.
private func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { writeAll(2, $0) }
}

/// Writes all of `bytes` to file descriptor `fd` (retrying short writes and EINTR; stops at another error).
private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBufferPointer { writeAll(fd, $0) }
}

/// Writes all of `buffer` to file descriptor `fd` (retrying short writes and EINTR; stops at another error).
private func writeAll(_ fd: Int32, _ buffer: UnsafeBufferPointer<UInt8>) {
    var offset = 0
    while offset < buffer.count {
        let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        offset += n
    }
}
