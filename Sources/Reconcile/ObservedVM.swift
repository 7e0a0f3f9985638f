package import Manifest

// MARK: - ObservedVM

/// What observation found for one VM on this host: the planner's view of the *actual* state.
///
/// Observation (QMP plus the launch record) fills one value per VM it finds in the state
/// directory; the planner never does I/O and reads nothing else. The value has three layers:
///
/// - identity and health: ``name``, ``ownership``, ``liveness``;
/// - ``record``: what qemuctl wrote when it launched the VM (the spec, the uuid, the secret
///   markers it set), amended by `apply` after each live change that QMP cannot read back;
/// - ``live``: values read from the running QEMU over QMP, which win over the record for the
///   fields they cover, so out-of-band changes show up as drift.
///
/// - Important: keep volatile data (pids, uptimes, timestamps) out of this type: a plan's
///   ``StateFingerprint`` hashes every field, and a value that changes by itself makes every
///   saved plan stale.
///
/// ```swift
/// let vm = ObservedVM(
///     name: "web-1", liveness: .alive,
///     record: LaunchRecord(uuid: uuid, spec: launchedSpec),
///     live: LiveState(matching: launchedSpec, runStatus: .running, freeHotplugPorts: 4))
/// ```
package struct ObservedVM: Sendable, Hashable, Codable {
    /// Whether the VM's QEMU is there and answering.
    package enum Liveness: String, Sendable, Hashable, Codable, CaseIterable {
        /// The recorded pid is live, is the QEMU it should be, and QMP answered within its deadline.
        case alive
        /// No such process (never started, shut down, crashed or killed); runtime files may remain.
        case gone
        /// The process is there but QMP did not answer within its deadline. Never launched again.
        case unresponsive
    }

    /// Who manages the VM.
    package enum Ownership: String, Sendable, Hashable, Codable, CaseIterable {
        /// qemuctl launched (or imported) it and keeps its launch record: it may be changed or pruned.
        case managed
        /// A QEMU on the same socket that qemuctl did not launch: never changed, never deleted.
        case foreign
    }

    /// The VM's name (`metadata.name`; also its socket's base name).
    package var name: String
    /// Who manages it; only ``Ownership/managed`` VMs are ever deleted.
    package var ownership: Ownership
    /// Whether its QEMU runs and answers.
    package var liveness: Liveness
    /// Why the VM is ``Liveness/unresponsive`` or ``Liveness/gone`` ("QMP did not answer within 2s"),
    /// for messages; nil when there is nothing to say.
    package var detail: String?
    /// The launch record; nil when there is none (a foreign VM, or a record that could not be read).
    package var record: LaunchRecord?
    /// Values read over QMP; nil unless ``liveness`` is ``Liveness/alive``.
    package var live: LiveState?
    /// Whether the record says a restart is pending (set by an earlier `apply --restart=never`).
    ///
    /// The planner does not trust this flag: it recomputes the need for a restart from the
    /// manifest and ``record``, and reports ``VMPlan/pendingRestartCleared`` when the flag
    /// should be dropped. It is here for `get` and `describe`.
    package var restartPending: Bool
    /// For an ``Liveness/unresponsive`` VM: `true` when the kernel shows another client holding its
    /// monitor (QEMU serves one at a time), so QEMU is busy rather than hung; nil otherwise.
    package var monitorBusy: Bool? = nil

    /// Creates an observation.
    package init(
        name: String, ownership: Ownership = .managed, liveness: Liveness, detail: String? = nil,
        record: LaunchRecord? = nil, live: LiveState? = nil, restartPending: Bool = false
    ) {
        self.name = name
        self.ownership = ownership
        self.liveness = liveness
        self.detail = detail
        self.record = record
        self.live = live
        self.restartPending = restartPending
    }
}

// MARK: - LaunchRecord

/// What qemuctl recorded about a VM it launched: the part of the actual state QMP cannot report.
///
/// `apply` writes it at launch and amends it after live changes that cannot be read back
/// (hot-plugged devices' specs, passwords' ``SecretMarker``s, labels). It must **not** fold
/// restart-class fields into it while a restart is pending: comparing the manifest with this
/// spec is how a reverted manifest clears a pending restart.
package struct LaunchRecord: Sendable, Hashable, Codable {
    /// The VM's SMBIOS uuid, chosen at first launch and kept across restarts.
    package var uuid: String
    /// `metadata.labels` as last applied.
    package var labels: [String: String]
    /// The spec the VM was launched with, amended by live changes.
    package var spec: VirtualMachineSpec
    /// Markers of the secrets last set on the VM, by field path
    /// (`spec.display.vnc.passwordFrom`). Never the secrets themselves.
    package var secrets: [String: SecretMarker]
    /// vCPUs at launch (``spec`` follows live changes; this does not). `nil` in records written
    /// before it existed: then ``spec`` is taken as the launch value.
    package var bootCPUCount: Int?
    /// Guest RAM at launch, in bytes; see ``bootCPUCount``.
    package var bootMemorySize: UInt64?
    /// The ``ApplySet`` id of the manifests that last applied the VM; `nil` in records written
    /// before sets existed and for adopted VMs (never pruned; see ``ApplySet``).
    package var applySet: String? = nil
    /// The root-bus PCI slot of each device at its last launch, by QEMU device id (`net-lan`):
    /// the next launch keeps them (``VMConfig/pciSlotHints``), so a device keeps its slot and the
    /// guest its name for it. `nil` in records written before it existed or on boards where QEMU
    /// places devices itself.
    package var pciSlots: [String: Int]?

    /// Creates a record; the boot values default to `spec`'s.
    package init(
        uuid: String, labels: [String: String] = [:], spec: VirtualMachineSpec,
        secrets: [String: SecretMarker] = [:]
    ) {
        self.uuid = uuid
        self.labels = labels
        self.spec = spec
        self.secrets = secrets
        self.bootCPUCount = spec.cpu.count
        self.bootMemorySize = spec.memory.size
    }

    /// Whether `uuid` is the nil uuid (all zeros), which QEMU reports when started without
    /// `-uuid`: an adopted VM keeps it until qemuctl relaunches it with a uuid of its own.
    package static func isNilUUID(_ uuid: String) -> Bool {
        !uuid.isEmpty && uuid.allSatisfy { $0 == "0" || $0 == "-" }
    }

    /// The launch value of a field that grows live up to a bound, when the record knows it.
    func bootValue(_ path: String) -> UInt64? {
        switch path {
        case "spec.cpu.count": bootCPUCount.map { UInt64($0) }
        case "spec.memory.size": bootMemorySize
        default: nil
        }
    }
}

// MARK: - SecretMarker

/// An opaque token that identifies a secret's value without revealing it.
///
/// Observation and `apply` derive it the same way from the secret's bytes, for example an
/// HMAC-SHA-256 under a per-state-directory key, or `gen-7` for "the 7th value set". A plain
/// unsalted hash of a short password is *not* acceptable: it can be reversed by brute force.
/// The planner only compares markers for equality and never prints them.
package struct SecretMarker: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The token.
    package var rawValue: String

    /// Wraps a token.
    package init(_ rawValue: String) { self.rawValue = rawValue }

    /// Always `(sensitive)`, so a marker interpolated into a message reveals nothing.
    package var description: String { "(sensitive)" }

    /// Encodes as a bare string.
    package init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Encodes as a bare string.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

// MARK: - QMPRunStatus

/// The run state QEMU reports in `query-status` (`status`), an open vocabulary.
package struct QMPRunStatus: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    /// QEMU's word (`running`, `guest-panicked`).
    package var rawValue: String

    /// Wraps QEMU's word.
    package init(rawValue: String) { self.rawValue = rawValue }

    /// The guest runs.
    package static let running = QMPRunStatus(rawValue: "running")
    /// Stopped by `stop` (or a paused launch after `cont` was withheld).
    package static let paused = QMPRunStatus(rawValue: "paused")
    /// Started with `-S`; never resumed.
    package static let prelaunch = QMPRunStatus(rawValue: "prelaunch")
    /// The guest powered off and QEMU stayed (`-no-shutdown`).
    package static let shutdown = QMPRunStatus(rawValue: "shutdown")
    /// The guest panicked (pvpanic).
    package static let guestPanicked = QMPRunStatus(rawValue: "guest-panicked")
    /// The guest is suspended to RAM (S3).
    package static let suspended = QMPRunStatus(rawValue: "suspended")
    /// Stopped on an I/O error (`werror=stop`).
    package static let ioError = QMPRunStatus(rawValue: "io-error")
    /// Stopped by an internal error (KVM).
    package static let internalError = QMPRunStatus(rawValue: "internal-error")
    /// Stopped by the watchdog.
    package static let watchdog = QMPRunStatus(rawValue: "watchdog")
    /// Stopped by the debugger.
    package static let debug = QMPRunStatus(rawValue: "debug")
    /// Waiting for an incoming migration.
    package static let inmigrate = QMPRunStatus(rawValue: "inmigrate")
    /// Stopped after an outgoing migration.
    package static let postmigrate = QMPRunStatus(rawValue: "postmigrate")

    /// QEMU's word.
    package var description: String { rawValue }

    /// Whether this status satisfies a desired `runState` of a live VM.
    ///
    /// `running` is satisfied only by `running`; `paused` by `paused` and `prelaunch`
    /// (both have the vCPUs stopped with the guest intact). `stopped` is never satisfied
    /// by a live QEMU.
    package func satisfies(_ desired: RunState) -> Bool {
        switch desired {
        case .running: self == .running
        case .paused: self == .paused || self == .prelaunch
        case .stopped: false
        }
    }

    /// Whether the guest is dead inside a live QEMU, so resuming it needs `system_reset` first.
    package var needsReset: Bool {
        self == .shutdown || self == .guestPanicked || self == .internalError
    }

    /// Encodes as a bare string.
    package init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Encodes as a bare string.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

// MARK: - LiveState

/// Values read from a running QEMU over QMP, which may have drifted from the record.
///
/// An optional list (``disks``, ``cdroms``, ``nics``) that is nil means "not read": the planner
/// then trusts the record for it. A list that is read holds every device QEMU has, hot-plugged
/// or not, so a device added or removed out of band shows up.
package struct LiveState: Sendable, Hashable, Codable {
    /// `query-status`, with QEMU's `prelaunch` (started with `-S`, never resumed) reported as
    /// ``QMPRunStatus/paused``: both have the vCPUs stopped with the guest intact.
    package var runStatus: QMPRunStatus
    /// vCPUs present (`query-cpus-fast` count); nil when not read.
    package var cpuCount: Int?
    /// RAM in bytes, boot plus hot-plugged (`query-memory-size-summary`); nil when not read.
    package var memorySize: UInt64?
    /// Block devices other than CD-ROMs (`query-block`), by the manifest's disk name.
    package var disks: [ObservedDisk]?
    /// CD-ROM drives and their media (`query-block`, removable devices).
    package var cdroms: [ObservedCDROM]?
    /// NICs and their link state (`query-rx-filter`/qom `netdev`), by the manifest's NIC name.
    package var nics: [ObservedNIC]?
    /// Empty `pcie-root-port`s left for hot-plug (q35); nil when not a PCIe machine or unknown.
    package var freeHotplugPorts: Int?
    /// The sizes of the hot-plugged DIMMs (`query-memory-devices`), read with ``memorySize``; a
    /// shrink is live only when whole DIMMs make up the difference.
    package var dimmSizes: [UInt64]?

    /// Creates live values.
    package init(
        runStatus: QMPRunStatus, cpuCount: Int? = nil, memorySize: UInt64? = nil, disks: [ObservedDisk]? = nil,
        cdroms: [ObservedCDROM]? = nil, nics: [ObservedNIC]? = nil, freeHotplugPorts: Int? = nil,
        dimmSizes: [UInt64]? = nil
    ) {
        self.dimmSizes = dimmSizes
        self.runStatus = runStatus
        self.cpuCount = cpuCount
        self.memorySize = memorySize
        self.disks = disks
        self.cdroms = cdroms
        self.nics = nics
        self.freeHotplugPorts = freeHotplugPorts
    }

    /// Live values exactly as `spec` says, as observation would read them from a VM launched
    /// with it and never touched: every list filled, nothing hot-plugged.
    package init(matching spec: VirtualMachineSpec, runStatus: QMPRunStatus = .running, freeHotplugPorts: Int? = nil) {
        self.init(
            runStatus: runStatus, cpuCount: spec.cpu.count, memorySize: spec.memory.size,
            disks: spec.disks.map { ObservedDisk(name: $0.name, throttle: $0.throttle) },
            cdroms: spec.cdroms.map { ObservedCDROM(name: $0.name, media: $0.path) },
            nics: spec.networks.map { ObservedNIC(name: $0.name, link: $0.link) },
            freeHotplugPorts: freeHotplugPorts)
    }
}

/// One block device as QMP reports it.
package struct ObservedDisk: Sendable, Hashable, Codable {
    /// The manifest's disk name (the qdev id qemuctl gave it).
    package var name: String
    /// I/O limits in force; nil (or all fields nil) when there are none.
    /// Observation maps QEMU's `0` ("no limit") to nil.
    package var throttle: VirtualMachineSpec.Disk.Throttle?
    /// Whether qemuctl hot-plugged it into a root port (so it can be unplugged live).
    package var hotplugged: Bool

    /// Creates a disk observation.
    package init(name: String, throttle: VirtualMachineSpec.Disk.Throttle? = nil, hotplugged: Bool = false) {
        self.name = name
        self.throttle = throttle
        self.hotplugged = hotplugged
    }
}

/// One CD-ROM drive as QMP reports it.
package struct ObservedCDROM: Sendable, Hashable, Codable {
    /// The manifest's CD-ROM name.
    package var name: String
    /// The image inserted (absolute path); nil when the drive is empty.
    package var media: String?

    /// Creates a CD-ROM observation.
    package init(name: String, media: String? = nil) {
        self.name = name
        self.media = media
    }
}

/// One NIC as QMP reports it.
package struct ObservedNIC: Sendable, Hashable, Codable {
    /// The manifest's NIC name.
    package var name: String
    /// Carrier state (`set_link`).
    package var link: VirtualMachineSpec.Network.Link
    /// Whether qemuctl hot-plugged it into a root port (so it can be unplugged live).
    package var hotplugged: Bool

    /// Creates a NIC observation.
    package init(name: String, link: VirtualMachineSpec.Network.Link = .up, hotplugged: Bool = false) {
        self.name = name
        self.link = link
        self.hotplugged = hotplugged
    }
}
