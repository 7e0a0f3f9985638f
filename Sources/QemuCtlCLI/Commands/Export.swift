import ArgumentParser
import Manifest
import KubeVirt
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl export`: the same VMs for another engine.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print manifests as objects of another VM engine.",
            discussion: """
                EXAMPLES:
                  qemuctl export kubevirt -f vms/ > kubevirt.yaml
                """,
            subcommands: [KubeVirt.self]
        )
    }
}

extension QemuCtlCommand.Export {
    /// `qemuctl export kubevirt -f PATH…`: KubeVirt VirtualMachines, for `kubectl apply -f -`.
    struct KubeVirt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kubevirt",
            abstract: "Print each manifest as a KubeVirt VirtualMachine (kubevirt.io/v1), ready for kubectl apply -f -.",
            discussion: """
                Reads manifests as validate does (invalid ones: the same diagnostics, nothing printed) and \
                prints one VirtualMachine per VM, with a dataVolumeTemplates entry for each disk with \
                create.size. Every field KubeVirt cannot express is named on standard error as \
                path:line:col with the reason; nothing is dropped silently. docs/kubevirt.md has the mapping.

                --pvc DISK=CLAIM (or VM/DISK=CLAIM) backs a disk or CD-ROM with an existing \
                PersistentVolumeClaim instead.

                Exit status: 0 printed, nothing dropped; 3 printed, some fields dropped (listed); \
                1 invalid manifests, or --strict and some field would be dropped (nothing printed); \
                2 usage error or unreadable path.

                EXAMPLES:
                  qemuctl export kubevirt -f vms/ | kubectl apply -f -
                """
        )

        /// Output formats.
        enum Output: String, ExpressibleByArgument, CaseIterable {
            case yaml, json
        }

        @Option(name: .shortAndLong, help: "A manifest file, a directory, or - for standard input (repeatable).", completion: .file(extensions: ["yaml", "yml"]))
        var file: [String] = []

        @Option(help: "metadata.namespace of every object (default: kubectl's current namespace).")
        var namespace: String?

        @Option(name: .shortAndLong, help: "Output format: yaml or json.")
        var output: Output = .yaml

        @OptionGroup var verbosity: VerbosityOption

        @Flag(help: "Fail (exit 1, print nothing) when any field has no KubeVirt equivalent.")
        var strict = false

        @Option(help: ArgumentHelp("Back a disk or CD-ROM with an existing PersistentVolumeClaim (repeatable).",
                                   valueName: "[VM/]DISK=CLAIM"))
        var pvc: [String] = []

        @Flag(help: "Print the field-by-field mapping table (Markdown) and exit.")
        var mapping = false

        func validate() throws {
            if mapping { return }
            if file.isEmpty { throw ValidationError("give at least one -f PATH") }
            if let namespace, !StringFormat.name.accepts(namespace) {
                throw ValidationError("--namespace '\(namespace)' is not a Kubernetes namespace name (\(StringFormat.name.summary))")
            }
            _ = try claims()
        }

        /// `--pvc` as a map from `DISK` or `VM/DISK` to the claim.
        func claims() throws -> [String: String] {
            var out: [String: String] = [:]
            for item in pvc {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2 else { throw ValidationError("--pvc '\(item)': expected [VM/]DISK=CLAIM") }
                let drive = parts[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard (1...2).contains(drive.count), drive.allSatisfy({ StringFormat.name.accepts($0) }) else {
                    throw ValidationError("--pvc '\(item)': '\(parts[0])' is not a drive name or VM/drive")
                }
                guard Self.isSubdomain(parts[1]) else {
                    throw ValidationError("--pvc '\(item)': '\(parts[1])' is not a claim name (a DNS subdomain: lower-case letters, digits, '-' and '.')")
                }
                guard out.updateValue(parts[1], forKey: parts[0]) == nil else {
                    throw ValidationError("--pvc '\(parts[0])' is given twice")
                }
            }
            return out
        }

        /// A Kubernetes object name: a DNS subdomain of at most 253 characters.
        static func isSubdomain(_ s: String) -> Bool {
            s.utf8.count <= 253 && !s.isEmpty && s.split(separator: ".", omittingEmptySubsequences: false)
                .allSatisfy { StringFormat.name.accepts(String($0)) }
        }

        func run() throws {
            if mapping {
                print(KubeVirtMapping.markdown(), terminator: "")
                return
            }
            // Host files as validate sees them, so that invalid manifests get the same report;
            // a valid set's missing images are not the cluster's concern and are not printed.
            var loader = ManifestLoader(hostFiles: .warn)
            loader.keepsSourceText = true
            let set = loader.load(paths: file)
            if set.hasErrors {
                // What validate prints for the same files.
                for d in set.diagnostics { Terminal.error(d.description) }
                let errors = set.diagnostics.filter { $0.severity == .error }.count
                Terminal.error("\(errors) error\(errors == 1 ? "" : "s") in \(file.joined(separator: " "))")
                throw ExitCode(set.hasUnreadablePaths ? 2 : 1)
            }
            for d in set.diagnostics where d.code != .hostFile { Terminal.error(d.description) }
            Verbosity.say("read \(file.joined(separator: " ")): \(set.virtualMachines.count) VM(s); exporting each as a KubeVirt VirtualMachine")

            let options = KubeVirtExport.Options(namespace: namespace, claims: try claims())
            let maps = ManifestSourceMap.byVirtualMachine(in: set)
            let results = set.virtualMachines.map { KubeVirtExport.export($0, sourceMap: maps[$0.name], options: options) }

            let used = results.reduce(into: Set<String>()) { $0.formUnion($1.usedClaims) }
            if let unused = options.claims.keys.sorted().first(where: { !used.contains($0) }) {
                Terminal.fail("--pvc \(unused)=\(options.claims[unused]!): no VM has a disk or CD-ROM '\(unused)'",
                              hint: "name a drive of the manifests, or VM/DRIVE")
                throw ExitCode(2)
            }

            // Generated names are VM-DRIVE: `a-b` + `c` and `a` + `b-c` would share one volume.
            var owners: [String: String] = [:]
            for r in results {
                for name in r.generatedNames {
                    if let other = owners.updateValue(r.name, forKey: name), other != r.name {
                        Terminal.fail("VMs '\(other)' and '\(r.name)' both need a volume named '\(name)'; nothing printed",
                                      hint: "back one of the drives with a claim: --pvc VM/DRIVE=CLAIM")
                        throw ExitCode(1)
                    }
                }
            }

            let dropped = results.flatMap(\.dropped).enumerated()
                .sorted { ($0.element.location, $0.offset) < ($1.element.location, $1.offset) }.map(\.element)
            let severity = strict ? "error" : "warning"
            for d in dropped {
                Terminal.error("\(d.location): \(severity): \(d.path) of VM '\(d.vm)' is dropped: \(d.reason)")
            }
            if !dropped.isEmpty {
                let vms = Set(dropped.map(\.vm)).count
                let what = "\(dropped.count) field\(dropped.count == 1 ? "" : "s") of \(vms) VM\(vms == 1 ? "" : "s") \(dropped.count == 1 ? "has" : "have") no KubeVirt equivalent"
                if strict {
                    Terminal.fail("\(what); nothing printed (--strict)", hint: "see docs/kubevirt.md for each field's mapping")
                    throw ExitCode(1)
                }
                Terminal.warn("\(what) and \(dropped.count == 1 ? "was" : "were") dropped (listed above; docs/kubevirt.md)")
            }

            switch output {
            case .yaml:
                print(results.map { $0.document.yaml() }.joined(separator: "---\n"), terminator: "")
            case .json:
                let document: ManifestDocument = results.count == 1 ? results[0].document : .map([
                    ("apiVersion", .string("v1")), ("kind", .string("List")), ("items", .list(results.map(\.document))),
                ])
                print(document.json())
            }
            if !dropped.isEmpty { throw ExitCode(3) }
        }
    }
}
