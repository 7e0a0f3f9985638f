// MARK: - VirtualMachine

/// One VM as its manifest declares it, normalized: defaults applied, sizes in bytes,
/// paths absolute, derived values (MAC addresses) filled in.
///
/// Two loads of the same files give equal values, so the planner can compare a
/// manifest with what it recorded before without seeing churn.
package struct VirtualMachine: Sendable, Hashable, Codable {
    /// `metadata.name`: a DNS label, unique across the loaded set.
    package var name: String
    /// `metadata.labels`.
    package var labels: [String: String]
    /// `spec`: everything that describes the machine.
    package var spec: VirtualMachineSpec
    /// Where the document's `metadata.name` is, for messages that point at the VM.
    package var source: SourceLocation

    /// Creates a VM description.
    package init(name: String, labels: [String: String] = [:], spec: VirtualMachineSpec, source: SourceLocation) {
        self.name = name
        self.labels = labels
        self.spec = spec
        self.source = source
    }
}

// MARK: - VirtualMachineSpec

/// The desired state of one VM (`spec` of a manifest). Field docs: ``FieldTable``.
package struct VirtualMachineSpec: Sendable, Hashable, Codable {
    /// `runState` (live).
    package var runState: RunState = .running
    /// `restartPolicy` (metadata): what `qemuctl controller` does when QEMU exits. `nil` when the
    /// manifest does not say (records written before the field existed, too): ``RestartPolicy/never``.
    package var restartPolicy: RestartPolicy?
    /// `arch`; the host's architecture when absent.
    package var arch: Architecture = .host
    /// `emulator`: the QEMU binary or a directory holding it; nil means search.
    package var emulator: String?
    /// `machine`.
    package var machine = Machine()
    /// `cpu`.
    package var cpu = CPU()
    /// `memory`.
    package var memory = Memory()
    /// `firmware`.
    package var firmware = Firmware()
    /// `boot`.
    package var boot = Boot()
    /// `disks`, in manifest order.
    package var disks: [Disk] = []
    /// `cdroms`, in manifest order.
    package var cdroms: [CDROM] = []
    /// `networks`, in manifest order.
    package var networks: [Network] = []
    /// `display`.
    package var display = Display()
    /// `serial`.
    package var serial = Serial()
    /// `guestAgent`.
    package var guestAgent = false
    /// `cloudInit`; nil when the manifest has none (no seed is attached).
    package var cloudInit: CloudInit?
    /// `readiness`; nil when the manifest declares no readiness probe.
    package var readiness: Readiness?
    /// `spiceAgent`.
    package var spiceAgent = false
    /// `usbTablet`.
    package var usbTablet = false
    /// `usb`.
    package var usb = USB()
    /// `balloon`.
    package var balloon = false
    /// `rng`.
    package var rng = false
    /// `rtc`.
    package var rtc = RTC()
    /// `audio`; nil when the manifest has none.
    package var audio: Audio?

    /// A spec with every default.
    package init() {}
}

// MARK: - Enumerations

/// `spec.runState`.
package enum RunState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Running.
    case running
    /// Started but paused (vCPUs stopped).
    case paused
    /// Shut down (no QEMU process).
    case stopped
}

extension VirtualMachineSpec {
    /// `spec.restartPolicy`: whether `qemuctl controller` launches a VM again when its QEMU exits
    /// while the manifest wants it running.
    package enum RestartPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// Never: a VM whose QEMU exited stays down until an `apply` (today's behaviour).
        case never
        /// Whenever QEMU exits, however it exited.
        case always
        /// Only when the exit was not the guest's own shutdown or poweroff.
        case onFailure
    }

    /// ``restartPolicy``, with the default (``RestartPolicy/never``) when the manifest does not say.
    package var effectiveRestartPolicy: RestartPolicy { restartPolicy ?? .never }
}

/// `spec.arch`, GOARCH names as the seed library uses them.
package enum Architecture: String, Sendable, Hashable, Codable, CaseIterable {
    /// x86-64.
    case amd64
    /// 32-bit x86.
    case i386 = "386"
    /// AArch64.
    case arm64
    /// 32-bit ARM.
    case arm
    /// RISC-V 64.
    case riscv64
    /// Big-endian POWER 64.
    case ppc64
    /// Little-endian POWER 64.
    case ppc64le
    /// MIPS 32.
    case mips
    /// MIPS 64.
    case mips64
    /// IBM Z.
    case s390x

    /// The architecture this program was built for.
    package static var host: Architecture {
        #if arch(x86_64)
        .amd64
        #elseif arch(arm64)
        .arm64
        #elseif arch(i386)
        .i386
        #elseif arch(arm)
        .arm
        #elseif arch(riscv64)
        .riscv64
        #elseif arch(powerpc64le)
        .ppc64le
        #elseif arch(powerpc64)
        .ppc64
        #elseif arch(s390x)
        .s390x
        #else
        .amd64
        #endif
    }
}

// MARK: - Machine, CPU, memory, firmware, boot

extension VirtualMachineSpec {
    /// `spec.machine`.
    package struct Machine: Sendable, Hashable, Codable {
        /// Accelerators.
        package enum Accelerator: String, Sendable, Hashable, Codable, CaseIterable {
            /// KVM when available, else TCG.
            case auto
            /// KVM only.
            case kvm
            /// Emulation only.
            case tcg
        }
        /// `type`; nil means the usual machine for the architecture.
        package var type: String?
        /// `accel`.
        package var accel: Accelerator = .auto
        /// `hotplugPorts`.
        package var hotplugPorts = 4
        /// `dumpGuestCore`.
        package var dumpGuestCore = false
        /// Defaults.
        package init() {}
    }

    /// `spec.cpu`.
    package struct CPU: Sendable, Hashable, Codable {
        /// `model`; nil means a model that works with the accelerator.
        package var model: String?
        /// `count`.
        package var count = 1
        /// `maxCount`; normalized to `count` when absent.
        package var maxCount = 1
        /// `sockets`.
        package var sockets: Int?
        /// `cores`.
        package var cores: Int?
        /// `threads`.
        package var threads: Int?
        /// `features`, as written (`+avx2`, `-x2apic`).
        package var features: [String] = []
        /// Defaults.
        package init() {}
    }

    /// `spec.memory`; sizes in bytes.
    package struct Memory: Sendable, Hashable, Codable {
        /// RAM backends.
        package enum Backend: String, Sendable, Hashable, Codable, CaseIterable {
            /// Anonymous memory.
            case ram
            /// A file or hugetlbfs directory (`path`).
            case file
            /// A memfd.
            case memfd
        }
        /// `size` in bytes.
        package var size: UInt64 = 512 << 20
        /// `max` in bytes; nil means no hot-plug.
        package var max: UInt64?
        /// `slots`.
        package var slots = 8
        /// `backend`.
        package var backend: Backend = .ram
        /// `path` (absolute), for backend file.
        package var path: String?
        /// `share`.
        package var share = false
        /// `prealloc`.
        package var prealloc = false
        /// `lock`.
        package var lock = false
        /// Defaults.
        package init() {}
    }

    /// `spec.firmware`.
    package struct Firmware: Sendable, Hashable, Codable {
        /// Firmware kinds.
        package enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
            /// Legacy BIOS (SeaBIOS).
            case bios
            /// UEFI (OVMF, AAVMF).
            case efi
        }
        /// `type`.
        package var type: Kind = .bios
        /// `code` (absolute).
        package var code: String?
        /// `vars` (absolute).
        package var vars: String?
        /// `secureBoot`.
        package var secureBoot = false
        /// Defaults.
        package init() {}

        private enum CodingKeys: String, CodingKey { case type, code, vars, secureBoot }

        /// Decodes a firmware spec; `secureBoot` may be absent (records written before it existed).
        package init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decodeIfPresent(Kind.self, forKey: .type) ?? .bios
            code = try c.decodeIfPresent(String.self, forKey: .code)
            vars = try c.decodeIfPresent(String.self, forKey: .vars)
            secureBoot = try c.decodeIfPresent(Bool.self, forKey: .secureBoot) ?? false
        }
    }

    /// `spec.boot`; paths absolute.
    package struct Boot: Sendable, Hashable, Codable {
        /// `kernel`.
        package var kernel: String?
        /// `initrd`.
        package var initrd: String?
        /// `cmdline`.
        package var cmdline: String?
        /// `order`.
        package var order: String?
        /// `menu`.
        package var menu = false
        /// `strict`.
        package var strict = false
        /// Defaults.
        package init() {}
    }
}

// MARK: - cloud-init, readiness

extension VirtualMachineSpec {
    /// `spec.cloudInit`: what goes into the VM's NoCloud seed.
    package struct CloudInit: Sendable, Hashable, Codable {
        /// A text of the seed: a secret reference (file or environment variable) or inline text.
        package enum Source: Sendable, Hashable, Codable {
            /// Read at launch with the secret reader; never stored or shown.
            case secret(SecretReference)
            /// The text as the manifest gives it.
            case inline(String)
        }
        /// `userData`.
        package var userData: Source?
        /// `sshAuthorizedKeys`.
        package var sshAuthorizedKeys: [String] = []
        /// `networkConfig`.
        package var networkConfig: Source?
        /// `metaData` extras.
        package var metaData: [String: String] = [:]
        /// `instanceID`; nil means `iid-UUID`.
        package var instanceID: String?
        /// The name of the seed's CD-ROM (a drive name no disk or CD-ROM of the VM may use).
        package static let driveName = "cidata"
        /// The seed's file name in the VM's runtime directory.
        package static let seedFileName = "cidata.iso"
        /// Defaults.
        package init() {}

        /// The instance-id of a VM with `uuid`: ``instanceID`` or `iid-UUID`.
        package func effectiveInstanceID(uuid: String) -> String { instanceID ?? "iid-\(uuid)" }
    }

    /// `spec.readiness`: the one probe that says the guest is ready.
    package enum Readiness: Sendable, Hashable, Codable {
        /// The guest agent answers `guest-ping`.
        case guestAgent
        /// A server on this guest TCP port answers through a host forward.
        case tcpPort(Int)
        /// A serial log line matches this regular expression.
        case serialMatch(String)
    }
}

// MARK: - Secrets

/// A reference to a secret; the value itself never appears in a manifest or a spec.
package enum SecretReference: Sendable, Hashable, Codable {
    /// A file (absolute path) whose content is the secret.
    case file(String)
    /// An environment variable of the qemuctl process.
    case env(String)
}

// MARK: - Disks

extension VirtualMachineSpec {
    /// One entry of `spec.disks`.
    package struct Disk: Sendable, Hashable, Codable {
        /// Image formats of the file backend.
        package enum Format: String, Sendable, Hashable, Codable, CaseIterable {
            /// Raw image or block device.
            case raw
            /// QEMU copy-on-write v2.
            case qcow2
            /// QEMU enhanced disk.
            case qed
            /// VMware.
            case vmdk
            /// VirtualBox.
            case vdi
            /// Hyper-V.
            case vhdx
            /// Virtual PC.
            case vpc
        }
        /// Guest-visible interfaces.
        package enum Interface: String, Sendable, Hashable, Codable, CaseIterable {
            /// virtio-blk.
            case virtio
            /// SCSI disk on a virtio-scsi controller.
            case scsi
            /// IDE/ATA.
            case ide
            /// NVMe.
            case nvme
        }
        /// Host cache modes.
        package enum Cache: String, Sendable, Hashable, Codable, CaseIterable {
            /// Host page cache, guest sees a write cache.
            case writeback
            /// O_DIRECT, guest sees a write cache.
            case none
            /// Host page cache, writes synced.
            case writethrough
            /// O_DIRECT, writes synced.
            case directsync
            /// Host page cache, flushes ignored.
            case unsafe
        }
        /// Where the data lives: exactly one backend.
        package enum Backend: Sendable, Hashable, Codable {
            /// `file`: absolute path and explicit format.
            case file(path: String, format: Format)
            /// `nbd`.
            case nbd(NBD)
            /// `rbd`.
            case rbd(RBD)
            /// `iscsi`.
            case iscsi(ISCSI)
        }
        /// `disks[].nbd`.
        package struct NBD: Sendable, Hashable, Codable {
            /// Where the NBD server is.
            package enum Server: Sendable, Hashable, Codable {
                /// A Unix socket (absolute path).
                case unix(String)
                /// A TCP host and port.
                case tcp(host: String, port: Int)
            }
            /// `unix`, or `host` and `port`.
            package var server: Server
            /// `export`.
            package var export: String?
            /// `tls`.
            package var tls: Bool
            /// Creates the NBD backend.
            package init(server: Server, export: String? = nil, tls: Bool = false) {
                self.server = server
                self.export = export
                self.tls = tls
            }
        }
        /// `disks[].rbd`.
        package struct RBD: Sendable, Hashable, Codable {
            /// `pool`.
            package var pool: String
            /// `image`.
            package var image: String
            /// `snapshot`.
            package var snapshot: String?
            /// `conf` (absolute).
            package var conf: String?
            /// `user`.
            package var user: String?
            /// `keyFrom`.
            package var keyFrom: SecretReference?
            /// Creates the RBD backend.
            package init(
                pool: String, image: String, snapshot: String? = nil, conf: String? = nil, user: String? = nil,
                keyFrom: SecretReference? = nil
            ) {
                self.pool = pool
                self.image = image
                self.snapshot = snapshot
                self.conf = conf
                self.user = user
                self.keyFrom = keyFrom
            }
        }
        /// `disks[].iscsi`.
        package struct ISCSI: Sendable, Hashable, Codable {
            /// `portal`.
            package var portal: String
            /// `target`.
            package var target: String
            /// `lun`.
            package var lun: Int
            /// `user`.
            package var user: String?
            /// `passwordFrom`.
            package var passwordFrom: SecretReference?
            /// `initiator`.
            package var initiator: String?
            /// Creates the iSCSI backend.
            package init(
                portal: String, target: String, lun: Int = 0, user: String? = nil,
                passwordFrom: SecretReference? = nil, initiator: String? = nil
            ) {
                self.portal = portal
                self.target = target
                self.lun = lun
                self.user = user
                self.passwordFrom = passwordFrom
                self.initiator = initiator
            }
        }
        /// An image file named by path and explicit format: `create.from` and `file.backing`.
        package struct ImageFile: Sendable, Hashable, Codable {
            /// `path` (absolute once loaded).
            package var path: String
            /// `format`.
            package var format: Format
            /// Creates the reference.
            package init(path: String, format: Format) {
                self.path = path
                self.format = format
            }
        }
        /// How `create.from` makes the new image.
        package enum CreateMode: String, Sendable, Hashable, Codable, CaseIterable {
            /// A qcow2 image whose backing file is the base (copy-on-write; the base is shared, never written).
            case overlay
            /// A full, independent copy of the base (`qemu-img convert`) in the disk's format.
            case copy
        }
        /// `disks[].throttle`; nil fields mean no limit. Rates in bytes or operations per second.
        package struct Throttle: Sendable, Hashable, Codable {
            /// `bps`.
            package var bps: UInt64?
            /// `bpsRead`.
            package var bpsRead: UInt64?
            /// `bpsWrite`.
            package var bpsWrite: UInt64?
            /// `iops`.
            package var iops: UInt64?
            /// `iopsRead`.
            package var iopsRead: UInt64?
            /// `iopsWrite`.
            package var iopsWrite: UInt64?
            /// `bpsMax`.
            package var bpsMax: UInt64?
            /// `bpsReadMax`.
            package var bpsReadMax: UInt64?
            /// `bpsWriteMax`.
            package var bpsWriteMax: UInt64?
            /// `iopsMax`.
            package var iopsMax: UInt64?
            /// `iopsReadMax`.
            package var iopsReadMax: UInt64?
            /// `iopsWriteMax`.
            package var iopsWriteMax: UInt64?
            /// `burstLength` in seconds.
            package var burstLength: Int = 1
            /// `iopsSize` in bytes.
            package var iopsSize: UInt64?
            /// No limits.
            package init() {}
        }
        /// `name`.
        package var name: String
        /// The one backend.
        package var backend: Backend
        /// `interface`.
        package var interface: Interface = .virtio
        /// `serial`.
        package var serial: String?
        /// `readOnly`.
        package var readOnly = false
        /// `cache`.
        package var cache: Cache = .writeback
        /// `discard`.
        package var discard = false
        /// `bootIndex`.
        package var bootIndex: Int?
        /// `pciAddress` as a slot number (`0x06` → 6); nil lets qemuctl choose and keep one.
        package var pciSlot: Int?
        /// `create.size` in bytes: create the image with this size when it is absent (with ``createFrom``,
        /// at least the base's virtual size; nil keeps the base's size).
        package var createSize: UInt64?
        /// `create.from`: the base image a new image is made from (an overlay on it or a copy of it).
        package var createFrom: ImageFile?
        /// `create.mode`; nil means ``CreateMode/overlay``.
        package var createMode: CreateMode?
        /// `file.backing`: the backing file an existing image's header names, declared.
        package var backing: ImageFile?
        /// `throttle`; nil when the manifest sets none.
        package var throttle: Throttle?

        /// Whether the manifest says to create the image when it is absent (`create:`).
        package var creates: Bool { createSize != nil || createFrom != nil }

        /// The backing file the image is declared to have: `file.backing`, or the base of an overlay
        /// made by `create.from` (mode overlay); nil when the image must have none.
        package var declaredBacking: ImageFile? {
            backing ?? ((createMode ?? .overlay) == .overlay ? createFrom : nil)
        }

        /// Creates a disk with defaults.
        package init(name: String, backend: Backend) {
            self.name = name
            self.backend = backend
        }
    }

    /// One entry of `spec.cdroms`.
    package struct CDROM: Sendable, Hashable, Codable {
        /// Guest-visible interfaces.
        package enum Interface: String, Sendable, Hashable, Codable, CaseIterable {
            /// IDE/ATAPI.
            case ide
            /// SCSI CD on a virtio-scsi controller.
            case scsi
        }
        /// `name`.
        package var name: String
        /// `path` (absolute); nil for an empty drive.
        package var path: String?
        /// `interface`.
        package var interface: Interface = .ide
        /// `bootIndex`.
        package var bootIndex: Int?
        /// Creates an empty drive.
        package init(name: String) { self.name = name }
    }
}

// MARK: - Networks

extension VirtualMachineSpec {
    /// One entry of `spec.networks`.
    package struct Network: Sendable, Hashable, Codable {
        /// Link states.
        package enum Link: String, Sendable, Hashable, Codable, CaseIterable {
            /// Carrier on.
            case up
            /// Carrier off.
            case down
        }
        /// The one backend.
        package enum Backend: Sendable, Hashable, Codable {
            /// `user`.
            case user(User)
            /// `tap`.
            case tap(Tap)
            /// `bridge`: the host bridge and the helper (absolute path, or nil for QEMU's).
            case bridge(name: String, helper: String?)
            /// `socket`.
            case socket(Socket)
            /// `stream`.
            case stream(Stream)
            /// `vde`.
            case vde(sock: String, port: Int?, group: String?)
        }
        /// `networks[].user`.
        package struct User: Sendable, Hashable, Codable {
            /// `net`.
            package var net = "10.0.2.0/24"
            /// `host`.
            package var host: String?
            /// `dns`.
            package var dns: String?
            /// `dhcpStart`.
            package var dhcpStart: String?
            /// `restrict`.
            package var restrict = false
            /// `hostname`.
            package var hostname: String?
            /// `domain`.
            package var domain: String?
            /// `hostfwd`.
            package var hostfwd: [String] = []
            /// Defaults.
            package init() {}
        }
        /// `networks[].tap`.
        package struct Tap: Sendable, Hashable, Codable {
            /// `ifname`.
            package var ifname: String?
            /// `bridge`.
            package var bridge: String?
            /// `script` (absolute).
            package var script: String?
            /// `downscript` (absolute).
            package var downscript: String?
            /// `vhost`.
            package var vhost = false
            /// `queues`.
            package var queues = 1
            /// Defaults.
            package init() {}
        }
        /// `networks[].socket`: one mode and its address.
        package enum Socket: Sendable, Hashable, Codable {
            /// `listen`.
            case listen(String)
            /// `connect`.
            case connect(String)
            /// `mcast`.
            case mcast(String)
        }
        /// `networks[].stream`.
        package struct Stream: Sendable, Hashable, Codable {
            /// Where the stream goes.
            package enum Address: Sendable, Hashable, Codable {
                /// A Unix socket (absolute path).
                case unix(String)
                /// `host:port`.
                case inet(String)
            }
            /// `unix` or `inet`.
            package var address: Address
            /// `server`.
            package var server: Bool
            /// Creates the stream backend.
            package init(address: Address, server: Bool = false) {
                self.address = address
                self.server = server
            }
        }
        /// `name`.
        package var name: String
        /// The one backend.
        package var backend: Backend
        /// `model`.
        package var model = "virtio-net-pci"
        /// `mac`, lower-case; derived from VM and NIC names when the manifest has none.
        package var mac: String
        /// `link`.
        package var link: Link = .up
        /// `bootIndex`.
        package var bootIndex: Int?
        /// `pciAddress` as a slot number (`0x06` → 6); nil lets qemuctl choose and keep one.
        package var pciSlot: Int?

        /// Creates a NIC with defaults.
        package init(name: String, backend: Backend, mac: String) {
            self.name = name
            self.backend = backend
            self.mac = mac
        }
    }
}

// MARK: - Display, serial, USB, RTC, audio

extension VirtualMachineSpec {
    /// `spec.display`.
    package struct Display: Sendable, Hashable, Codable {
        /// `display.vnc`.
        package struct VNC: Sendable, Hashable, Codable {
            /// `listen`.
            package var listen = "none"
            /// `passwordFrom`.
            package var passwordFrom: SecretReference?
            /// Defaults.
            package init() {}
        }
        /// `display.spice`.
        package struct SPICE: Sendable, Hashable, Codable {
            /// Image compression modes.
            package enum Compression: String, Sendable, Hashable, Codable, CaseIterable {
                /// auto_glz.
                case autoGLZ = "auto_glz"
                /// auto_lz.
                case autoLZ = "auto_lz"
                /// quic.
                case quic
                /// glz.
                case glz
                /// lz.
                case lz
                /// off.
                case off
            }
            /// `listen`.
            package var listen = "unix"
            /// `passwordFrom`.
            package var passwordFrom: SecretReference?
            /// `disableTicketing`.
            package var disableTicketing = false
            /// `compression`.
            package var compression: Compression?
            /// Defaults.
            package init() {}
        }
        /// Video devices.
        package enum Video: String, Sendable, Hashable, Codable, CaseIterable {
            /// No video device.
            case none
            /// std VGA.
            case std
            /// virtio-gpu / virtio-vga.
            case virtio
            /// QXL.
            case qxl
            /// Cirrus.
            case cirrus
            /// ramfb.
            case ramfb
        }
        /// `vnc`.
        package var vnc: VNC?
        /// `spice`.
        package var spice: SPICE?
        /// `video`, normalized: std when a display is configured and none was named, else none.
        package var video: Video = .none
        /// Defaults.
        package init() {}
    }

    /// `spec.serial`.
    package struct Serial: Sendable, Hashable, Codable {
        /// `log`.
        package var log = false
        /// Defaults.
        package init() {}
    }

    /// `spec.usb`.
    package struct USB: Sendable, Hashable, Codable {
        /// Controllers.
        package enum Controller: String, Sendable, Hashable, Codable, CaseIterable {
            /// USB 3 (qemu-xhci).
            case xhci
            /// USB 2.
            case ehci
            /// None.
            case none
        }
        /// One USB device.
        package struct Device: Sendable, Hashable, Codable {
            /// Device kinds.
            package enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
                /// usb-tablet.
                case tablet
                /// usb-kbd.
                case keyboard
                /// usb-mouse.
                case mouse
                /// usb-host pass-through.
                case host
            }
            /// `name`.
            package var name: String
            /// `type`.
            package var type: Kind
            /// `vendor` (`0x046d`).
            package var vendor: String?
            /// `product`.
            package var product: String?
            /// `bus`.
            package var bus: Int?
            /// `address`.
            package var address: Int?
            /// Creates a device.
            package init(
                name: String, type: Kind, vendor: String? = nil, product: String? = nil, bus: Int? = nil,
                address: Int? = nil
            ) {
                self.name = name
                self.type = type
                self.vendor = vendor
                self.product = product
                self.bus = bus
                self.address = address
            }
        }
        /// `controller`.
        package var controller: Controller = .xhci
        /// `devices`.
        package var devices: [Device] = []
        /// Defaults.
        package init() {}
    }

    /// `spec.rtc`.
    package struct RTC: Sendable, Hashable, Codable {
        /// `base` values.
        package enum Base: String, Sendable, Hashable, Codable, CaseIterable {
            /// UTC.
            case utc
            /// The host's local time.
            case localtime
        }
        /// `clock` values.
        package enum Clock: String, Sendable, Hashable, Codable, CaseIterable {
            /// Host clock.
            case host
            /// Host monotonic clock.
            case rt
            /// Virtual clock.
            case vm
        }
        /// `driftFix` values.
        package enum DriftFix: String, Sendable, Hashable, Codable, CaseIterable {
            /// None.
            case none
            /// Slew.
            case slew
        }
        /// `base`.
        package var base: Base = .utc
        /// `clock`.
        package var clock: Clock = .host
        /// `driftFix`.
        package var driftFix: DriftFix = .none
        /// Defaults.
        package init() {}
    }

    /// `spec.audio`.
    package struct Audio: Sendable, Hashable, Codable {
        /// Host backends.
        package enum Backend: String, Sendable, Hashable, Codable, CaseIterable {
            /// No host audio (device only).
            case none
            /// PulseAudio.
            case pa
            /// PipeWire.
            case pipewire
            /// ALSA.
            case alsa
            /// SDL.
            case sdl
            /// Through SPICE.
            case spice
            /// A WAV file.
            case wav
        }
        /// Sound cards.
        package enum Model: String, Sendable, Hashable, Codable, CaseIterable {
            /// Intel HDA.
            case hda
            /// AC97.
            case ac97
            /// SoundBlaster 16.
            case sb16
        }
        /// `backend`.
        package var backend: Backend = .none
        /// `model`.
        package var model: Model = .hda
        /// Defaults.
        package init() {}
    }
}
