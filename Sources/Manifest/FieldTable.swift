// MARK: - FieldTable

/// The manifest format as data: every field of `qemuctl/v1` with its type, default,
/// documentation and change class.
///
/// The decoder, ``ManifestSchema`` (JSON Schema and Markdown) and the planner all read
/// this one table. Paths name fields the way the planner reports them:
/// `spec.disks[].throttle.bps`.
///
/// ```swift
/// FieldTable.changeClass(at: "spec.disks[].throttle.bps")   // .live
/// FieldTable.changeClass(at: "spec.machine.type")           // .restart
/// ```
package enum FieldTable {
    /// The API version this table describes.
    package static let apiVersion = "qemuctl/v1"
    /// The only kind of document.
    package static let kind = "VirtualMachine"

    /// The root of the table: one YAML document.
    package static let document: Field = Field(
        "", .object([
            Field("apiVersion", .enumeration([apiVersion]), .metadata,
                  "Version of the manifest format.", required: true),
            Field("kind", .enumeration([kind]), .metadata, "The kind of object described.", required: true),
            Field("metadata", .object(metadataFields, oneOf: []), .metadata,
                  "Identity of the VM and free-form labels.", required: true),
            Field("spec", .object(specFields, oneOf: []), .restart,
                  "The desired state of the VM.", required: true),
        ], oneOf: []), .restart, "A qemuctl virtual machine manifest.")

    /// Every field with its path (`spec.cpu.count`), depth first, in table order.
    package static let all: [(path: String, field: Field)] = {
        var out: [(String, Field)] = []
        func walk(_ field: Field, _ path: String) {
            switch field.type {
            case .object(let children, _):
                for c in children {
                    let p = path.isEmpty ? c.name : "\(path).\(c.name)"
                    out.append((p, c))
                    walk(c, p)
                }
            case .array(let element):
                walk(element, path + "[]")
            default:
                break
            }
        }
        walk(document, "")
        return out
    }()

    private static let index: [String: Field] = Dictionary(uniqueKeysWithValues: all.map { ($0.path, $0.field) })

    /// The field at `path` (`spec.disks[].throttle.bps`); indices may be written as `[3]` or `[]`.
    package static func field(at path: String) -> Field? {
        if let f = index[path] { return f }
        // Normalise concrete indices: disks[3].name -> disks[].name
        var normalized = ""
        var skipping = false
        for ch in path {
            if ch == "[" { skipping = true; normalized.append("[") }
            else if ch == "]" { skipping = false; normalized.append("]") }
            else if !skipping { normalized.append(ch) }
        }
        return index[normalized]
    }

    /// The change class of the field at `path`, or nil for an unknown path.
    package static func changeClass(at path: String) -> ChangeClass? { field(at: path)?.change }

    /// Why a change of the field at `path` needs a relaunch: its own ``Field/restartReason`` or its
    /// nearest parent's (`spec.cloudInit.userData.file` → `spec.cloudInit`), or nil when none says.
    package static func restartReason(at path: String) -> String? {
        var p = Substring(path)
        while !p.isEmpty {
            if let reason = field(at: String(p))?.restartReason { return reason }
            guard let dot = p.lastIndex(of: ".") else { break }
            p = p[..<dot]
        }
        return nil
    }

    // MARK: - Shared pieces

    /// An enumeration field whose values are the raw values of a Swift enum, in declaration order.
    static func cases<E: CaseIterable & RawRepresentable>(_: E.Type) -> FieldType where E.RawValue == String {
        .enumeration(E.allCases.map(\.rawValue))
    }

    /// A secret reference field; `change` is its class and its children's (a disk backend's secret
    /// is read when the disk is opened: restart; a display password: live), `liveWhen` the condition.
    static func secretRef(_ name: String, _ doc: String, _ change: ChangeClass = .live, liveWhen: String? = nil) -> Field {
        Field(name, .object([
            Field("file", .string(.path), change, "A file whose whole content (one trailing newline removed) is the secret; relative to the manifest.",
                  liveWhen: liveWhen),
            Field("env", .string(.envName), change, "An environment variable of the qemuctl process that holds the secret.",
                  liveWhen: liveWhen),
        ], oneOf: ["file", "env"]), change, doc + " A reference, never the value: {file: PATH} or {env: NAME}.", liveWhen: liveWhen)
    }

    static let sizeMiB: UInt64 = 1 << 20
    static let sizeTiB: UInt64 = 1 << 40

    // MARK: - metadata

    static let metadataFields: [Field] = [
        Field("name", .string(.name), .restart,
              "The VM's name, unique across all manifests: a DNS label. Renaming means a new VM.", required: true),
        Field("labels", .map(key: .labelKey, value: .labelValue), .metadata,
              "Free-form key/value labels for selection and bookkeeping."),
    ]

    // MARK: - spec

    static let specFields: [Field] = [
        Field("runState", cases(RunState.self), .live,
              "Whether the VM should run, be paused, or be shut down.", default: .string("running")),
        Field("restartPolicy", cases(VirtualMachineSpec.RestartPolicy.self), .metadata,
              "What `qemuctl controller` does when QEMU exits while runState is running: always launch it again, onFailure only when the guest did not shut down or power off by itself, never leave it down. The first restart is immediate; further restarts in a row back off from 1 s, doubling to 5 min.",
              default: .string("never")),
        Field("arch", cases(Architecture.self), .restart,
              "Guest architecture, GOARCH names. Default: the host's architecture."),
        Field("emulator", .string(.path), .restart,
              "The QEMU binary, or a directory holding it. Default: searched in PATH and the usual places."),
        Field("machine", .object(machineFields, oneOf: []), .restart, "Machine type and accelerator."),
        Field("cpu", .object(cpuFields, oneOf: []), .restart, "Virtual CPUs."),
        Field("memory", .object(memoryFields, oneOf: []), .restart, "Guest RAM and its backing."),
        Field("firmware", .object(firmwareFields, oneOf: []), .restart, "BIOS or EFI firmware."),
        Field("boot", .object(bootFields, oneOf: []), .restart, "Direct kernel boot and boot order."),
        Field("disks", .array(diskField), .live,
              "Block devices. Adding or removing a disk is a hot-plug; images are never deleted.",
              liveWhen: "on q35: adding into a free hot-plug root port (virtio, nvme) or onto a SCSI controller present at launch; "
                  + "removing a hot-plugged or SCSI disk"),
        Field("cdroms", .array(cdromField), .restart, "CD-ROM drives; their media can be changed live."),
        Field("networks", .array(networkField), .live,
              "Network interfaces. Adding or removing one is a hot-plug.",
              liveWhen: "on q35: adding into a free hot-plug root port; removing a hot-plugged NIC"),
        Field("display", .object(displayFields, oneOf: []), .restart, "Remote displays and video."),
        Field("serial", .object(serialFields, oneOf: []), .restart, "The serial console."),
        Field("guestAgent", .bool, .restart,
              "Add a virtio-serial port for the QEMU guest agent (org.qemu.guest_agent.0).", default: .bool(false)),
        Field("cloudInit", .object(cloudInitFields, oneOf: []), .restart,
              "A cloud-init NoCloud seed, built at each launch into the VM's runtime directory (0600) and attached "
              + "read-only as a SCSI CD-ROM labelled cidata. meta-data has instance-id (instanceID, default iid-UUID: stable "
              + "for the VM) and local-hostname (the VM name).", restartReason: cloudInitRestartReason),
        Field("readiness", .object(readinessFields, oneOf: ["guestAgent", "tcpPort", "serialMatch"]), .metadata,
              "How qemuctl tells that the guest is ready (`wait --for ready`, `apply --wait-ready`, get's READY): exactly one probe."),
        Field("spiceAgent", .bool, .restart,
              "Add the SPICE agent channel (clipboard, resolution); needs display.spice.", default: .bool(false)),
        Field("usbTablet", .bool, .live,
              "Add a USB tablet for absolute pointer positioning on VNC/SPICE.", default: .bool(false),
              liveWhen: "with a USB controller present at launch"),
        Field("usb", .object(usbFields, oneOf: []), .restart, "USB controller and devices."),
        Field("balloon", .bool, .restart, "Add a virtio memory balloon device.", default: .bool(false)),
        Field("rng", .bool, .restart, "Add a virtio RNG fed from the host's /dev/urandom.", default: .bool(false)),
        Field("rtc", .object(rtcFields, oneOf: []), .restart, "The real-time clock."),
        Field("audio", .object(audioFields, oneOf: []), .restart, "An audio device and its host backend."),
    ]

    /// Why a cloud-init change needs a relaunch.
    package static let cloudInitRestartReason = "cloud-init runs at first boot; a new instance-id re-runs it"

    /// A text source of the seed: a file, an environment variable, or inline text.
    static func cloudInitSource(_ name: String, _ doc: String) -> Field {
        Field(name, .object([
            Field("file", .string(.path), .restart,
                  "A file whose content is used, read as secrets are (this user's, mode 0600 or 0400, at most 64 KiB); relative to the manifest."),
            Field("env", .string(.envName), .restart, "An environment variable of the qemuctl process that holds the text."),
            Field("inline", .string(.document), .restart, "The text itself (kept in the record like the rest of the manifest)."),
        ], oneOf: ["file", "env", "inline"]), .restart,
              doc + " {file: PATH}, {env: NAME} or {inline: TEXT}; a file or variable is a secret: its value never reaches argv, logs, plans or state.")
    }

    static let cloudInitFields: [Field] = [
        cloudInitSource("userData", "user-data: #cloud-config, a script or any format cloud-init reads."),
        Field("sshAuthorizedKeys", .array(Field("[]", .string(.text), .restart, "One public key line.")), .restart,
              "Public keys for the default user, merged into user-data (ssh_authorized_keys; appended to the user's own "
              + "#cloud-config keys). With user-data that is not #cloud-config, put the keys in the user-data instead."),
        cloudInitSource("networkConfig", "network-config (version 1 or 2). Default: cloud-init's fallback, DHCP on the first NIC."),
        Field("metaData", .map(key: .labelKey, value: .text), .restart,
              "More meta-data keys (letters, digits, '-' and '_'; not instance-id or local-hostname)."),
        Field("instanceID", .string(.word), .restart,
              "The instance-id. Default: iid-UUID (the VM's uuid), stable across relaunches; set a new value to make "
              + "cloud-init treat the next boot as a first boot and run its once-per-instance modules again."),
    ]

    static let readinessFields: [Field] = [
        Field("guestAgent", .bool, .metadata,
              "true: ready when the guest agent answers guest-ping; needs spec.guestAgent: true."),
        Field("tcpPort", .integer(min: 1, max: 65535), .metadata,
              "Ready when a server on this guest TCP port sends its first bytes (an ssh banner) through the VM's host "
              + "forward; the port must be the guest port of a tcp hostfwd of a user network."),
        Field("serialMatch", .string(.text), .metadata,
              "Ready when a line of the serial log matches this regular expression (Swift Regex syntax); needs spec.serial.log: true."),
    ]

    static let machineFields: [Field] = [
        Field("type", .string(.word), .restart,
              "Machine type (q35, pc, virt, …). Default: the usual one for the architecture."),
        Field("accel", cases(VirtualMachineSpec.Machine.Accelerator.self), .restart,
              "Accelerator. auto uses KVM when the host offers it and falls back to TCG.", default: .string("auto")),
        Field("hotplugPorts", .integer(min: 0, max: 28), .restart,
              "PCIe root ports kept free for hot-plugged disks and NICs (PCIe machines).", default: .integer(4)),
        Field("dumpGuestCore", .bool, .restart,
              "Include guest memory in QEMU core dumps.", default: .bool(false)),
    ]

    static let cpuFields: [Field] = [
        Field("model", .string(.word), .restart,
              "CPU model (host, max, qemu64, …). Default: a model that works with the chosen accelerator."),
        Field("count", .integer(min: 1, max: 1024), .live,
              "vCPUs at boot. Changes up to maxCount are hot-plugged.", default: .integer(1), liveUpTo: "maxCount",
              liveWhen: "within cpu.maxCount set at launch and not below the boot count"),
        Field("maxCount", .integer(min: 1, max: 1024), .restart,
              "Upper bound for hot-plugged vCPUs. Default: count."),
        Field("sockets", .integer(min: 1, max: 1024), .restart, "CPU sockets of the topology."),
        Field("cores", .integer(min: 1, max: 1024), .restart, "Cores per socket."),
        Field("threads", .integer(min: 1, max: 1024), .restart, "Threads per core."),
        Field("features", .array(Field("[]", .string(.cpuFeature), .restart, "A feature.")), .restart,
              "CPU features to add (+name or name) or remove (-name)."),
    ]

    static let memoryFields: [Field] = [
        Field("size", .size(min: sizeMiB, max: 16 * sizeTiB), .live,
              "RAM at boot. A growth up to max is applied live by hot-plugging one DIMM; a shrink live only by unplugging whole hot-plugged DIMMs the guest releases. (The balloon device, `balloon`, is not a size target: qemuctl does not inflate it.)",
              default: .string("512MiB"), liveUpTo: "max",
              liveWhen: "within memory.max set at launch and not below the boot size; a shrink only by whole hot-plugged DIMMs"),
        Field("max", .size(min: sizeMiB, max: 16 * sizeTiB), .restart,
              "Upper bound for memory hot-plug. Default: no hot-plug."),
        Field("slots", .integer(min: 1, max: 256), .restart,
              "Memory hot-plug slots; only with max.", default: .integer(8)),
        Field("backend", cases(VirtualMachineSpec.Memory.Backend.self), .restart,
              "Backing of guest RAM.", default: .string("ram")),
        Field("path", .string(.path), .restart, "File or hugetlbfs directory backing RAM; required for backend file."),
        Field("share", .bool, .restart, "Map the backing shared (vhost-user, virtiofs).", default: .bool(false)),
        Field("prealloc", .bool, .restart, "Allocate all RAM at start.", default: .bool(false)),
        Field("lock", .bool, .restart, "Lock guest and QEMU memory in host RAM (mlock).", default: .bool(false)),
    ]

    static let firmwareFields: [Field] = [
        Field("type", cases(VirtualMachineSpec.Firmware.Kind.self), .restart, "Firmware kind.", default: .string("bios")),
        Field("code", .string(.path), .restart,
              "EFI code image (read-only pflash). Default: chosen from QEMU's firmware descriptors (/usr/share/qemu/firmware, "
              + "/etc/qemu/firmware, ~/.config/qemu/firmware; Debian's ovmf package) by architecture, machine type and secureBoot."),
        Field("vars", .string(.path), .restart,
              "EFI variable store (writable pflash), the VM's own. Created once as a copy of the code's variable template "
              + "when missing, never overwritten; kept by delete like a disk. Default: STATE_DIR/NAME.efivars.fd."),
        Field("secureBoot", .bool, .restart,
              "Boot with UEFI Secure Boot enforced (Microsoft keys enrolled, SMM on). q35 machines only.",
              default: .bool(false)),
    ]

    static let bootFields: [Field] = [
        Field("kernel", .string(.path), .restart, "Kernel image for direct boot."),
        Field("initrd", .string(.path), .restart, "Initial ramdisk; needs kernel."),
        Field("cmdline", .string(.text), .restart, "Kernel command line; needs kernel."),
        Field("order", .string(.bootOrder), .restart, "Boot order as drive letters: c disk, d CD-ROM, n network."),
        Field("menu", .bool, .restart, "Show the firmware boot menu.", default: .bool(false)),
        Field("strict", .bool, .restart, "Do not fall back to other devices when the listed ones fail.", default: .bool(false)),
    ]

    // MARK: - disks

    static let throttleFields: [Field] = {
        func bps(_ name: String, _ doc: String) -> Field {
            Field(name, .size(min: 1, max: 1 << 50), .live, doc + " Bytes per second, with a unit: 100MiB.")
        }
        func iops(_ name: String, _ doc: String) -> Field {
            Field(name, .integer(min: 1, max: 1 << 40), .live, doc + " Operations per second.")
        }
        return [
            bps("bps", "Total throughput limit."),
            bps("bpsRead", "Read throughput limit."),
            bps("bpsWrite", "Write throughput limit."),
            iops("iops", "Total operations limit."),
            iops("iopsRead", "Read operations limit."),
            iops("iopsWrite", "Write operations limit."),
            bps("bpsMax", "Burst total throughput; needs bps."),
            bps("bpsReadMax", "Burst read throughput; needs bpsRead."),
            bps("bpsWriteMax", "Burst write throughput; needs bpsWrite."),
            iops("iopsMax", "Burst total operations; needs iops."),
            iops("iopsReadMax", "Burst read operations; needs iopsRead."),
            iops("iopsWriteMax", "Burst write operations; needs iopsWrite."),
            Field("burstLength", .integer(min: 1, max: 86_400), .live,
                  "Seconds a burst may last; needs a …Max limit.", default: .integer(1)),
            Field("iopsSize", .size(min: 512, max: 1 << 30), .live,
                  "Count larger requests as several operations of this size."),
        ]
    }()

    /// The fields of an image reference (`create.from`, `file.backing`): a path and an explicit format.
    static func imageFileFields(_ path: String, _ format: String, _ change: ChangeClass) -> [Field] {
        [
            Field("path", .string(.path), change, path, required: true),
            Field("format", cases(VirtualMachineSpec.Disk.Format.self), change, format + " Always explicit.", required: true),
        ]
    }

    static let diskField = Field("[]", .object([
        Field("name", .string(.deviceName), .restart, "Drive name, unique among the VM's disks and CD-ROMs.", required: true),
        Field("file", .object([
            Field("path", .string(.path), .restart, "Image file or block device; relative to the manifest.", required: true),
            Field("format", cases(VirtualMachineSpec.Disk.Format.self), .restart,
                  "Image format, always explicit (no probing).", required: true),
            Field("backing", .object(imageFileFields("Backing file named in the image's header; relative to the manifest.",
                                                     "Format of the backing file.", .restart),
                                     oneOf: []), .restart,
                  "The backing file an existing qcow2 image names, declared; opened read-only. An image naming one that is not declared is refused."),
        ], oneOf: []), .restart, "A local image file or block device."),
        Field("nbd", .object([
            Field("unix", .string(.path), .restart, "Server's Unix socket."),
            Field("host", .string(.word), .restart, "Server's host name or address."),
            Field("port", .integer(min: 1, max: 65535), .restart, "Server's TCP port; with host.", default: .integer(10809)),
            Field("export", .string(.text), .restart, "Export name."),
            Field("tls", .bool, .restart, "Use TLS (x509 credentials of the host).", default: .bool(false)),
        ], oneOf: ["unix", "host"]), .restart, "A Network Block Device export."),
        Field("rbd", .object([
            Field("pool", .string(.word), .restart, "Ceph pool.", required: true),
            Field("image", .string(.word), .restart, "RBD image.", required: true),
            Field("snapshot", .string(.word), .restart, "Snapshot to open (read-only)."),
            Field("conf", .string(.path), .restart, "ceph.conf to use."),
            Field("user", .string(.word), .restart, "Ceph client id."),
            secretRef("keyFrom", "The cephx key; read when the disk is opened.", .restart),
        ], oneOf: []), .restart, "A Ceph RBD image."),
        Field("iscsi", .object([
            Field("portal", .string(.hostPort), .restart, "Target portal, host:port.", required: true),
            Field("target", .string(.word), .restart, "Target IQN.", required: true),
            Field("lun", .integer(min: 0, max: 16383), .restart, "Logical unit number.", default: .integer(0)),
            Field("user", .string(.word), .restart, "CHAP user name."),
            secretRef("passwordFrom", "The CHAP password; read when the disk is opened.", .restart),
            Field("initiator", .string(.word), .restart, "Initiator IQN. Default: QEMU's."),
        ], oneOf: []), .restart, "An iSCSI LUN."),
        Field("interface", cases(VirtualMachineSpec.Disk.Interface.self), .restart,
              "How the guest sees the disk.", default: .string("virtio")),
        Field("serial", .string(.serial), .restart, "Serial number the guest sees. Default (nvme): the disk name."),
        Field("readOnly", .bool, .restart, "Attach read-only.", default: .bool(false)),
        Field("cache", cases(VirtualMachineSpec.Disk.Cache.self), .restart,
              "Host cache mode.", default: .string("writeback")),
        Field("discard", .bool, .restart, "Pass discard (TRIM) requests to the image.", default: .bool(false)),
        Field("bootIndex", .integer(min: 0, max: 255), .restart, "Boot priority; lower boots first."),
        Field("pciAddress", .string(.pciSlot), .restart,
              "The disk's slot on the root PCI bus, like 0x06 (virtio and nvme disks); see networks[].pciAddress."),
        Field("create", .object([
            Field("size", .size(min: sizeMiB, max: 64 * sizeTiB), .metadata,
                  "Virtual size of the new image; required without from, and with from at least the base's virtual size (default: the base's)."),
            Field("from", .object(imageFileFields("Base image; relative to the manifest. Opened read-only, never written; may be shared by many VMs.",
                                                  "Format of the base image.", .restart),
                                  oneOf: []), .restart,
                  "Make the new image from a base image instead of blank; an overlay's base is also its declared backing file (a restart to change)."),
            Field("mode", cases(VirtualMachineSpec.Disk.CreateMode.self), .restart,
                  "overlay: a qcow2 image backed by the base (copy-on-write); copy: an independent copy in the disk's format.",
                  default: .string("overlay")),
        ], oneOf: []), .metadata,
              "Create the image when it does not exist (file backend). Never resized, never deleted."),
        Field("throttle", .object(throttleFields, oneOf: []), .live, "I/O limits, changed live."),
    ], oneOf: ["file", "nbd", "rbd", "iscsi"]), .live, "A disk.")

    static let cdromField = Field("[]", .object([
        Field("name", .string(.deviceName), .restart, "Drive name, unique among the VM's disks and CD-ROMs.", required: true),
        Field("path", .string(.path), .live, "ISO image inserted; absent means an empty drive. Changed live."),
        Field("interface", cases(VirtualMachineSpec.CDROM.Interface.self), .restart, "How the guest sees the drive.", default: .string("ide")),
        Field("bootIndex", .integer(min: 0, max: 255), .restart, "Boot priority; lower boots first."),
    ], oneOf: []), .restart, "A CD-ROM drive.")

    // MARK: - networks

    static let networkField = Field("[]", .object([
        Field("name", .string(.deviceName), .restart, "NIC name, unique within the VM.", required: true),
        Field("user", .object([
            Field("net", .string(.ipv4CIDR), .restart, "Guest network.", default: .string("10.0.2.0/24")),
            Field("host", .string(.ipv4), .restart, "Host address seen by the guest."),
            Field("dns", .string(.ipv4), .restart, "DNS server address seen by the guest."),
            Field("dhcpStart", .string(.ipv4), .restart, "First address handed out by DHCP."),
            Field("restrict", .bool, .restart, "Isolate the guest from the host and the outside.", default: .bool(false)),
            Field("hostname", .string(.word), .restart, "Host name sent by DHCP."),
            Field("domain", .string(.word), .restart, "DNS search domain sent by DHCP."),
            Field("hostfwd", .array(Field("[]", .string(.hostfwd), .restart, "One forward.")), .restart,
                  "Port forwards from the host to the guest: tcp:127.0.0.1:2222-:22."),
        ], oneOf: []), .restart, "User-mode networking (slirp), no privileges needed."),
        Field("tap", .object([
            Field("ifname", .string(.ifname), .restart, "Host tap interface. Default: allocated by the kernel."),
            Field("bridge", .string(.ifname), .restart, "Bridge to add the tap to."),
            Field("script", .string(.path), .restart, "Script run when the tap comes up. Default: none."),
            Field("downscript", .string(.path), .restart, "Script run when the tap goes down. Default: none."),
            Field("vhost", .bool, .restart, "Use vhost-net acceleration.", default: .bool(false)),
            Field("queues", .integer(min: 1, max: 64), .restart, "Multiqueue count.", default: .integer(1)),
        ], oneOf: []), .restart, "A host tap interface."),
        Field("bridge", .object([
            Field("name", .string(.ifname), .restart, "Host bridge to join.", required: true),
            Field("helper", .string(.path), .restart, "qemu-bridge-helper to use. Default: QEMU's."),
        ], oneOf: []), .restart, "A tap on a host bridge, made by qemu-bridge-helper."),
        Field("socket", .object([
            Field("listen", .string(.hostPort), .restart, "Listen for one peer on host:port."),
            Field("connect", .string(.hostPort), .restart, "Connect to a peer at host:port."),
            Field("mcast", .string(.hostPort), .restart, "Join a multicast group addr:port."),
        ], oneOf: ["listen", "connect", "mcast"]), .restart, "A socket tunnel to another QEMU."),
        Field("stream", .object([
            Field("unix", .string(.path), .restart, "Unix socket path."),
            Field("inet", .string(.hostPort), .restart, "host:port."),
            Field("server", .bool, .restart, "Listen instead of connecting.", default: .bool(false)),
        ], oneOf: ["unix", "inet"]), .restart, "A stream socket (passt, another QEMU)."),
        Field("vde", .object([
            Field("sock", .string(.path), .restart, "VDE switch socket directory.", required: true),
            Field("port", .integer(min: 0, max: 65535), .restart, "Switch port."),
            Field("group", .string(.word), .restart, "Group owning the port."),
        ], oneOf: []), .restart, "A VDE switch port."),
        Field("model", .string(.word), .restart, "NIC model the guest sees.", default: .string("virtio-net-pci")),
        Field("mac", .string(.mac), .restart,
              "MAC address. Default: derived from the VM and NIC names (52:54:xx:xx:xx:xx), stable across runs."),
        Field("link", cases(VirtualMachineSpec.Network.Link.self), .live,
              "Link state, changed live (set_link). QEMU reports no NIC's link state (no QMP or HMP query has it), so `diff` and `describe` show the state qemuctl last set: a set_link made by someone else is not seen.",
              default: .string("up")),
        Field("bootIndex", .integer(min: 0, max: 255), .restart, "Boot priority; lower boots first."),
        Field("pciAddress", .string(.pciSlot), .restart,
              "The device's slot on the root PCI bus (q35 `pcie.0`, i440FX `pci.0`), like 0x06; QEMU's addr. Without it qemuctl picks a free slot at first launch and keeps it across restarts (recorded per device), so the guest's name for the device (enp0s6) stays."),
    ], oneOf: ["user", "tap", "bridge", "socket", "stream", "vde"]), .live, "A NIC.")

    // MARK: - display, serial, usb, rtc, audio

    static let displayFields: [Field] = [
        Field("vnc", .object([
            Field("listen", .string(.vncListen), .restart,
                  "none (clients are handed over by qemuctl), HOST:DISPLAY or unix:PATH.", default: .string("none")),
            secretRef("passwordFrom", "VNC password, set and changed live. QEMU cannot report a password, so `diff` compares against the one qemuctl last set.",
                      liveWhen: "when VNC was launched with a password (QEMU can neither switch VNC password auth on nor off live)"),
        ], oneOf: []), .restart, "A VNC server."),
        Field("spice", .object([
            Field("listen", .string(.spiceListen), .restart,
                  "unix (a socket in the VM's runtime directory) or HOST:PORT.", default: .string("unix")),
            secretRef("passwordFrom", "SPICE ticket, set and changed live. QEMU cannot report a ticket, so `diff` compares against the one qemuctl last set."),
            Field("disableTicketing", .bool, .restart, "Allow clients without a password.", default: .bool(false)),
            Field("compression", cases(VirtualMachineSpec.Display.SPICE.Compression.self), .restart,
                  "Image compression. Default: QEMU's."),
        ], oneOf: []), .restart, "A SPICE server."),
        Field("video", cases(VirtualMachineSpec.Display.Video.self), .restart,
              "Video device. Default: std when a display is configured, none otherwise."),
    ]

    static let serialFields: [Field] = [
        Field("log", .bool, .restart, "Also write console output to a log file in the VM's runtime directory.",
              default: .bool(false)),
    ]

    static let usbFields: [Field] = [
        Field("controller", cases(VirtualMachineSpec.USB.Controller.self), .restart,
              "USB controller; added when any USB device is configured.", default: .string("xhci")),
        Field("devices", .array(Field("[]", .object([
            Field("name", .string(.name), .restart, "Device name, unique within the VM's USB devices.", required: true),
            Field("type", cases(VirtualMachineSpec.USB.Device.Kind.self), .restart,
                  "An emulated device, or a host device passed through.", required: true),
            Field("vendor", .string(.usbID), .restart, "Host device vendor id (type host)."),
            Field("product", .string(.usbID), .restart, "Host device product id (type host)."),
            Field("bus", .integer(min: 0, max: 255), .restart, "Host bus number (type host)."),
            Field("address", .integer(min: 0, max: 255), .restart, "Host device address (type host)."),
        ], oneOf: []), .live, "A USB device.")), .live, "USB devices; adding or removing one is a hot-plug.",
              liveWhen: "with a USB controller present at launch"),
    ]

    static let rtcFields: [Field] = [
        Field("base", cases(VirtualMachineSpec.RTC.Base.self), .restart, "What the guest clock starts from.", default: .string("utc")),
        Field("clock", cases(VirtualMachineSpec.RTC.Clock.self), .restart, "Clock source.", default: .string("host")),
        Field("driftFix", cases(VirtualMachineSpec.RTC.DriftFix.self), .restart,
              "Catch up lost timer ticks (Windows guests).", default: .string("none")),
    ]

    static let audioFields: [Field] = [
        Field("backend", cases(VirtualMachineSpec.Audio.Backend.self), .restart,
              "Host audio backend.", default: .string("none")),
        Field("model", cases(VirtualMachineSpec.Audio.Model.self), .restart, "Sound card the guest sees.", default: .string("hda")),
    ]
}
