package import Manifest
package import QemuCtl

// MARK: - MappingError

/// The error thrown when a manifest's spec cannot become a QemuCtl ``VMConfig``: it lists every problem,
/// each naming the manifest field it is about (`spec.memory.size`, `spec.disks[1].nbd.tls`).
///
/// Problems come from three places: values the QEMU configuration cannot express exactly (a memory size that is
/// not a whole MiB), manifest features QemuCtl has no counterpart for (`spec.rng`, `spec.audio`), and the
/// library's own validation (``VMConfig/problems()``), whose field paths are translated back to manifest paths.
package struct MappingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One problem with one manifest field.
    package struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The manifest field path, e.g. `spec.disks[2].file.path` or `metadata.name`.
        package var field: String
        /// What is wrong, in a sentence fragment; never contains a secret value.
        package var message: String

        /// Creates a problem.
        package init(field: String, message: String) {
            self.field = field
            self.message = message
        }

        /// `field: message`.
        package var description: String { "\(field): \(message)" }
    }

    /// The VM (`metadata.name`).
    package var vmName: String
    /// Where the VM's manifest is, for messages that point at it.
    package var source: SourceLocation?
    /// Every problem, in field order as the mapping visits them.
    package var problems: [Problem]

    /// Creates an error.
    package init(vmName: String, source: SourceLocation? = nil, problems: [Problem]) {
        self.vmName = vmName
        self.source = source
        self.problems = problems
    }

    /// A summary line (with the manifest location when known), then one indented line per problem.
    package var description: String {
        let prefix = source.map { "\($0): " } ?? ""
        let count = problems.count == 1 ? "" : " (\(problems.count) problems)"
        let head = "\(prefix)error: VM '\(vmName)' cannot be mapped to a QEMU configuration\(count):"
        return ([head] + problems.map { "  \($0)" }).joined(separator: "\n")
    }

    /// The manifest field paths of all problems, in order (handy in tests and for the planner).
    package var fields: [String] { problems.map(\.field) }
}

// MARK: - VMConfigMapping

/// The one place that turns a manifest's typed spec (``VirtualMachine``) into the QEMU library's
/// configuration (``VMConfig``).
///
/// The mapping is a pure function of its inputs (plus ``RuntimeLayout/defaultSocketDirectory`` when no socket
/// directory is given): no file is read, nothing is probed, except for `firmware: {type: efi}`: QEMU's firmware
/// descriptors are read and the default variable store is looked for (see `Mapping+Firmware.swift`). It never rounds, guesses or drops: a value the
/// configuration cannot express exactly is a ``MappingError`` naming the manifest field. The result has passed
/// ``VMConfig/validate()``; ``VMConfig/commandLine(_:)`` can then only fail on resource limits (PCI slots, IDE
/// units) or a missing accelerator probe for `accel: auto`.
///
/// Lists keep the manifest's order and names: `config.disks[i]` is `spec.disks[i]` (ids `disk-NAME`),
/// `config.cdroms[i]` is `spec.cdroms[i]` (`cd-NAME`), `config.networks[i]` is `spec.networks[i]` (`net-NAME`),
/// so the apply step can take one element for a hot-plug.
///
/// Deliberately not mapped: `metadata.labels` (bookkeeping), `spec.runState` (the launcher's `-S`/`cont`),
/// `spec.disks[].create` (the apply step runs qemu-img), `spec.networks[].link` (QemuCtl has no link state at
/// launch: see ``nicsWithLinkDown(_:)``). Nothing is ever mapped to ``VMConfig/extraArgs``: no manifest value
/// may add a QEMU option.
package enum VMConfigMapping {
    /// The name of the serial port that carries the console (chardev `serial-console`, guest `ttyS0`).
    package static let consoleSerialName = "console"
    /// The console socket's file name in the VM's runtime directory (`qemuctl console` connects to it).
    package static let consoleSocketName = "console.sock"
    /// The serial log's file name in the VM's runtime directory (`spec.serial.log: true`).
    package static let serialLogName = "serial.log"
    /// The SPICE socket's file name in the VM's runtime directory (`spec.display.spice.listen: unix`).
    package static let spiceSocketName = "spice.sock"

    /// Maps a VM's manifest onto a QEMU configuration.
    ///
    /// - Parameters:
    ///   - vm: The normalized manifest (paths absolute, sizes in bytes, MACs derived).
    ///   - uuid: The VM's UUID as recorded at first launch (`-uuid`); `nil` before the first launch.
    ///   - socketDirectory: Where control sockets live (the state directory); `nil` is QemuCtl's default.
    ///   - runtimeDirectory: The VM's private 0700 directory for its console socket, serial log and SPICE
    ///     socket; `nil` derives it as QemuCtl's launcher does (``RuntimeLayout/runtimeDirectory``), which is
    ///     what ``Instance/start(_:options:)`` will use.
    /// - Returns: A configuration that passes ``VMConfig/validate()``; `noDefaults` is on, `extraArgs` empty.
    /// - Throws: ``MappingError`` listing every problem, each with its manifest field path.
    package static func config(
        for vm: VirtualMachine, uuid: String?, socketDirectory: String?, runtimeDirectory: String? = nil
    ) throws(MappingError) -> VMConfig {
        let runDir = runtimeDirectory ?? RuntimeLayout(name: vm.name, socketDirectory: socketDirectory).runtimeDirectory
        var m = Mapper(vm: vm, runtimeDirectory: runDir)
        var config = m.map(uuid: uuid, socketDirectory: socketDirectory)
        config.noDefaults = true
        config.extraArgs = []
        // The library's own rules, reported with manifest paths. Problems the mapper already reported for a
        // field (e.g. an unmappable size left at a placeholder) are not repeated.
        let reported = Set(m.problems.map(\.field))
        let configProblems = config.problems()
        // The PCI slot assignment's problems (a pinned pciAddress taken twice or not free) too, unless the
        // field has one already (out of range): they would otherwise be found only at launch.
        let pci = configProblems.isEmpty ? config.pciSlotPlan().problems : []
        for p in configProblems + pci {
            let field = FieldPaths.manifestPath(forConfigPath: p.path)
            if reported.contains(field) { continue }
            let note = field == "spec.\(p.path)" || field == p.path ? "" : " (QEMU configuration field \(p.path))"
            m.problems.append(.init(field: field, message: p.message + note))
        }
        // A file of the state directory (a record, the secret-marker key) is never a disk, whichever
        // way a plan reaches here (manifests, a saved plan, a hot-plug).
        if let socketDirectory {
            m.problems += StateStore(directory: socketDirectory).diskPathProblems(vm.spec)
        }
        if !m.problems.isEmpty {
            throw MappingError(vmName: vm.name, source: vm.source, problems: m.problems)
        }
        return config
    }

    /// The device ids (`net-NAME`) of the NICs whose manifest says `link: down`.
    ///
    /// QemuCtl's configuration has no link state: a NIC always starts with its carrier on. The launcher (or the
    /// apply step) must call QMP `set_link` with `up: false` for each of these ids after start and before
    /// `cont`.
    package static func nicsWithLinkDown(_ vm: VirtualMachine) -> [String] {
        vm.spec.networks.filter { $0.link == .down }.map { DeviceID.network($0.name).rawValue }
    }

    /// QEMU's I/O limits (as ``Instance`` reads them back) as the manifest writes them: the reverse
    /// of the mapping of `spec.disks[].throttle`; one burst length (the first set) stands for all.
    package static func manifestThrottle(_ t: Throttle?) -> VirtualMachineSpec.Disk.Throttle? {
        guard let t else { return nil }
        func v(_ x: Int?) -> UInt64? { x.flatMap { $0 > 0 ? UInt64($0) : nil } }
        var m = VirtualMachineSpec.Disk.Throttle()
        m.bps = v(t.bpsTotal); m.bpsRead = v(t.bpsRead); m.bpsWrite = v(t.bpsWrite)
        m.iops = v(t.iopsTotal); m.iopsRead = v(t.iopsRead); m.iopsWrite = v(t.iopsWrite)
        m.bpsMax = v(t.bpsTotalMax); m.bpsReadMax = v(t.bpsReadMax); m.bpsWriteMax = v(t.bpsWriteMax)
        m.iopsMax = v(t.iopsTotalMax); m.iopsReadMax = v(t.iopsReadMax); m.iopsWriteMax = v(t.iopsWriteMax)
        m.iopsSize = v(t.iopsSize)
        let lengths = [t.bpsTotalMaxLength, t.bpsReadMaxLength, t.bpsWriteMaxLength,
                       t.iopsTotalMaxLength, t.iopsReadMaxLength, t.iopsWriteMaxLength]
        m.burstLength = max(1, lengths.compactMap { $0 }.first ?? 1)
        return m
    }
}
