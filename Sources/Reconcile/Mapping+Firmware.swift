package import Manifest
import QemuCtl

// MARK: - EFI firmware mapping

extension VMConfigMapping {
    /// The firmware descriptor directories the mapping reads (general to specific); `nil` (the default)
    /// means the host's (``FirmwareDiscovery/searchDirectories(environment:)``). Tests bind fixtures here.
    @TaskLocal package static var firmwareDirectories: [String]? = nil

    /// The firmware discovery the mapping uses: ``firmwareDirectories`` read now.
    static func firmwareDiscovery() -> FirmwareDiscovery {
        FirmwareDiscovery(directories: firmwareDirectories ?? FirmwareDiscovery.searchDirectories())
    }

    /// Warnings for `qemuctl validate` about a VM's EFI firmware that only the host can tell: no
    /// installed descriptor offers the firmware the manifest asks for, or a `vars` file that does not exist
    /// has no template to be created from. Both would stop `apply`; like other missing host files they are
    /// warnings, as the host may still change before then.
    package static func firmwareWarnings(_ vm: VirtualMachine) -> [ManifestDiagnostic] {
        let f = vm.spec.firmware
        guard f.type == .efi else { return [] }
        let request = firmwareRequest(vm)
        // Secure Boot outside q35 is already an error of the manifest: no second word about it.
        if f.secureBoot && !(request.machineType == "q35" || request.machineType.hasPrefix("pc-q35-")) { return [] }
        let discovery = firmwareDiscovery()
        let arch = request.architecture
        var out: [ManifestDiagnostic] = []
        var template: String?
        if let code = f.code {
            template = discovery.template(forCode: code, architecture: arch)
        } else {
            do {
                template = try discovery.select(request).flash?.nvramTemplate
            } catch {
                out.append(ManifestDiagnostic(.warning, code: .hostFile, at: vm.source,
                                              "VM '\(vm.name)': spec.firmware.code is not given and \(error.message)",
                                              hint: "or give spec.firmware.code and spec.firmware.vars"))
                return out
            }
        }
        if let vars = f.vars, template == nil, !Posix.fileExists(vars) {
            out.append(ManifestDiagnostic(
                .warning, code: .hostFile, at: vm.source,
                "VM '\(vm.name)': firmware vars '\(vars)' does not exist and no firmware descriptor names a variable "
                    + "template for code '\(f.code ?? "?")' to create it from",
                hint: "create it before 'apply': a copy of the VARS image that goes with this code"))
        }
        return out
    }

    /// What the manifest asks of its firmware, for ``FirmwareDiscovery/select(_:)``.
    static func firmwareRequest(_ vm: VirtualMachine) -> FirmwareRequest {
        let arch = Mapper.qemuArch(vm)
        return FirmwareRequest(architecture: arch, machineType: vm.spec.machine.type ?? arch.defaultMachineType ?? "",
                               secureBoot: vm.spec.firmware.secureBoot)
    }
}

extension Mapper {
    /// The QemuCtl architecture of `vm`'s manifest (``Mapper/arch(_:)`` without a mapping under way).
    static func qemuArch(_ vm: VirtualMachine) -> QEMUArch {
        Mapper(vm: vm, runtimeDirectory: "").arch(vm.spec.arch)
    }

    /// `spec.firmware` with `type: efi`: the code image (given, or chosen from the host's firmware
    /// descriptors), the VM's own variable store (given, or ``Firmware/defaultVariableStorePath(vmName:socketDirectory:)``)
    /// and the template the store is created from at the first launch.
    ///
    /// Reads the firmware descriptors (the one place the mapping looks at the host). With `code` but no
    /// `vars`, a default store that does not exist and has no template is a problem: there would be no
    /// variable store to give QEMU.
    mutating func efiFirmware(_ f: Spec.Firmware, socketDirectory: String?) -> Firmware? {
        let discovery = VMConfigMapping.firmwareDiscovery()
        let arch = Mapper.qemuArch(vm)
        let vars = f.vars ?? Firmware.defaultVariableStorePath(vmName: vm.name, socketDirectory: socketDirectory)
        guard let code = f.code else {
            do {
                return try discovery.firmware(for: VMConfigMapping.firmwareRequest(vm), vars: vars)
            } catch {
                problem("spec.firmware.code", "is not given and \(error.message); or give code and vars")
                return nil
            }
        }
        let template = discovery.template(forCode: code, architecture: arch)
        // A vars file the manifest names is checked when QEMU starts (Firmware.prepareVariableStore), like a
        // disk image, and `validate` warns about it; the default one must be creatable now.
        if f.vars == nil && template == nil && !Posix.fileExists(vars) {
            problem("spec.firmware.vars",
                    "is not given and no firmware descriptor names a variable template for \(code) to create this VM's "
                        + "store (\(vars)) from; give vars (an existing file, this VM's own)")
        }
        return Firmware(code: code, vars: vars, varsTemplate: template, secureBoot: f.secureBoot)
    }
}

// MARK: - Firmware facts for describe

/// The EFI firmware of a managed VM as `qemuctl describe` shows it.
package struct FirmwareFacts: Sendable, Equatable {
    /// The code image.
    package var code: String?
    /// The VM's variable store.
    package var vars: String?
    /// Whether Secure Boot is on.
    package var secureBoot: Bool
    /// Where ``code`` and ``vars`` were read: `qemu command line` (the running QEMU's) or
    /// `record + firmware descriptors` (the recorded spec mapped again, for a VM that does not run).
    package var source: String

    /// The firmware of VM `vm` (its recorded spec), or `nil` for BIOS.
    ///
    /// - Parameters:
    ///   - vm: The VM as recorded.
    ///   - pid: Its QEMU's pid when it runs: the paths are then read from that QEMU's command line
    ///     (the `-blockdev` nodes `efi-code-file` and `efi-vars-file`), which is what it really uses.
    ///   - socketDirectory: The state directory (for the default variable store path).
    package init?(_ vm: VirtualMachine, pid: Int32?, socketDirectory: String) {
        guard vm.spec.firmware.type == .efi else { return nil }
        secureBoot = vm.spec.firmware.secureBoot
        if let pid, let argv = Posix.commandLine(of: pid) {
            let files = QEMUCommandLineReader(arguments: argv).blockdevFiles
            if files["efi-code-file"] != nil {
                code = files["efi-code-file"]
                vars = files["efi-vars-file"]
                source = "qemu command line"
                return
            }
        }
        var m = Mapper(vm: vm, runtimeDirectory: socketDirectory + "/" + vm.name)
        let fw = m.efiFirmware(vm.spec.firmware, socketDirectory: socketDirectory)
        code = fw?.code
        vars = fw?.vars
        source = "record + firmware descriptors"
    }
}
