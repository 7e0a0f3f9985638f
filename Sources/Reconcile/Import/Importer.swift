#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Manifest
import QemuCtl

/// A QEMU started without qemuctl, as `qemuctl import` read it: a manifest that
/// describes it, the options no manifest can express, and what adoption records.
package struct ImportedVM: Sendable {
    /// The VM name (`-name`, `query-name`, or the one given).
    package var name: String
    /// QEMU's process id.
    package var pid: Int32
    /// Its QMP socket.
    package var socketPath: String
    /// Its SMBIOS uuid (`query-uuid`).
    package var uuid: String
    /// `kvm` or `tcg` (`query-kvm`).
    package var accelerator: String
    /// The manifest, in field order.
    package var document: ManifestDocument
    /// One line per option (or part of one) the manifest cannot express.
    package var warnings: [String]
    /// QEMU's names of block devices (`query-block` `qdev`) → the ids qemuctl gives them
    /// (`disk-NAME`, `cd-NAME`), so observation finds them by the manifest's names.
    package var deviceAliases: [String: String]
    /// The libvirt domain when libvirt manages this QEMU (adopting it would make two managers).
    package var libvirtDomain: String? = nil
    /// The root-bus PCI slot of each device, by the id qemuctl gives it (QEMU's ids through
    /// ``deviceAliases``): recorded at adoption, so a relaunch keeps the guest's device names.
    package var pciSlots: [String: Int] = [:]
}

/// Why an import failed.
package struct ImportError: Error, Sendable, CustomStringConvertible {
    /// What went wrong and what to do.
    package var message: String
    /// Creates an error.
    package init(_ message: String) { self.message = message }
    /// The message.
    package var description: String { message }
}

/// Reads a running QEMU over QMP and from its command line (`/proc/PID/cmdline`) and
/// writes the manifest that describes it.
///
/// Values come from QMP where QEMU reports them (run state, vCPUs, memory, disks with
/// their images, formats, read-only flags, cache modes and throttles, VNC/SPICE, uuid,
/// accelerator, MAC addresses); the command line says which options exist and fills
/// what QMP cannot report (kernel, CPU model, topology, port forwards). Every option,
/// or option property, that the manifest cannot express becomes a warning, never a
/// silent omission.
package enum Importer {
    /// Inspects the QEMU behind `socketPath`, or the one with process id `pid` (its
    /// socket is found on its command line: `-qmp unix:…` or `-chardev socket` + `-mon`).
    ///
    /// The monitor is held only for the queries (a short-lived connection).
    package static func inspect(socketPath: String?, pid: Int32?, name: String?, timeout: Duration) async throws(ImportError) -> ImportedVM {
        var path = socketPath
        var inherited = false
        if path == nil, let pid {
            guard let argv = Posix.commandLine(of: pid), Posix.processExists(pid) else { throw ImportError("no process with pid \(pid)") }
            let monitors = MonitorLocator(pid: pid, argv: argv)
            guard let found = monitors.paths.first else { throw ImportError(monitors.noUsableMonitor(pid: pid, program: argv.first)) }
            path = found
            inherited = monitors.inheritedPaths.contains(found)
        }
        guard let path else { throw ImportError("give a VM name, --pid PID or --socket PATH") }
        let instance: Instance
        do { instance = try await Instance.attach(socketPath: path, timeout: timeout) } catch {
            if error.timedOut {
                throw ImportError("the monitor at \(path) did not answer within \(timeout): another client holds it (QEMU serves one at a time) or QEMU is unresponsive")
            }
            if error.code == .unsupported { throw ImportError("cannot learn the process id behind \(path) (SO_PEERCRED)") }
            throw ImportError("cannot attach to \(path): \(error.reason)")
        }
        defer { instance.close() }
        var peer = instance.pid
        if let pid, pid != peer {
            // An inherited socket's credentials are its creator's; /proc/PID/fd proved it is pid's.
            guard inherited else { throw ImportError("\(path) belongs to pid \(peer), not \(pid)") }
            peer = pid
        }
        // What the kernel says about the peer, not what it says about itself: it must run a QEMU binary.
        let exe = ProcessIdentity.executable(of: peer) ?? "an unreadable executable"
        guard StoredRecord.isQEMU(exe) else {
            throw ImportError("\(path) is served by pid \(peer), which runs \(exe), not a QEMU system emulator; not importing it")
        }
        guard let argv = Posix.commandLine(of: peer) else { throw ImportError("cannot read the command line of pid \(peer)") }
        var reader = Reader(instance: instance, timeout: timeout, argv: argv, socketPath: path)
        do {
            var vm = try await reader.read(pid: peer, name: name)
            vm.libvirtDomain = MonitorLocator(pid: peer, argv: argv).libvirtDomain
            return vm
        } catch {
            throw ImportError("reading the VM behind \(path) over QMP: \(error.reason)")
        }
    }
}

// MARK: - Command-line options

/// One option of a QEMU command line: `-name value` or a flag.
struct QEMUOption {
    var name: String
    var value: String?
    /// As written, for warnings.
    var text: String { value.map { "-\(name) \($0)" } ?? "-\(name)" }

    /// QEMU 7.2 (x86) options that take no argument.
    static let flags: Set<String> = [
        "S", "nodefaults", "no-user-config", "daemonize", "enable-kvm", "no-reboot", "no-shutdown", "snapshot",
        "nographic", "no-hpet", "no-acpi", "usb", "full-screen", "s", "no-fd-bootchk", "win2k-hack", "no-quit",
        "preconfig", "only-migratable", "enable-sync-profile", "alt-grab", "ctrl-grab", "no-frame", "rtc-td-hack",
        "semihosting", "mem-prealloc", "singlestep", "old-param",
    ]

    static func parse(_ argv: [String]) -> [QEMUOption] {
        var out: [QEMUOption] = []
        var i = 1
        while i < argv.count {
            var a = argv[i]
            i += 1
            guard a.hasPrefix("-") else { out.append(QEMUOption(name: "", value: a)); continue }
            a.removeFirst()
            if a.hasPrefix("-") { a.removeFirst() }
            if let eq = a.firstIndex(of: "="), !flags.contains(String(a[..<eq])) {
                out.append(QEMUOption(name: String(a[..<eq]), value: String(a[a.index(after: eq)...])))
            } else if flags.contains(a) || i >= argv.count {
                out.append(QEMUOption(name: a, value: nil))
            } else {
                out.append(QEMUOption(name: a, value: argv[i]))
                i += 1
            }
        }
        return out
    }

    /// The properties of `-device`, `-netdev`, `-blockdev`, `-object`, `-chardev`…, in
    /// either syntax (JSON or `key=value,…`); the leading positional item is stored under `implied`.
    func properties(implied: String) -> [(key: String, value: String)] {
        guard let value else { return [] }
        if let json = QEMUCommandLineReader.jsonProperties(value) { return json }
        return QEMUCommandLineReader.splitOptions(value).enumerated().map { i, kv in
            kv.value == nil && i == 0 ? (implied, kv.key) : (kv.key, kv.value ?? "on")
        }
    }

}

extension [(key: String, value: String)] {
    subscript(_ key: String) -> String? { first { $0.key == key }?.value }
    func all(_ key: String) -> [String] { filter { $0.key == key }.map(\.value) }
    func keys(except known: Set<String>) -> [String] { map(\.key).filter { !known.contains($0) } }
}

// MARK: - Reader

private struct Reader {
    let instance: Instance
    let timeout: Duration
    let argv: [String]
    let socketPath: String
    var warnings: [String] = []
    var aliases: [String: String] = [:]

    init(instance: Instance, timeout: Duration, argv: [String], socketPath: String) {
        self.instance = instance
        self.timeout = timeout
        self.argv = argv
        self.socketPath = socketPath
    }

    /// A QOM property's string value, nil when QEMU has none.
    func qom(_ path: String, _ property: String) async -> String? {
        await instance.qomString(path: path, property: property, timeout: timeout)
    }

    mutating func drop(_ o: QEMUOption, _ why: String? = nil) {
        warnings.append("\(o.text) is not expressible in a manifest\(why.map { " (\($0))" } ?? ""); it will be dropped on the next restart")
    }

    mutating func dropKeys(_ o: QEMUOption, _ keys: [String]) {
        guard !keys.isEmpty else { return }
        let list = keys.joined(separator: ", ")
        warnings.append("\(o.text): \(keys.count == 1 ? "property" : "properties") \(list) \(keys.count == 1 ? "is" : "are") not expressible in a manifest; \(keys.count == 1 ? "it" : "they") will be dropped on the next restart")
    }

    static func on(_ v: String?) -> Bool { ["on", "yes", "true", "y"].contains(v ?? "") }

    /// A manifest name (`[a-z][a-z0-9-]*`, at most 24 characters) from a QEMU id.
    static func manifestName(_ id: String?, prefix: String, fallback: String, taken: Set<String>) -> String {
        var base = id.map { $0.hasPrefix(prefix) ? String($0.dropFirst(prefix.count)) : $0 }?.lowercased() ?? ""
        base = String(base.map { ($0.isLetter && $0.isASCII) || ($0.isNumber && $0.isASCII) ? $0 : "-" })
        while base.hasSuffix("-") { base.removeLast() }
        if base.count > 24 { base = String(base.prefix(24)) }
        if base.first.map({ !($0.isLetter) }) ?? true { base = "" }
        if base.isEmpty || taken.contains(base) {
            var i = 0
            while taken.contains("\(fallback)\(i)") { i += 1 }
            base = "\(fallback)\(i)"
        }
        return base
    }

    static let diskDrivers: [String: String] = [
        "virtio-blk-pci": "virtio", "virtio-blk": "virtio", "scsi-hd": "scsi", "ide-hd": "ide", "nvme": "nvme",
    ]
    static let cdDrivers: [String: String] = ["ide-cd": "ide", "scsi-cd": "scsi"]
    static let nicDrivers: Set<String> = [
        "virtio-net-pci", "virtio-net", "e1000", "e1000e", "rtl8139", "vmxnet3", "ne2k_pci", "i82559er", "pcnet",
    ]
    static let videoDrivers: [String: String] = ["VGA": "std", "virtio-vga": "virtio", "qxl-vga": "qxl"]
    static let placement: Set<String> = ["id", "bus", "addr", "driver"]

    mutating func read(pid: Int32, name given: String?) async throws(InstanceError) -> ImportedVM {
        let options = QEMUOption.parse(argv)
        // MARK: QMP facts
        let facts = try await instance.facts(timeout: timeout)
        let (status, qemuName, uuid, kvm) = (facts.status, facts.name, facts.uuid, facts.kvm)
        let (cpus, memory, blocks) = (facts.vcpus, facts.baseMemory, facts.blocks)

        var name = given ?? qemuName ?? QEMUCommandLineReader(arguments: argv).name ?? ""
        if name.isEmpty {
            var base = Substring(socketPath.split(separator: "/").last ?? "vm")
            if base.hasSuffix(".sock") { base = base.dropLast(5) }
            name = String(base)
        }

        // MARK: Walk the command line
        var machineType: String?
        var dumpGuestCore: Bool?
        var cpuModel: String?
        var cpuFeatures: [String] = []
        var smp: [(key: String, value: String)] = []
        var maxMemory: String?
        var memorySlots: Int?
        var boot: [(String, ManifestDocument)] = []
        var bootOrder: [(String, ManifestDocument)] = []
        var noDefaults = false
        var devices: [QEMUOption] = []
        var netdevs: [String: QEMUOption] = [:]
        var blockdevs: [QEMUOption] = []
        var drives: [QEMUOption] = []
        var objects: [String: QEMUOption] = [:]
        var chardevs: [String: QEMUOption] = [:]
        var monitorChardevs: Set<String> = []
        var vnc: [(String, ManifestDocument)]?
        var spice: [(String, ManifestDocument)]?
        var video: String?
        var rtc: [(String, ManifestDocument)] = []
        for o in options {
            switch o.name {
            case "name":
                dropKeys(o, o.properties(implied: "guest").keys(except: ["guest"]))
            case "uuid", "no-user-config", "daemonize", "pidfile", "S":
                break  // qemuctl sets these itself (the uuid is kept in the record)
            case "nodefaults":
                noDefaults = true
            case "machine", "M":
                let p = o.properties(implied: "type")
                machineType = p["type"]
                if let d = p["dump-guest-core"] { dumpGuestCore = Self.on(d) }
                dropKeys(o, p.keys(except: ["type", "accel", "dump-guest-core"]))
            case "accel":
                dropKeys(o, o.properties(implied: "accel").keys(except: ["accel"]))
            case "enable-kvm":
                break
            case "cpu":
                let items = QEMUCommandLineReader.splitOptions(o.value ?? "")
                cpuModel = items.first?.key
                for item in items.dropFirst() {
                    if let v = item.value { cpuFeatures.append((Self.on(v) ? "+" : "-") + item.key) }
                    else if item.key.hasPrefix("+") || item.key.hasPrefix("-") { cpuFeatures.append(item.key) }
                    else { cpuFeatures.append("+" + item.key) }
                }
            case "smp":
                smp = o.properties(implied: "cpus")
                dropKeys(o, smp.keys(except: ["cpus", "maxcpus", "sockets", "cores", "threads"]))
            case "m":
                let p = o.properties(implied: "size")
                maxMemory = p["maxmem"]
                memorySlots = p["slots"].flatMap { Int($0) }
                dropKeys(o, p.keys(except: ["size", "maxmem", "slots"]))
            case "kernel": boot.append(("kernel", .string(o.value ?? "")))
            case "initrd": boot.append(("initrd", .string(o.value ?? "")))
            case "append": boot.append(("cmdline", .string(o.value ?? "")))
            case "boot":
                let p = o.properties(implied: "order")
                if let order = p["order"] { bootOrder.append(("order", .string(order))) }
                if Self.on(p["menu"]) { bootOrder.append(("menu", .bool(true))) }
                if Self.on(p["strict"]) { bootOrder.append(("strict", .bool(true))) }
                dropKeys(o, p.keys(except: ["order", "menu", "strict"]))
            case "display":
                if o.value?.hasPrefix("none") != true { drop(o, "qemuctl runs QEMU headless: use qemuctl vnc or spice") }
            case "qmp", "qmp-pretty":
                break  // the monitor: qemuctl gives the VM its own
            case "mon":
                let p = o.properties(implied: "chardev")
                if p["mode"] == "control", let c = p["chardev"] { monitorChardevs.insert(c) }
                else { drop(o, "a human monitor; use qemuctl hmp") }
            case "chardev":
                if let id = o.properties(implied: "backend")["id"] { chardevs[id] = o } else { drop(o) }
            case "serial":
                if o.value != "none" { drop(o, "the console is qemuctl's serial socket: qemuctl console") }
                if let v = o.value, v.hasPrefix("chardev:") { monitorChardevs.insert(String(v.dropFirst(8))) }
            case "monitor", "parallel":
                if o.value != "none" { drop(o) }
            case "device": devices.append(o)
            case "netdev":
                if let id = o.properties(implied: "type")["id"] { netdevs[id] = o } else { drop(o) }
            case "blockdev": blockdevs.append(o)
            case "drive": drives.append(o)
            case "object":
                if let id = o.properties(implied: "qom-type")["id"] { objects[id] = o } else { drop(o) }
            case "vnc":
                let p = o.properties(implied: "vnc")
                let v = p["vnc"] ?? "none"
                let listen: String
                if v == "none" || v.hasPrefix("unix:") { listen = v }
                else if v.hasPrefix(":") { listen = "0.0.0.0" + v }
                else { listen = v }
                vnc = [("listen", .string(listen))]
                if Self.on(p["password"]) {
                    warnings.append("\(o.text): the VNC password cannot be read back from QEMU; add spec.display.vnc.passwordFrom to the manifest, or the next restart starts VNC without a password")
                }
                dropKeys(o, p.keys(except: ["vnc", "password"]))
            case "spice":
                let p = o.properties(implied: "port")
                var s: [(String, ManifestDocument)] = []
                if Self.on(p["unix"]) {
                    s.append(("listen", "unix"))
                    warnings.append("\(o.text): the SPICE socket moves to the VM's runtime directory (spice.sock) on the next restart")
                } else {
                    s.append(("listen", .string("\(p["addr"] ?? "0.0.0.0"):\(p["port"] ?? "5900")")))
                }
                if Self.on(p["disable-ticketing"]) { s.append(("disableTicketing", .bool(true))) }
                if let c = p["image-compression"] { s.append(("compression", .string(c))) }
                spice = s
                dropKeys(o, p.keys(except: ["port", "addr", "unix", "disable-ticketing", "image-compression"]))
            case "vga":
                switch o.value {
                case "std": video = "std"
                case "virtio": video = "virtio"
                case "qxl": video = "qxl"
                case "none": video = "none"
                default: drop(o)
                }
            case "rtc":
                let p = o.properties(implied: "base")
                if let b = p["base"] {
                    if b == "utc" || b == "localtime" { rtc.append(("base", .string(b))) } else { dropKeys(o, ["base=\(b)"]) }
                }
                if let c = p["clock"] { rtc.append(("clock", .string(c))) }
                if let d = p["driftfix"] { rtc.append(("driftFix", .string(d))) }
                dropKeys(o, p.keys(except: ["base", "clock", "driftfix"]))
            default:
                drop(o)
            }
        }
        if !noDefaults {
            warnings.append("-nodefaults is missing: QEMU's default devices (VGA, NIC, serial and parallel ports, CD-ROM, floppy) are not expressible in a manifest; they will be dropped on the next restart (qemuctl starts every VM with -nodefaults)")
        }

        // MARK: Devices
        var byID: [String: (driver: String, option: QEMUOption, props: [(key: String, value: String)])] = [:]
        var anonymous: [(driver: String, option: QEMUOption, props: [(key: String, value: String)])] = []
        var extras: [(String, ManifestDocument)] = []
        var usbDevices: [ManifestDocument] = []
        var usbController: String?
        var usbControllerOption: QEMUOption?
        var hotplugPorts = 0
        var usedChardevs = monitorChardevs
        var usedObjects: Set<String> = []
        var guestAgent = false
        var scsiController: QEMUOption?
        var serialController: QEMUOption?
        var nicOptions: [(option: QEMUOption, props: [(key: String, value: String)])] = []
        for d in devices {
            let p = d.properties(implied: "driver")
            let driver = p["driver"] ?? ""
            if let id = p["id"] { byID[id] = (driver, d, p) } else { anonymous.append((driver, d, p)) }
            if Self.diskDrivers[driver] != nil {
                dropKeys(d, p.keys(except: Self.placement.union(["drive", "bootindex", "serial", "unit", "scsi-id", "lun", "channel", "write-cache"])))
            } else if Self.cdDrivers[driver] != nil {
                dropKeys(d, p.keys(except: Self.placement.union(["drive", "bootindex", "unit", "scsi-id", "lun", "channel"])))
            } else if Self.nicDrivers.contains(driver) {
                nicOptions.append((d, p))
            } else if driver == "virtio-scsi-pci" {
                scsiController = d
            } else if driver == "virtio-serial-pci" || driver == "virtio-serial" {
                serialController = d
            } else if driver == "virtserialport" {
                if p["name"] == "org.qemu.guest_agent.0", let c = p["chardev"] {
                    guestAgent = true
                    usedChardevs.insert(c)
                    warnings.append("\(d.text): the guest agent's socket moves to the VM's runtime directory (qga.sock) on the next restart")
                } else {
                    drop(d)
                }
            } else if let v = Self.videoDrivers[driver] {
                video = v
                dropKeys(d, p.keys(except: Self.placement))
            } else if driver == "virtio-balloon-pci" || driver == "virtio-balloon" {
                extras.append(("balloon", .bool(true)))
                dropKeys(d, p.keys(except: Self.placement))
            } else if driver == "virtio-rng-pci" {
                if let r = p["rng"], let obj = objects[r], obj.properties(implied: "qom-type")["qom-type"] == "rng-random",
                   (obj.properties(implied: "qom-type")["filename"] ?? "/dev/urandom") == "/dev/urandom" {
                    usedObjects.insert(r)
                    extras.append(("rng", .bool(true)))
                    dropKeys(d, p.keys(except: Self.placement.union(["rng"])))
                } else {
                    drop(d, "the manifest's RNG reads /dev/urandom through an rng-random object")
                }
            } else if driver == "usb-tablet" {
                extras.append(("usbTablet", .bool(true)))
            } else if driver == "qemu-xhci" || driver == "nec-usb-xhci" {
                usbController = "xhci"
                usbControllerOption = d
            } else if driver == "usb-ehci" || driver == "ich9-usb-ehci1" {
                usbController = "ehci"
                usbControllerOption = d
            } else if driver == "usb-kbd" || driver == "usb-mouse" {
                let taken = Set(usbDevices.compactMap { $0.mapValue("name") })
                let n = Self.manifestName(p["id"], prefix: DeviceID.Kind.usb.rawValue + "-", fallback: driver == "usb-kbd" ? "keyboard" : "mouse", taken: taken)
                usbDevices.append(.map([("name", .string(n)), ("type", .string(driver == "usb-kbd" ? "keyboard" : "mouse"))]))
            } else if driver == "pcie-root-port", p["id"]?.hasPrefix("hotplug") == true {
                hotplugPorts += 1
            } else {
                drop(d)
            }
        }
        if !guestAgent, let serialController { drop(serialController) }
        if let usbControllerOption, usbDevices.isEmpty, !extras.contains(where: { $0.0 == "usbTablet" }) {
            drop(usbControllerOption, "a manifest adds a USB controller only with a USB device or the tablet")
        }

        // Disks and CD-ROMs, from query-block (the images QEMU has open).
        // Whether a node (or -drive id) or a node below it asks for discard=unmap (`on` is the same).
        let nodeOptions: [String: [(key: String, value: String)]] = Dictionary(
            (blockdevs.map { $0.properties(implied: "driver") } + drives.map { $0.properties(implied: "file") })
                .compactMap { p in (p["node-name"] ?? p["id"]).map { ($0, p) } },
            uniquingKeysWith: { first, _ in first })
        func discardUnmap(_ node: String?) -> Bool {
            var next = node
            var seen: Set<String> = []
            while let n = next, seen.insert(n).inserted, let p = nodeOptions[n] {
                if p["discard"] == "unmap" || p["discard"] == "on" { return true }
                next = p["file"]
            }
            return false
        }
        var disks: [ManifestDocument] = []
        var cdroms: [ManifestDocument] = []
        var takenNames: Set<String> = []
        var consumedNodes: Set<String> = []
        var anyScsi = false
        for b in blocks {
            guard let qdev = b.qdev, !qdev.isEmpty else {
                if b.inserted != nil {
                    warnings.append("block device \(b.device ?? "?") is attached to no guest device; it is not in the manifest")
                }
                continue
            }
            if qdev.hasPrefix("/machine/unattached/") && !noDefaults { continue }  // QEMU's defaults: warned above
            let id: String? = {
                if let r = qdev.firstRange(of: "/machine/peripheral/") {
                    return qdev[r.upperBound...].split(separator: "/").first.map(String.init)
                }
                return qdev.contains("/") ? nil : qdev
            }()
            var device = id.flatMap { byID[$0] }
            if device == nil {
                // No id: find the type over QOM, and the -device by its drive.
                var path = qdev
                if path.hasSuffix("/virtio-backend") { path = String(path.dropLast("/virtio-backend".count)) }
                let type = await qom(path, "type") ?? ""
                let drive = b.device
                let node = b.inserted?.nodeName
                let same = anonymous.indices.filter { anonymous[$0].driver == type }
                if let i = same.first(where: { i in [drive, node].contains { $0 != nil && $0 != "" && anonymous[i].props["drive"] == $0 } }) ?? same.first {
                    device = anonymous.remove(at: i)
                } else {
                    device = (type, QEMUOption(name: "drive", value: drive), [])
                }
            }
            guard let device else { continue }
            let driver = device.driver
            let isCD = Self.cdDrivers[driver] != nil
            guard let interface = Self.diskDrivers[driver] ?? Self.cdDrivers[driver] else {
                warnings.append("block device \(qdev) (\(driver)) is not a disk or CD-ROM the manifest knows; it will be dropped on the next restart")
                continue
            }
            if interface == "scsi" { anyScsi = true }
            let inserted = b.inserted
            if let n = inserted?.nodeName { consumedNodes.insert(n) }
            if let d = b.device, !d.isEmpty { consumedNodes.insert(d) }
            if let d = device.props["drive"] { consumedNodes.insert(d) }
            let prefix = (isCD ? DeviceID.Kind.cdrom : .disk).rawValue + "-"
            let manifestName = Self.manifestName(id, prefix: prefix, fallback: isCD ? "cd" : "disk", taken: takenNames)
            takenNames.insert(manifestName)
            if !qdev.split(separator: "/").contains(Substring(prefix + manifestName)) { aliases[qdev] = prefix + manifestName }
            var entry: [(String, ManifestDocument)] = [("name", .string(manifestName))]
            let file = inserted?.file
            if isCD {
                if let file { entry.append(("path", .string(file))) }
                if interface != "ide" { entry.append(("interface", .string(interface))) }
                if let bi = device.props["bootindex"].flatMap({ Int($0) }) { entry.append(("bootIndex", .int(bi))) }
                cdroms.append(.map(entry))
                continue
            }
            guard let inserted, let file, file.hasPrefix("/"), !file.hasPrefix("json:") else {
                warnings.append("disk \(id ?? qdev): its image (\(file ?? "none")) is not a local file the manifest can name; it will be dropped on the next restart")
                continue
            }
            let format = inserted.format ?? "raw"
            guard ["raw", "qcow2", "qed", "vmdk", "vdi", "vhdx", "vpc"].contains(format) else {
                warnings.append("disk \(id ?? qdev): format driver \(format) is not expressible in a manifest; the disk will be dropped on the next restart")
                continue
            }
            var fileEntry: [(String, ManifestDocument)] = [("path", .string(file)), ("format", .string(format))]
            if let backing = inserted.backingFile {
                // One declared level below a qcow2 image is what a manifest can say (file.backing).
                if format == "qcow2", backing.hasPrefix("/"), !inserted.backingHasBacking,
                   let bf = inserted.backingFormat, ["raw", "qcow2", "qed", "vmdk", "vdi", "vhdx", "vpc"].contains(bf) {
                    fileEntry.append(("backing", .map([("path", .string(backing)), ("format", .string(bf))])))
                } else {
                    warnings.append("disk \(manifestName): its backing file \(backing) is not expressible in a manifest (file.backing "
                                    + "declares one file with a known format below a qcow2 image); flatten it first")
                }
            }
            entry.append(("file", .map(fileEntry)))
            if interface != "virtio" { entry.append(("interface", .string(interface))) }
            if let s = device.props["serial"] { entry.append(("serial", .string(s))) }
            if inserted.readOnly { entry.append(("readOnly", .bool(true))) }
            let direct = inserted.cacheDirect
            let noFlush = inserted.cacheNoFlush
            // query-block's `writeback` follows the guest's write-cache toggle (virtio WCE), so the
            // device's configured write-cache decides; `auto` (the default) counts as writeback.
            let writeback = device.props["write-cache"].map { $0 == "auto" || Self.on($0) } ?? true
            let mode = noFlush ? "unsafe" : direct ? (writeback ? "none" : "directsync") : (writeback ? "writeback" : "writethrough")
            if mode != "writeback" { entry.append(("cache", .string(mode))) }
            // query-block does not report discard: the command line's nodes of this disk do.
            if inserted.discardUnmap || discardUnmap(inserted.nodeName) || discardUnmap(b.device) {
                entry.append(("discard", .bool(true)))
            }
            if let bi = device.props["bootindex"].flatMap({ Int($0) }) { entry.append(("bootIndex", .int(bi))) }
            let throttle = Self.throttle(inserted)
            if !throttle.isEmpty { entry.append(("throttle", .map(throttle))) }
            disks.append(.map(entry))
        }
        for a in anonymous where Self.diskDrivers[a.driver] != nil || Self.cdDrivers[a.driver] != nil {
            warnings.append("\(a.option.text) has no image QEMU reports; it will be dropped on the next restart")
        }
        if let scsiController, !anyScsi { drop(scsiController) }
        // The -blockdev chains and -drive options behind the mapped devices.
        var blockdevByNode: [String: (QEMUOption, [(key: String, value: String)])] = [:]
        for o in blockdevs {
            let p = o.properties(implied: "driver")
            if let n = p["node-name"] { blockdevByNode[n] = (o, p) } else { drop(o) }
        }
        var frontier = Array(consumedNodes)
        while let n = frontier.popLast() {
            guard let (_, p) = blockdevByNode[n] else { continue }
            // A format node's protocol child, and its backing node (a declared file.backing, or null for none).
            for child in [p["file"], p["backing"]].compactMap({ $0 }) where child != "null" && !consumedNodes.contains(child) {
                consumedNodes.insert(child)
                frontier.append(child)
            }
        }
        let blockKeys: Set<String> = ["driver", "node-name", "filename", "file", "read-only", "cache", "cache.direct",
                                      "cache.no-flush", "discard", "auto-read-only", "if", "id", "format", "media", "index",
                                      "backing"]
        for (n, (o, p)) in blockdevByNode.sorted(by: { $0.key < $1.key }) {
            if consumedNodes.contains(n) {
                dropKeys(o, p.keys(except: blockKeys))
            } else {
                drop(o, "no guest device uses it")
            }
        }
        for o in drives {
            let p = o.properties(implied: "file")
            let used = p["id"].map(consumedNodes.contains) ?? false
                || blocks.contains { $0.inserted?.file == p["file"] && $0.qdev != nil }
            if used { dropKeys(o, p.keys(except: blockKeys)) } else { drop(o, "no guest device uses it") }
        }

        // NICs and their back ends.
        var networks: [ManifestDocument] = []
        var usedNetdevs: Set<String> = []
        var nicNames: Set<String> = []
        for (d, p) in nicOptions {
            guard let nd = p["netdev"], let netdev = netdevs[nd] else {
                drop(d, "a NIC without a -netdev back end")
                continue
            }
            usedNetdevs.insert(nd)
            let np = netdev.properties(implied: "type")
            var backend: (String, ManifestDocument)
            switch np["type"] {
            case "user":
                var u: [(String, ManifestDocument)] = []
                if let v = np["net"] { u.append(("net", .string(v))) }
                if let v = np["host"] { u.append(("host", .string(v))) }
                if let v = np["dns"] { u.append(("dns", .string(v))) }
                if let v = np["dhcpstart"] { u.append(("dhcpStart", .string(v))) }
                if Self.on(np["restrict"]) { u.append(("restrict", .bool(true))) }
                let forwards = np.all("hostfwd")
                if !forwards.isEmpty { u.append(("hostfwd", .list(forwards.map { .string($0) }))) }
                dropKeys(netdev, np.keys(except: ["type", "id", "net", "host", "dns", "dhcpstart", "restrict", "hostfwd"]))
                backend = ("user", .map(u))
            case "tap":
                var t: [(String, ManifestDocument)] = []
                if let v = np["ifname"] { t.append(("ifname", .string(v))) }
                if let v = np["script"], v != "no" { t.append(("script", .string(v))) }
                if let v = np["downscript"], v != "no" { t.append(("downscript", .string(v))) }
                if Self.on(np["vhost"]) { t.append(("vhost", .bool(true))) }
                if let v = np["queues"].flatMap({ Int($0) }) { t.append(("queues", .int(v))) }
                if np["fd"] != nil || np["fds"] != nil {
                    drop(netdev, "a tap passed as a file descriptor")
                    continue
                }
                dropKeys(netdev, np.keys(except: ["type", "id", "ifname", "script", "downscript", "vhost", "queues"]))
                backend = ("tap", .map(t))
            default:
                drop(netdev, "back end type \(np["type"] ?? "?")")
                warnings.append("\(d.text): its back end cannot be expressed, so the NIC will be dropped on the next restart")
                continue
            }
            let n = Self.manifestName(p["id"], prefix: DeviceID.Kind.network.rawValue + "-", fallback: "net", taken: nicNames)
            nicNames.insert(n)
            if let id = p["id"], id != DeviceID.network(n).rawValue { aliases[id] = DeviceID.network(n).rawValue }
            var entry: [(String, ManifestDocument)] = [("name", .string(n)), backend]
            let driver = p["driver"] ?? "virtio-net-pci"
            if driver != "virtio-net-pci" { entry.append(("model", .string(driver))) }
            var mac = p["mac"]
            if mac == nil, let id = p["id"] {
                mac = await qom("/machine/peripheral/\(id)", "mac")
            }
            if let mac { entry.append(("mac", .string(mac))) }
            else { warnings.append("\(d.text): its MAC address cannot be read (no id); the next restart gives it a derived one") }
            if let bi = p["bootindex"].flatMap({ Int($0) }) { entry.append(("bootIndex", .int(bi))) }
            dropKeys(d, p.keys(except: Self.placement.union(["netdev", "mac", "bootindex"])))
            networks.append(.map(entry))
        }
        for (id, o) in netdevs.sorted(by: { $0.key < $1.key }) where !usedNetdevs.contains(id) { drop(o, "no NIC uses it") }
        for (id, o) in chardevs.sorted(by: { $0.key < $1.key }) where !usedChardevs.contains(id) { drop(o) }
        for (id, o) in objects.sorted(by: { $0.key < $1.key }) where !usedObjects.contains(id) { drop(o) }
        if vnc == nil && facts.vncServers > 0 { vnc = [("listen", "none")] }

        // MARK: The manifest
        var spec: [(String, ManifestDocument)] = []
        let runState: String
        switch status {
        case "running": runState = "running"
        case "paused", "prelaunch", "suspended": runState = "paused"
        default:
            runState = "running"
            warnings.append("QEMU reports the guest as \(status); the manifest says runState: running, so apply will reset and resume it")
        }
        spec.append(("runState", .string(runState)))
        if machineType == nil {
            let qomType = await qom("/machine", "type") ?? ""
            machineType = qomType.hasSuffix("-machine") ? String(qomType.dropLast(8)) : (qomType.isEmpty ? nil : qomType)
        }
        var machine: [(String, ManifestDocument)] = []
        if let machineType { machine.append(("type", .string(machineType))) }
        machine.append(("accel", .string(kvm ? "kvm" : "tcg")))
        let q35 = machineType.map { $0 == "q35" || $0.hasPrefix("pc-q35") } ?? false
        if q35 { machine.append(("hotplugPorts", .int(hotplugPorts))) }
        // QEMU includes guest memory in core dumps unless told not to; the manifest's default is off.
        if dumpGuestCore ?? true { machine.append(("dumpGuestCore", .bool(true))) }
        spec.append(("machine", .map(machine)))
        var cpu: [(String, ManifestDocument)] = []
        if let cpuModel { cpu.append(("model", .string(cpuModel))) }
        cpu.append(("count", .int(cpus)))
        for (key, field) in [("maxcpus", "maxCount"), ("sockets", "sockets"), ("cores", "cores"), ("threads", "threads")] {
            if let v = smp[key].flatMap({ Int($0) }), key != "maxcpus" || v != cpus { cpu.append((field, .int(v))) }
        }
        if !cpuFeatures.isEmpty { cpu.append(("features", .list(cpuFeatures.map { .string($0) }))) }
        spec.append(("cpu", .map(cpu)))
        var mem: [(String, ManifestDocument)] = [("size", .string(ByteSize.format(UInt64(max(0, memory)))))]
        if let maxMemory, let bytes = Self.qemuSize(maxMemory) {
            mem.append(("max", .string(ByteSize.format(bytes))))
            if let memorySlots { mem.append(("slots", .int(memorySlots))) }
        }
        spec.append(("memory", .map(mem)))
        if !(boot + bootOrder).isEmpty { spec.append(("boot", .map(boot + bootOrder))) }
        if !disks.isEmpty { spec.append(("disks", .list(disks))) }
        if !cdroms.isEmpty { spec.append(("cdroms", .list(cdroms))) }
        if !networks.isEmpty { spec.append(("networks", .list(networks))) }
        var display: [(String, ManifestDocument)] = []
        if let vnc { display.append(("vnc", .map(vnc))) }
        if let spice { display.append(("spice", .map(spice))) }
        let hasDisplay = vnc != nil || spice != nil
        let actualVideo = video ?? (noDefaults ? "none" : "std")
        if hasDisplay || actualVideo != "none" { display.append(("video", .string(actualVideo))) }
        if !display.isEmpty { spec.append(("display", .map(display))) }
        if guestAgent { spec.append(("guestAgent", .bool(true))) }
        spec += extras
        if !usbDevices.isEmpty || usbController == "ehci" {
            var usb: [(String, ManifestDocument)] = [("controller", .string(usbController ?? "xhci"))]
            if !usbDevices.isEmpty { usb.append(("devices", .list(usbDevices))) }
            spec.append(("usb", .map(usb)))
        }
        if !rtc.isEmpty { spec.append(("rtc", .map(rtc))) }
        let document = ManifestDocument.map([
            ("apiVersion", "qemuctl/v1"), ("kind", "VirtualMachine"),
            ("metadata", .map([("name", .string(name))])), ("spec", .map(spec)),
        ])
        var imported = ImportedVM(name: name, pid: pid, socketPath: socketPath, uuid: uuid, accelerator: kvm ? "kvm" : "tcg",
                                  document: document, warnings: warnings, deviceAliases: aliases)
        for (id, slot) in facts.pciSlots { imported.pciSlots[aliases[id] ?? id] = slot }
        return imported
    }

    /// The throttle of a `query-block` `inserted` object, in manifest keys (zero means unset).
    static func throttle(_ i: MonitorFacts.Inserted) -> [(String, ManifestDocument)] {
        var out: [(String, ManifestDocument)] = []
        for (qemu, key, isSize) in [("bps", "bps", true), ("bps_rd", "bpsRead", true), ("bps_wr", "bpsWrite", true),
                                    ("iops", "iops", false), ("iops_rd", "iopsRead", false), ("iops_wr", "iopsWrite", false),
                                    ("bps_max", "bpsMax", true), ("bps_rd_max", "bpsReadMax", true), ("bps_wr_max", "bpsWriteMax", true),
                                    ("iops_max", "iopsMax", false), ("iops_rd_max", "iopsReadMax", false),
                                    ("iops_wr_max", "iopsWriteMax", false), ("iops_size", "iopsSize", true)] {
            guard let v = i.throttle[qemu], v > 0 else { continue }
            out.append((key, isSize ? .string(ByteSize.format(UInt64(v))) : .int(v)))
        }
        if !out.isEmpty, let length = i.throttle["bps_max_length"] ?? i.throttle["iops_max_length"], length > 1,
           out.contains(where: { $0.0.hasSuffix("Max") }) {
            out.append(("burstLength", .int(length)))
        }
        return out
    }

    /// `2G`, `1024M`, `512` (MiB) → bytes.
    static func qemuSize(_ s: String) -> UInt64? {
        guard let last = s.last else { return nil }
        let units: [Character: UInt64] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30, "T": 1 << 40, "t": 1 << 40]
        if let u = units[last], let n = UInt64(s.dropLast()) { return n * u }
        return UInt64(s).map { $0 << 20 }
    }
}

extension ManifestDocument {
    /// The string value of `key` in a mapping.
    func mapValue(_ key: String) -> String? {
        guard case .map(let m) = self, case .string(let s)? = m.first(where: { $0.0 == key })?.1 else { return nil }
        return s
    }
}

extension ManifestDocument: ExpressibleByStringLiteral {
    /// A string.
    package init(stringLiteral value: String) { self = .string(value) }
}
