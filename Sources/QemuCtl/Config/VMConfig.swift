/// The complete, declarative description of one QEMU virtual machine.
///
/// There is one configuration type, not a "simple" and a "rich" one side by side (the Go seed had both, and
/// they drifted apart: different defaults, different bugs). The seed's simple config is the convenience
/// initializer ``init(name:memoryMiB:cpus:drives:nics:vnc:spice:extraArgs:noDefaults:)``: every simple field
/// maps onto exactly one rich field, so there is a single validator and a single argv builder.
///
/// A configuration is a plain value: building it touches nothing. ``problems()`` lists every problem, each
/// naming its field path (`disks[2].nbd.port`); ``commandLine(_:)`` turns a valid configuration into QEMU's
/// argv, the secret files to write and the QMP calls to make after start.
///
/// ```swift
/// var config = VMConfig(name: "web-1", memoryMiB: 1024, cpus: 2,
///                       drives: [Disk(name: "root", file: "/srv/web-1.qcow2", format: .qcow2)],
///                       nics: [Network(name: "net0", backend: .user(.init(hostForwards: [.tcp(hostPort: 2222, guestPort: 22)])))])
/// config.guestAgent = true
/// try config.validate()
/// ```
public struct VMConfig: Sendable, Codable, Equatable {
    /// The VM name: a DNS label (`[a-z0-9-]`, 1–63 characters, starting with a letter or digit, not ending with
    /// `-`), so it is safe as a file name, a QEMU option value and a host name.
    public var name: String
    /// The guest architecture, in GOARCH spelling; `nil` means the host's (see ``QEMUArch/host``).
    public var arch: QEMUArch?
    /// The QEMU binary, or a directory holding it; `nil` searches (see ``QEMUDiscovery``). Not used by the argv
    /// builder.
    public var qemuPath: String?
    /// Where the control socket goes; `nil` uses the seed's default. Not used by the argv builder: the launcher
    /// passes the resulting path in ``LaunchOptions/qmpSocketPath``.
    public var socketDirectory: String?
    /// A UUID for the VM (`-uuid`), recorded at first launch so that a live QEMU can be recognized.
    public var uuid: String?
    /// Machine type, accelerator and board options.
    public var machine: Machine
    /// CPU model, features and topology.
    public var cpu: CPU
    /// Guest RAM and its backend.
    public var memory: Memory
    /// UEFI firmware; `nil` boots the machine's default BIOS.
    public var firmware: Firmware?
    /// Boot order, menu and direct kernel boot.
    public var boot: Boot?
    /// Hard disks.
    public var disks: [Disk]
    /// CD-ROM drives, with or without media.
    public var cdroms: [CDROM]
    /// Network interfaces.
    public var networks: [Network]
    /// Remote displays (VNC, SPICE) and the video device.
    public var display: Display
    /// Serial ports, in order (`ttyS0`, `ttyS1`, …).
    public var serials: [Serial]
    /// Free-standing character devices, for use by ``virtioSerialPorts`` or ``extraArgs``.
    public var chardevs: [Chardev]
    /// Named virtio-serial ports.
    public var virtioSerialPorts: [VirtioSerialPort]
    /// A USB controller and devices; `nil` means none unless ``usbTablet`` asks for one.
    public var usb: USB?
    /// A virtio memory balloon.
    public var balloon: Balloon?
    /// The real-time clock.
    public var rtc: RTC?
    /// A virtio RNG fed from the host.
    public var rng: RNG?
    /// A sound card and its host audio backend.
    public var audio: Audio?
    /// Adds the QEMU guest agent channel (virtio-serial port `org.qemu.guest_agent.0` on a Unix socket in the
    /// runtime directory).
    public var guestAgent: Bool
    /// Adds the SPICE agent channel (`com.redhat.spice.0` on a `spicevmc` chardev). Needs SPICE.
    public var spiceAgent: Bool
    /// Adds a USB tablet (absolute pointer), and a USB controller when there is none.
    public var usbTablet: Bool
    /// Passes `-nodefaults` (default `true`): no default NIC, serial, parallel, VGA, CD-ROM or floppy.
    public var noDefaults: Bool
    /// Arguments appended verbatim after everything generated. They are the one way around the builder's
    /// guarantees, so they are passed exactly as given and never parsed.
    public var extraArgs: [String]
    /// The root-bus PCI slots devices had at an earlier launch, by device id (`net-lan`, `disk-root`,
    /// `scsi0`; see ``QEMUCommandLine/pciSlots``): a device without a fixed slot (``Disk/pciSlot``,
    /// ``Network/pciSlot``) takes its slot from here while that slot is free, so removing or adding a
    /// device does not renumber the others (the guest names NICs by slot: `enp0s6`). Not encoded:
    /// the launcher's record keeps it.
    public var pciSlotHints: [String: Int] = [:]

    /// Creates a configuration from every field; all but `name` have defaults.
    public init(
        name: String, arch: QEMUArch? = nil, qemuPath: String? = nil, socketDirectory: String? = nil,
        uuid: String? = nil, machine: Machine = Machine(), cpu: CPU = CPU(), memory: Memory = Memory(),
        firmware: Firmware? = nil, boot: Boot? = nil, disks: [Disk] = [], cdroms: [CDROM] = [],
        networks: [Network] = [], display: Display = Display(), serials: [Serial] = [],
        chardevs: [Chardev] = [], virtioSerialPorts: [VirtioSerialPort] = [], usb: USB? = nil,
        balloon: Balloon? = nil, rtc: RTC? = nil, rng: RNG? = nil, audio: Audio? = nil, guestAgent: Bool = false, spiceAgent: Bool = false,
        usbTablet: Bool = false, noDefaults: Bool = true, extraArgs: [String] = []
    ) {
        self.name = name; self.arch = arch; self.qemuPath = qemuPath; self.socketDirectory = socketDirectory
        self.uuid = uuid; self.machine = machine; self.cpu = cpu; self.memory = memory
        self.firmware = firmware; self.boot = boot; self.disks = disks; self.cdroms = cdroms
        self.networks = networks; self.display = display; self.serials = serials; self.chardevs = chardevs
        self.virtioSerialPorts = virtioSerialPorts; self.usb = usb; self.balloon = balloon; self.rtc = rtc
        self.rng = rng; self.audio = audio
        self.guestAgent = guestAgent; self.spiceAgent = spiceAgent; self.usbTablet = usbTablet
        self.noDefaults = noDefaults; self.extraArgs = extraArgs
    }

    /// Creates a configuration the way the seed's simple config did (its defaults: 512 MiB, 1 CPU,
    /// `-nodefaults`).
    ///
    /// Each argument maps onto one rich field: `memoryMiB` → ``Memory/sizeMiB``, `cpus` → ``CPU/count``,
    /// `drives` → ``disks``, `nics` → ``networks``, `vnc`/`spice` → ``display``, `machineType` →
    /// ``Machine/type``, `cpuModel` → ``CPU/model``, `accel` → ``Machine/accel`` (the seed's `KVM` flag:
    /// `true` is ``Accelerator/kvm``, but ``AcceleratorMode/auto`` is the better default).
    public init(
        name: String, memoryMiB: Int = 512, cpus: Int = 1, drives: [Disk] = [], nics: [Network] = [],
        vnc: VNC? = nil, spice: SPICE? = nil, extraArgs: [String] = [], noDefaults: Bool = true,
        arch: QEMUArch? = nil, qemuPath: String? = nil, socketDirectory: String? = nil,
        machineType: String? = nil, cpuModel: String? = nil, accel: AcceleratorMode = .auto
    ) {
        self.init(
            name: name, arch: arch, qemuPath: qemuPath, socketDirectory: socketDirectory,
            machine: Machine(type: machineType, accel: accel), cpu: CPU(model: cpuModel, count: cpus),
            memory: Memory(sizeMiB: memoryMiB), disks: drives, networks: nics,
            display: Display(vnc: vnc, spice: spice), noDefaults: noDefaults, extraArgs: extraArgs)
    }

    private enum CodingKeys: String, CodingKey {
        case name, arch, qemuPath, socketDirectory, uuid, machine, cpu, memory, firmware, boot, disks, cdroms
        case networks, display, serials, chardevs, virtioSerialPorts, usb, balloon, rtc, rng, audio, guestAgent, spiceAgent
        case usbTablet, noDefaults, extraArgs
    }

    /// Decodes a configuration; every key but `name` may be absent and then takes its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name))
        arch = try c.decodeIfPresent(QEMUArch.self, forKey: .arch)
        qemuPath = try c.decodeIfPresent(String.self, forKey: .qemuPath)
        socketDirectory = try c.decodeIfPresent(String.self, forKey: .socketDirectory)
        uuid = try c.decodeIfPresent(String.self, forKey: .uuid)
        machine = try c.decodeIfPresent(Machine.self, forKey: .machine) ?? machine
        cpu = try c.decodeIfPresent(CPU.self, forKey: .cpu) ?? cpu
        memory = try c.decodeIfPresent(Memory.self, forKey: .memory) ?? memory
        firmware = try c.decodeIfPresent(Firmware.self, forKey: .firmware)
        boot = try c.decodeIfPresent(Boot.self, forKey: .boot)
        disks = try c.decodeIfPresent([Disk].self, forKey: .disks) ?? []
        cdroms = try c.decodeIfPresent([CDROM].self, forKey: .cdroms) ?? []
        networks = try c.decodeIfPresent([Network].self, forKey: .networks) ?? []
        display = try c.decodeIfPresent(Display.self, forKey: .display) ?? display
        serials = try c.decodeIfPresent([Serial].self, forKey: .serials) ?? []
        chardevs = try c.decodeIfPresent([Chardev].self, forKey: .chardevs) ?? []
        virtioSerialPorts = try c.decodeIfPresent([VirtioSerialPort].self, forKey: .virtioSerialPorts) ?? []
        usb = try c.decodeIfPresent(USB.self, forKey: .usb)
        balloon = try c.decodeIfPresent(Balloon.self, forKey: .balloon)
        rtc = try c.decodeIfPresent(RTC.self, forKey: .rtc)
        rng = try c.decodeIfPresent(RNG.self, forKey: .rng)
        audio = try c.decodeIfPresent(Audio.self, forKey: .audio)
        guestAgent = try c.decodeIfPresent(Bool.self, forKey: .guestAgent) ?? false
        spiceAgent = try c.decodeIfPresent(Bool.self, forKey: .spiceAgent) ?? false
        usbTablet = try c.decodeIfPresent(Bool.self, forKey: .usbTablet) ?? false
        noDefaults = try c.decodeIfPresent(Bool.self, forKey: .noDefaults) ?? true
        extraArgs = try c.decodeIfPresent([String].self, forKey: .extraArgs) ?? []
    }
}

// MARK: - Machine, CPU, memory, firmware, boot

/// How the accelerator is chosen.
public enum AcceleratorMode: String, Sendable, Codable, CaseIterable {
    /// Use the result of ``AcceleratorProbe``: KVM when it works, else TCG.
    case auto
    /// KVM, or fail clearly when it cannot work.
    case kvm
    /// TCG (software emulation).
    case tcg
}

/// A concrete accelerator, as passed to `-accel`.
public enum Accelerator: String, Sendable, Codable, CaseIterable {
    /// Linux KVM.
    case kvm
    /// QEMU's Tiny Code Generator (software emulation).
    case tcg
}

/// The machine (board) and accelerator.
public struct Machine: Sendable, Codable, Equatable {
    /// The machine type (`q35`, `pc`, `pc-q35-7.2`, `virt`, …); `nil` means the architecture's default
    /// (``QEMUArch/defaultMachineType``).
    public var type: String?
    /// How to choose the accelerator.
    public var accel: AcceleratorMode
    /// The board's built-in USB (`usb=on|off`); `nil` leaves QEMU's default. Prefer ``VMConfig/usb``.
    public var usb: Bool?
    /// Whether guest memory is included in core dumps (`dump-guest-core`).
    public var dumpGuestCore: Bool?
    /// On q35: the number of empty `pcie-root-port`s to add so disks and NICs can be hot-plugged later
    /// (ids `hotplug0`, `hotplug1`, …). `nil` means 4. Ignored elsewhere (i440fx hot-plugs on `pci.0`).
    public var hotplugPorts: Int?

    /// Creates machine options.
    public init(type: String? = nil, accel: AcceleratorMode = .auto, usb: Bool? = nil, dumpGuestCore: Bool? = nil,
                hotplugPorts: Int? = nil) {
        self.type = type; self.accel = accel; self.usb = usb; self.dumpGuestCore = dumpGuestCore
        self.hotplugPorts = hotplugPorts
    }
}

/// The virtual CPU.
public struct CPU: Sendable, Codable, Equatable {
    /// The CPU model (`host`, `Skylake-Server`, …); `nil` takes the probed model (see ``AcceleratorChoice``),
    /// or QEMU's default.
    public var model: String?
    /// CPU features to switch on (`true`) or off (`false`), rendered sorted by name as `name=on|off`.
    public var features: [String: Bool]
    /// The number of vCPUs at start (`-smp cpus=`).
    public var count: Int
    /// The maximum number of vCPUs, for hot-plug (`maxcpus=`).
    public var maxCount: Int?
    /// Sockets in the topology.
    public var sockets: Int?
    /// Cores per socket.
    public var cores: Int?
    /// Threads per core.
    public var threads: Int?

    /// Creates CPU options.
    public init(model: String? = nil, features: [String: Bool] = [:], count: Int = 1, maxCount: Int? = nil,
                sockets: Int? = nil, cores: Int? = nil, threads: Int? = nil) {
        self.model = model; self.features = features; self.count = count; self.maxCount = maxCount
        self.sockets = sockets; self.cores = cores; self.threads = threads
    }
}

/// Guest RAM.
public struct Memory: Sendable, Codable, Equatable {
    /// Where guest RAM comes from.
    public enum Backend: Sendable, Codable, Equatable {
        /// Anonymous memory (`memory-backend-ram`).
        case ram
        /// A file or hugetlbfs mount (`memory-backend-file`, `mem-path`).
        case file(path: String)
        /// An anonymous memfd (`memory-backend-memfd`), shareable with vhost-user back ends.
        case memfd
    }

    /// RAM at start, in MiB (default 512).
    public var sizeMiB: Int
    /// The maximum RAM for memory hot-plug, in MiB (`maxmem=`).
    public var maxSizeMiB: Int?
    /// Hot-plug slots (`slots=`); defaults to 1 when ``maxSizeMiB`` is set.
    public var slots: Int?
    /// An explicit backend; `nil` lets QEMU allocate RAM the default way.
    public var backend: Backend?
    /// Whether the backend is shared (`share`), as vhost-user needs.
    public var share: Bool?
    /// Whether to preallocate the backend (`prealloc`).
    public var prealloc: Bool
    /// Whether to lock guest memory (`-overcommit mem-lock=on`).
    public var lock: Bool

    /// Creates memory options.
    public init(sizeMiB: Int = 512, maxSizeMiB: Int? = nil, slots: Int? = nil, backend: Backend? = nil,
                share: Bool? = nil, prealloc: Bool = false, lock: Bool = false) {
        self.sizeMiB = sizeMiB; self.maxSizeMiB = maxSizeMiB; self.slots = slots; self.backend = backend
        self.share = share; self.prealloc = prealloc; self.lock = lock
    }
}

/// UEFI firmware, wired to the machine as `pflash0` (code, read-only) and `pflash1` (variables).
///
/// ``FirmwareDiscovery`` fills one in from the host's firmware descriptors. The variable store is the
/// VM's own: when ``vars`` does not exist at start and ``varsTemplate`` is set, ``Instance/start(_:options:)``
/// creates it as a copy of the template (see ``prepareVariableStore()``); an existing store is never
/// overwritten, so what the guest writes there (boot entries, Secure Boot keys) survives restarts.
public struct Firmware: Sendable, Codable, Equatable {
    /// The firmware code image (e.g. `OVMF_CODE_4M.fd`), opened read-only. Absolute path.
    public var code: String
    /// This VM's own writable copy of the variable store (e.g. a copy of `OVMF_VARS_4M.fd`). Absolute path;
    /// `nil` maps the code alone, and the firmware then keeps its variables in RAM only (lost at exit).
    public var vars: String?
    /// The template ``vars`` is created from when it does not exist (e.g. `OVMF_VARS_4M.fd`). Absolute path.
    public var varsTemplate: String?
    /// Boots with Secure Boot enforced: SMM on (`-machine smm=on`) and the flash restricted to SMM code
    /// (`-global driver=cfi.pflash01,property=secure,value=on`). Needs a q35 machine, a Secure Boot
    /// build of the firmware (`requires-smm`) and a variable store with keys enrolled.
    public var secureBoot: Bool

    /// Creates firmware options.
    public init(code: String, vars: String? = nil, varsTemplate: String? = nil, secureBoot: Bool = false) {
        self.code = code; self.vars = vars; self.varsTemplate = varsTemplate; self.secureBoot = secureBoot
    }

    private enum CodingKeys: String, CodingKey { case code, vars, varsTemplate, secureBoot }

    /// Decodes firmware options; `varsTemplate` and `secureBoot` may be absent (older records).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = try c.decode(String.self, forKey: .code)
        vars = try c.decodeIfPresent(String.self, forKey: .vars)
        varsTemplate = try c.decodeIfPresent(String.self, forKey: .varsTemplate)
        secureBoot = try c.decodeIfPresent(Bool.self, forKey: .secureBoot) ?? false
    }
}

/// Boot options.
public struct Boot: Sendable, Codable, Equatable {
    /// Legacy boot order letters (`c` disk, `d` CD-ROM, `n` network, …). Prefer ``Disk/bootIndex``.
    public var order: String?
    /// Whether to show the firmware boot menu.
    public var menu: Bool?
    /// Whether to stop after the listed devices instead of trying the rest.
    public var strict: Bool?
    /// A kernel to boot directly (absolute path).
    public var kernel: String?
    /// The initrd for ``kernel`` (absolute path).
    public var initrd: String?
    /// The kernel command line for ``kernel``.
    public var append: String?

    /// Creates boot options.
    public init(order: String? = nil, menu: Bool? = nil, strict: Bool? = nil, kernel: String? = nil,
                initrd: String? = nil, append: String? = nil) {
        self.order = order; self.menu = menu; self.strict = strict
        self.kernel = kernel; self.initrd = initrd; self.append = append
    }
}
