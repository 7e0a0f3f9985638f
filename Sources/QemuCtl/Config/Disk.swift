/// A hard disk: a block back end attached to the guest through an interface.
///
/// Node names and device ids are derived from ``name`` (see ``DiskIDs``), so a running VM's disks can be
/// addressed by name (throttling, hot-unplug) without reading anything back.
public struct Disk: Sendable, Codable, Equatable {
    /// The disk's name, unique among disks and CD-ROMs: a short label (`[a-z][a-z0-9-]*`, at most 24
    /// characters) because QEMU node names are limited to 31 characters.
    public var name: String
    /// Where the data lives.
    public var backend: DiskBackend
    /// How the guest sees the disk (default virtio).
    public var interface: DiskInterface
    /// Opens the disk read-only (not possible for `ide`).
    public var readOnly: Bool
    /// The cache mode; `nil` is QEMU's default (writeback).
    public var cache: DiskCache?
    /// Passes guest discards down (`discard=unmap`).
    public var discard: Bool
    /// The serial number the guest sees; required for NVMe, where it defaults to ``name``.
    public var serial: String?
    /// The firmware boot priority (`bootindex`); lower boots first.
    public var bootIndex: Int?
    /// I/O limits, in a throttle group of this disk's own.
    public var throttle: Throttle?
    /// A fixed PCI slot (virtio and nvme only); `nil` allocates one.
    public var pciSlot: Int?

    /// Creates a disk.
    public init(name: String, backend: DiskBackend, interface: DiskInterface = .virtio, readOnly: Bool = false,
                cache: DiskCache? = nil, discard: Bool = false, serial: String? = nil, bootIndex: Int? = nil,
                throttle: Throttle? = nil, pciSlot: Int? = nil) {
        self.name = name; self.backend = backend; self.interface = interface; self.readOnly = readOnly
        self.cache = cache; self.discard = discard; self.serial = serial; self.bootIndex = bootIndex
        self.throttle = throttle; self.pciSlot = pciSlot
    }

    /// Creates a disk on an image file: the seed's `DriveConfig` (file, format, interface, read-only, cache,
    /// serial).
    public init(name: String, file path: String, format: DiskFormat, interface: DiskInterface = .virtio,
                readOnly: Bool = false, cache: DiskCache? = nil, serial: String? = nil) {
        self.init(name: name, backend: .file(FileDisk(path: path, format: format)), interface: interface,
                  readOnly: readOnly, cache: cache, serial: serial)
    }
}

/// A disk image format. Always explicit: QEMU never probes it (probing a raw image lets the guest choose).
public enum DiskFormat: String, Sendable, Codable, CaseIterable {
    /// Raw bytes.
    case raw
    /// QEMU copy-on-write v2.
    case qcow2
    /// VMware.
    case vmdk
    /// Hyper-V.
    case vhdx
    /// VirtualBox.
    case vdi
    /// Virtual PC.
    case vpc
    /// QEMU Enhanced Disk.
    case qed

    /// Whether images of this format can name a backing file in their header (qcow2, qed, vmdk). The command
    /// line opens them with `"backing": null`, so QEMU never follows a backing file the configuration does not
    /// declare.
    public var hasBackingFiles: Bool { self == .qcow2 || self == .qed || self == .vmdk }
}

/// The guest-visible disk interface.
public enum DiskInterface: String, Sendable, Codable, CaseIterable {
    /// `virtio-blk-pci`.
    case virtio
    /// `scsi-hd` on a `virtio-scsi-pci` controller (added automatically).
    case scsi
    /// `ide-hd` on the board's IDE/AHCI controller.
    case ide
    /// An NVMe controller (`nvme`) with one namespace; needs a serial.
    case nvme
}

/// A disk cache mode, mapped onto `cache.direct`/`cache.no-flush` and the device's `write-cache`.
public enum DiskCache: String, Sendable, Codable, CaseIterable {
    /// Host page cache, guest sees a write cache.
    case writeback
    /// `O_DIRECT`, guest sees a write cache.
    case none
    /// Host page cache, no guest write cache.
    case writethrough
    /// `O_DIRECT`, no guest write cache.
    case directsync
    /// Ignores flushes: fast, loses data on a host crash.
    case unsafe
}

/// Where a disk's data lives.
public enum DiskBackend: Sendable, Equatable, Codable {
    /// An image file.
    case file(FileDisk)
    /// An NBD export.
    case nbd(NBDDisk)
    /// A Ceph RBD image.
    case rbd(RBDDisk)
    /// An iSCSI LUN.
    case iscsi(ISCSIDisk)

    private struct Repr: Codable {
        var file: FileDisk?, nbd: NBDDisk?, rbd: RBDDisk?, iscsi: ISCSIDisk?
    }

    /// Decodes exactly one of `{"file": …}`, `{"nbd": …}`, `{"rbd": …}`, `{"iscsi": …}`.
    public init(from decoder: any Decoder) throws {
        let r = try Repr(from: decoder)
        let all: [DiskBackend] = [r.file.map(Self.file), r.nbd.map(Self.nbd), r.rbd.map(Self.rbd),
                                  r.iscsi.map(Self.iscsi)].compactMap { $0 }
        guard all.count == 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "a disk backend has exactly one of file, nbd, rbd, iscsi"))
        }
        self = all[0]
    }

    /// Encodes as a one-key object named after the case.
    public func encode(to encoder: any Encoder) throws {
        var r = Repr()
        switch self {
        case .file(let v): r.file = v
        case .nbd(let v): r.nbd = v
        case .rbd(let v): r.rbd = v
        case .iscsi(let v): r.iscsi = v
        }
        try r.encode(to: encoder)
    }
}

/// An image file.
public struct FileDisk: Sendable, Codable, Equatable {
    /// The image path (absolute: QEMU started with `-daemonize` runs in `/`).
    public var path: String
    /// The image format; explicit, never probed.
    public var format: DiskFormat
    /// Opens read-only when the file is not writable instead of failing (`auto-read-only`).
    public var autoReadOnly: Bool
    /// The backing file the image's header names, declared: attached read-only below the image with its format
    /// explicit. `nil` means the image must name none (one that does is refused, see ``HostFileCheck``).
    public var backing: BackingFile?

    /// Creates a file back end.
    public init(path: String, format: DiskFormat, autoReadOnly: Bool = false, backing: BackingFile? = nil) {
        self.path = path; self.format = format; self.autoReadOnly = autoReadOnly; self.backing = backing
    }
}

/// The declared backing file of a qcow2 image: a self-contained image (it names no backing file of its own), opened
/// read-only and never written; many images may share it.
public struct BackingFile: Sendable, Codable, Equatable {
    /// The backing image (absolute path), as the overlay's header names it once resolved against the overlay's
    /// directory.
    public var path: String
    /// Its format; explicit, never probed.
    public var format: DiskFormat

    /// Creates a backing file declaration.
    public init(path: String, format: DiskFormat) { self.path = path; self.format = format }
}

/// An NBD export.
public struct NBDDisk: Sendable, Codable, Equatable {
    /// How to reach the server.
    public enum Server: Sendable, Codable, Equatable {
        /// A Unix socket (absolute path).
        case unix(path: String)
        /// A TCP host and port.
        case tcp(host: String, port: Int)
    }
    /// The server.
    public var server: Server
    /// The export name; `nil` is the default export.
    public var export: String?
    /// The id of a `tls-creds-x509` object (given via ``VMConfig/extraArgs``) to speak TLS with.
    public var tlsCredsID: String?
    /// The image format on top of the export (default raw).
    public var format: DiskFormat

    /// Creates an NBD back end.
    public init(server: Server, export: String? = nil, tlsCredsID: String? = nil, format: DiskFormat = .raw) {
        self.server = server; self.export = export; self.tlsCredsID = tlsCredsID; self.format = format
    }
}

/// A Ceph RBD image.
public struct RBDDisk: Sendable, Codable, Equatable {
    /// A Ceph monitor address.
    public struct Monitor: Sendable, Codable, Equatable {
        /// Host name or address.
        public var host: String
        /// Port (Ceph's default is 6789).
        public var port: Int
        /// Creates a monitor address.
        public init(host: String, port: Int = 6789) { self.host = host; self.port = port }
    }
    /// The pool.
    public var pool: String
    /// The image.
    public var image: String
    /// A snapshot to open (read-only).
    public var snapshot: String?
    /// A Ceph configuration file (absolute path).
    public var conf: String?
    /// The Ceph user (`client.` omitted).
    public var user: String?
    /// The user's key; passed to QEMU as a secret object reading a 0600 file, never on the command line.
    public var key: Secret?
    /// Monitors; empty means those of ``conf``.
    public var monitors: [Monitor]
    /// The image format on top (default raw).
    public var format: DiskFormat

    /// Creates an RBD back end.
    public init(pool: String, image: String, snapshot: String? = nil, conf: String? = nil, user: String? = nil,
                key: Secret? = nil, monitors: [Monitor] = [], format: DiskFormat = .raw) {
        self.pool = pool; self.image = image; self.snapshot = snapshot; self.conf = conf; self.user = user
        self.key = key; self.monitors = monitors; self.format = format
    }
}

/// An iSCSI LUN.
public struct ISCSIDisk: Sendable, Codable, Equatable {
    /// The portal, `host[:port]`.
    public var portal: String
    /// The target IQN.
    public var target: String
    /// The LUN (default 0).
    public var lun: Int
    /// The CHAP user.
    public var user: String?
    /// The CHAP password; passed as a secret object reading a 0600 file, never on the command line.
    public var password: Secret?
    /// The initiator IQN.
    public var initiator: String?
    /// The image format on top (default raw).
    public var format: DiskFormat

    /// Creates an iSCSI back end.
    public init(portal: String, target: String, lun: Int = 0, user: String? = nil, password: Secret? = nil,
                initiator: String? = nil, format: DiskFormat = .raw) {
        self.portal = portal; self.target = target; self.lun = lun; self.user = user; self.password = password
        self.initiator = initiator; self.format = format
    }
}

/// I/O limits for one disk, in bytes or operations per second.
///
/// Follows QEMU's rules, which ``VMConfig/problems()`` checks: a total and its read/write pair are
/// exclusive, a burst (`…Max`) must be at least its base, and a burst length needs its burst rate.
public struct Throttle: Sendable, Codable, Equatable {
    /// Total bytes/s.
    public var bpsTotal: Int?
    /// Read bytes/s.
    public var bpsRead: Int?
    /// Write bytes/s.
    public var bpsWrite: Int?
    /// Total operations/s.
    public var iopsTotal: Int?
    /// Read operations/s.
    public var iopsRead: Int?
    /// Write operations/s.
    public var iopsWrite: Int?
    /// Burst total bytes/s.
    public var bpsTotalMax: Int?
    /// Burst read bytes/s.
    public var bpsReadMax: Int?
    /// Burst write bytes/s.
    public var bpsWriteMax: Int?
    /// Burst total operations/s.
    public var iopsTotalMax: Int?
    /// Burst read operations/s.
    public var iopsReadMax: Int?
    /// Burst write operations/s.
    public var iopsWriteMax: Int?
    /// Seconds the total bytes burst may last.
    public var bpsTotalMaxLength: Int?
    /// Seconds the read bytes burst may last.
    public var bpsReadMaxLength: Int?
    /// Seconds the write bytes burst may last.
    public var bpsWriteMaxLength: Int?
    /// Seconds the total operations burst may last.
    public var iopsTotalMaxLength: Int?
    /// Seconds the read operations burst may last.
    public var iopsReadMaxLength: Int?
    /// Seconds the write operations burst may last.
    public var iopsWriteMaxLength: Int?
    /// Bytes counted as one operation for the iops limits.
    public var iopsSize: Int?

    /// Creates limits; the seed's pair (bytes/s, operations/s) is `Throttle(bpsTotal:iopsTotal:)`.
    public init(bpsTotal: Int? = nil, bpsRead: Int? = nil, bpsWrite: Int? = nil, iopsTotal: Int? = nil,
                iopsRead: Int? = nil, iopsWrite: Int? = nil, bpsTotalMax: Int? = nil, bpsReadMax: Int? = nil,
                bpsWriteMax: Int? = nil, iopsTotalMax: Int? = nil, iopsReadMax: Int? = nil,
                iopsWriteMax: Int? = nil, bpsTotalMaxLength: Int? = nil, bpsReadMaxLength: Int? = nil,
                bpsWriteMaxLength: Int? = nil, iopsTotalMaxLength: Int? = nil, iopsReadMaxLength: Int? = nil,
                iopsWriteMaxLength: Int? = nil, iopsSize: Int? = nil) {
        self.bpsTotal = bpsTotal; self.bpsRead = bpsRead; self.bpsWrite = bpsWrite
        self.iopsTotal = iopsTotal; self.iopsRead = iopsRead; self.iopsWrite = iopsWrite
        self.bpsTotalMax = bpsTotalMax; self.bpsReadMax = bpsReadMax; self.bpsWriteMax = bpsWriteMax
        self.iopsTotalMax = iopsTotalMax; self.iopsReadMax = iopsReadMax; self.iopsWriteMax = iopsWriteMax
        self.bpsTotalMaxLength = bpsTotalMaxLength; self.bpsReadMaxLength = bpsReadMaxLength
        self.bpsWriteMaxLength = bpsWriteMaxLength; self.iopsTotalMaxLength = iopsTotalMaxLength
        self.iopsReadMaxLength = iopsReadMaxLength; self.iopsWriteMaxLength = iopsWriteMaxLength
        self.iopsSize = iopsSize
    }

    /// The limits as QEMU's `ThrottleLimits` keys (`bps-total`, `iops-read-max-length`, …), unset ones left out,
    /// in QEMU's key order. The same keys serve `-object throttle-group,limits=` and `qom-set … limits`.
    public var qemuLimits: [(key: String, value: Int)] {
        let all: [(String, Int?)] = [
            ("bps-total", bpsTotal), ("bps-total-max", bpsTotalMax), ("bps-total-max-length", bpsTotalMaxLength),
            ("bps-read", bpsRead), ("bps-read-max", bpsReadMax), ("bps-read-max-length", bpsReadMaxLength),
            ("bps-write", bpsWrite), ("bps-write-max", bpsWriteMax), ("bps-write-max-length", bpsWriteMaxLength),
            ("iops-total", iopsTotal), ("iops-total-max", iopsTotalMax),
            ("iops-total-max-length", iopsTotalMaxLength),
            ("iops-read", iopsRead), ("iops-read-max", iopsReadMax), ("iops-read-max-length", iopsReadMaxLength),
            ("iops-write", iopsWrite), ("iops-write-max", iopsWriteMax),
            ("iops-write-max-length", iopsWriteMaxLength),
            ("iops-size", iopsSize),
        ]
        return all.compactMap { k, v in v.map { (key: k, value: $0) } }
    }
}

/// A CD-ROM drive, empty or with an image.
public struct CDROM: Sendable, Codable, Equatable {
    /// The CD-ROM interface.
    public enum Interface: String, Sendable, Codable, CaseIterable {
        /// `ide-cd` on the board's IDE/AHCI controller.
        case ide
        /// `scsi-cd` on the `virtio-scsi-pci` controller.
        case scsi
    }
    /// The name, unique among disks and CD-ROMs (same rules as ``Disk/name``).
    public var name: String
    /// The image (absolute path); `nil` is an empty tray.
    public var path: String?
    /// The image format (default raw).
    public var format: DiskFormat
    /// The interface (default ide).
    public var interface: Interface
    /// The firmware boot priority.
    public var bootIndex: Int?

    /// Creates a CD-ROM drive.
    public init(name: String, path: String? = nil, format: DiskFormat = .raw, interface: Interface = .ide,
                bootIndex: Int? = nil) {
        self.name = name; self.path = path; self.format = format; self.interface = interface
        self.bootIndex = bootIndex
    }
}

/// The QEMU ids derived from a disk or CD-ROM name: stable, so a running VM can be addressed by name.
public struct DiskIDs: Sendable, Equatable {
    /// The guest device (`-device … id=`): `disk-NAME` or `cd-NAME`. QMP's `block_set_io_throttle` takes it as
    /// `id`.
    public var device: String
    /// The protocol node (file, nbd, rbd, iscsi): `file-NAME`.
    public var protocolNode: String
    /// The format node: `fmt-NAME`.
    public var formatNode: String
    /// The throttle filter node, `thr-NAME`, when the disk is throttled.
    public var throttleNode: String?
    /// The `throttle-group` object, `tg-NAME`, when the disk is throttled; its `limits` can be changed with
    /// `qom-set`.
    public var throttleGroup: String?
    /// The node the device is attached to: the throttle node when there is one, else the format node.
    public var topNode: String { throttleNode ?? formatNode }
    /// The protocol node of the declared backing file, `bfile-NAME`, when the image has one.
    public var backingProtocolNode: String?
    /// The read-only format node of the declared backing file, `bfmt-NAME`: the format node's `backing`.
    public var backingFormatNode: String?

    /// The ids of a disk.
    public init(disk: Disk) {
        device = DeviceID.disk(disk.name).rawValue; protocolNode = "file-\(disk.name)"; formatNode = "fmt-\(disk.name)"
        throttleNode = disk.throttle == nil ? nil : "thr-\(disk.name)"
        throttleGroup = disk.throttle == nil ? nil : Self.throttleGroup(disk: disk.name)
        if case .file(let f) = disk.backend, f.backing != nil {
            backingProtocolNode = "bfile-\(disk.name)"; backingFormatNode = "bfmt-\(disk.name)"
        }
    }

    /// The id of the `throttle-group` object of disk `name` (`tg-NAME`), whether or not it has one.
    public static func throttleGroup(disk name: String) -> String { "tg-\(name)" }

    /// The ids of a CD-ROM.
    public init(cdrom: CDROM) {
        device = DeviceID.cdrom(cdrom.name).rawValue; protocolNode = "file-\(cdrom.name)"; formatNode = "fmt-\(cdrom.name)"
    }
}
