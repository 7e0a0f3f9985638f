import Manifest
import QemuCtl

/// Walks one ``VirtualMachineSpec`` and builds the ``VMConfig``, collecting a problem for every value that has
/// no exact counterpart. Field paths in problems are manifest paths (`spec.disks[0].throttle.bps`).
struct Mapper {
    typealias Spec = VirtualMachineSpec

    let vm: VirtualMachine
    let runtimeDirectory: String
    var problems: [MappingError.Problem] = []

    init(vm: VirtualMachine, runtimeDirectory: String) {
        self.vm = vm
        self.runtimeDirectory = runtimeDirectory
    }

    mutating func problem(_ field: String, _ message: String) {
        problems.append(.init(field: field, message: message))
    }

    /// A manifest feature QemuCtl cannot express.
    mutating func unsupported(_ field: String, _ what: String) {
        problem(field, "\(what) is not supported by the QEMU configuration library (QemuCtl has no counterpart)")
    }

    // MARK: Whole spec

    mutating func map(uuid: String?, socketDirectory: String?) -> VMConfig {
        let spec = vm.spec
        var c = VMConfig(name: vm.name)
        c.uuid = uuid
        c.socketDirectory = socketDirectory
        c.arch = arch(spec.arch)
        c.qemuPath = spec.emulator
        c.machine = machine(spec.machine)
        c.cpu = cpu(spec.cpu)
        c.memory = memory(spec.memory)
        c.firmware = firmware(spec.firmware, socketDirectory: socketDirectory)
        c.boot = boot(spec.boot)
        c.disks = spec.disks.enumerated().map { disk($1, at: "spec.disks[\($0)]") }
        c.cdroms = spec.cdroms.map(cdrom)
        if spec.cloudInit != nil {
            // The NoCloud seed the applier writes before each launch; SCSI, because cloud kernels
            // (Debian's linux-image-cloud) have virtio_scsi and sr_mod but no AHCI driver.
            c.cdroms.append(CDROM(name: Spec.CloudInit.driveName, path: runtimeDirectory + "/" + Spec.CloudInit.seedFileName,
                                  format: .raw, interface: .scsi))
        }
        c.networks = spec.networks.enumerated().map { network($1, at: "spec.networks[\($0)]") }
        c.display = display(spec.display)
        c.serials = [serial(spec.serial)]
        c.guestAgent = spec.guestAgent
        c.spiceAgent = spec.spiceAgent
        c.usbTablet = spec.usbTablet
        c.usb = usb(spec.usb, tablet: spec.usbTablet)
        c.balloon = spec.balloon ? Balloon() : nil
        c.rng = spec.rng ? RNG() : nil
        c.rtc = rtc(spec.rtc)
        c.audio = spec.audio.map(audio)
        c.noDefaults = true
        return c
    }

    // MARK: Arch, machine, CPU, memory

    func arch(_ a: Architecture) -> QEMUArch {
        switch a {
        case .amd64: .amd64
        case .i386: .i386
        case .arm64: .arm64
        case .arm: .arm
        case .riscv64: .riscv64
        case .ppc64: .ppc64
        case .ppc64le: .ppc64le
        case .mips: .mips
        case .mips64: .mips64
        case .s390x: .s390x
        }
    }

    func machine(_ m: Spec.Machine) -> Machine {
        let accel: AcceleratorMode = switch m.accel {
        case .auto: .auto
        case .kvm: .kvm
        case .tcg: .tcg
        }
        // dump-guest-core: the manifest's default (false) is explicit, unlike QEMU's (on).
        return Machine(type: m.type, accel: accel, dumpGuestCore: m.dumpGuestCore, hotplugPorts: m.hotplugPorts)
    }

    mutating func cpu(_ c: Spec.CPU) -> CPU {
        var features: [String: Bool] = [:]
        var firstIndex: [String: Int] = [:]
        for (i, raw) in c.features.enumerated() {
            var name = Substring(raw)
            var on = true
            if let f = name.first, f == "+" || f == "-" {
                on = f == "+"
                name = name.dropFirst()
            }
            let key = String(name)
            if let previous = features[key], previous != on, let j = firstIndex[key] {
                problem("spec.cpu.features[\(i)]",
                        "'\(raw)' contradicts spec.cpu.features[\(j)] ('\(c.features[j])')")
                continue
            }
            features[key] = on
            if firstIndex[key] == nil { firstIndex[key] = i }
        }
        return CPU(model: c.model, features: features, count: c.count, maxCount: c.maxCount,
                   sockets: c.sockets, cores: c.cores, threads: c.threads)
    }

    /// Bytes to whole MiB, or a problem naming the field.
    mutating func mebibytes(_ bytes: UInt64, _ field: String) -> Int? {
        guard bytes % (1 << 20) == 0 else {
            let below = bytes >> 20, above = below + 1
            let nearest = below == 0 ? "\(above)MiB" : "\(below)MiB or \(above)MiB"
            problem(field, "\(bytes) bytes is not a whole number of MiB (QEMU gets memory sizes in MiB and "
                    + "they are never rounded; nearest: \(nearest))")
            return nil
        }
        guard let mib = Int(exactly: bytes >> 20) else {
            problem(field, "\(bytes) bytes is too large")
            return nil
        }
        return mib
    }

    mutating func memory(_ m: Spec.Memory) -> Memory {
        var mem = Memory()
        // A placeholder stands in for an unmappable size so that the rest is still checked; the problem is
        // already reported and validation problems of the same field are suppressed.
        mem.sizeMiB = mebibytes(m.size, "spec.memory.size") ?? 1
        if let mx = m.max {
            mem.maxSizeMiB = mebibytes(mx, "spec.memory.max") ?? mem.sizeMiB
            mem.slots = m.slots
        }
        // backend ram without share/prealloc is QEMU's default allocation: no explicit object is needed.
        switch m.backend {
        case .ram: mem.backend = (m.share || m.prealloc) ? .ram : nil
        case .memfd: mem.backend = .memfd
        case .file:
            if let p = m.path {
                mem.backend = .file(path: p)
            } else {
                problem("spec.memory.path", "is required for backend file")
            }
        }
        // memfd shares by default in QEMU; the manifest's share is explicit whenever there is a backend.
        if mem.backend != nil { mem.share = m.share }
        mem.prealloc = m.prealloc
        mem.lock = m.lock
        return mem
    }

    // MARK: Firmware, boot

    mutating func firmware(_ f: Spec.Firmware, socketDirectory: String?) -> Firmware? {
        switch f.type {
        case .bios: nil
        case .efi: efiFirmware(f, socketDirectory: socketDirectory)  // Mapping+Firmware.swift
        }
    }

    func boot(_ b: Spec.Boot) -> Boot? {
        let boot = Boot(order: b.order, menu: b.menu ? true : nil, strict: b.strict ? true : nil,
                        kernel: b.kernel, initrd: b.initrd, append: b.cmdline)
        return boot == Boot() ? nil : boot
    }

    // MARK: Disks, CD-ROMs

    func format(_ f: Spec.Disk.Format) -> DiskFormat {
        switch f {
        case .raw: .raw
        case .qcow2: .qcow2
        case .qed: .qed
        case .vmdk: .vmdk
        case .vdi: .vdi
        case .vhdx: .vhdx
        case .vpc: .vpc
        }
    }

    func secret(_ s: SecretReference) -> Secret {
        switch s {
        case .file(let path): .file(path)
        case .env(let name): .environment(name)
        }
    }

    mutating func disk(_ d: Spec.Disk, at p: String) -> Disk {
        var readOnly = d.readOnly
        let backend: DiskBackend
        switch d.backend {
        case .file(let path, let f):
            // The declared chain: file.backing, or the base of an overlay made by create.from.
            let backing = d.declaredBacking.map { BackingFile(path: $0.path, format: format($0.format)) }
            backend = .file(FileDisk(path: path, format: format(f), backing: backing))
        case .nbd(let n):
            let server: NBDDisk.Server = switch n.server {
            case .unix(let path): .unix(path: path)
            case .tcp(let host, let port): .tcp(host: Self.unbracketed(host), port: port)
            }
            if n.tls {
                unsupported("\(p).nbd.tls", "NBD over TLS (QemuCtl needs the id of a tls-creds-x509 object, "
                            + "which only extra arguments could create)")
            }
            backend = .nbd(NBDDisk(server: server, export: n.export))
        case .rbd(let r):
            // The manifest documents a snapshot as opened read-only.
            if r.snapshot != nil { readOnly = true }
            backend = .rbd(RBDDisk(pool: r.pool, image: r.image, snapshot: r.snapshot, conf: r.conf, user: r.user,
                                   key: r.keyFrom.map(secret)))
        case .iscsi(let s):
            backend = .iscsi(ISCSIDisk(portal: s.portal, target: s.target, lun: s.lun, user: s.user,
                                       password: s.passwordFrom.map(secret), initiator: s.initiator))
        }
        let interface: DiskInterface = switch d.interface {
        case .virtio: .virtio
        case .scsi: .scsi
        case .ide: .ide
        case .nvme: .nvme
        }
        let cache: DiskCache = switch d.cache {
        case .writeback: .writeback
        case .none: .none
        case .writethrough: .writethrough
        case .directsync: .directsync
        case .unsafe: .unsafe
        }
        return Disk(name: d.name, backend: backend, interface: interface, readOnly: readOnly, cache: cache,
                    discard: d.discard, serial: d.serial, bootIndex: d.bootIndex,
                    throttle: d.throttle.map { throttle($0, at: "\(p).throttle") }, pciSlot: d.pciSlot)
    }

    mutating func int(_ v: UInt64?, _ field: String) -> Int? {
        guard let v else { return nil }
        guard let i = Int(exactly: v) else {
            problem(field, "\(v) is too large")
            return nil
        }
        return i
    }

    mutating func throttle(_ t: Spec.Disk.Throttle, at p: String) -> Throttle {
        var q = Throttle()
        q.bpsTotal = int(t.bps, "\(p).bps")
        q.bpsRead = int(t.bpsRead, "\(p).bpsRead")
        q.bpsWrite = int(t.bpsWrite, "\(p).bpsWrite")
        q.iopsTotal = int(t.iops, "\(p).iops")
        q.iopsRead = int(t.iopsRead, "\(p).iopsRead")
        q.iopsWrite = int(t.iopsWrite, "\(p).iopsWrite")
        q.bpsTotalMax = int(t.bpsMax, "\(p).bpsMax")
        q.bpsReadMax = int(t.bpsReadMax, "\(p).bpsReadMax")
        q.bpsWriteMax = int(t.bpsWriteMax, "\(p).bpsWriteMax")
        q.iopsTotalMax = int(t.iopsMax, "\(p).iopsMax")
        q.iopsReadMax = int(t.iopsReadMax, "\(p).iopsReadMax")
        q.iopsWriteMax = int(t.iopsWriteMax, "\(p).iopsWriteMax")
        q.iopsSize = int(t.iopsSize, "\(p).iopsSize")
        // One manifest burst length applies to every burst limit that is set.
        let length = t.burstLength
        if q.bpsTotalMax != nil { q.bpsTotalMaxLength = length }
        if q.bpsReadMax != nil { q.bpsReadMaxLength = length }
        if q.bpsWriteMax != nil { q.bpsWriteMaxLength = length }
        if q.iopsTotalMax != nil { q.iopsTotalMaxLength = length }
        if q.iopsReadMax != nil { q.iopsReadMaxLength = length }
        if q.iopsWriteMax != nil { q.iopsWriteMaxLength = length }
        return q
    }

    func cdrom(_ cd: Spec.CDROM) -> CDROM {
        let interface: CDROM.Interface = switch cd.interface {
        case .ide: .ide
        case .scsi: .scsi
        }
        return CDROM(name: cd.name, path: cd.path, format: .raw, interface: interface, bootIndex: cd.bootIndex)
    }

    // MARK: Networks

    mutating func network(_ n: Spec.Network, at p: String) -> Network {
        let backend: NetworkBackend
        switch n.backend {
        case .user(let u):
            var forwards: [HostForward] = []
            for (i, s) in u.hostfwd.enumerated() {
                if let f = Self.hostForward(s) {
                    forwards.append(f)
                } else {
                    problem("\(p).user.hostfwd[\(i)]",
                            "'\(s)' is not [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport")
                }
            }
            backend = .user(UserNetwork(net: u.net, host: u.host, dns: u.dns, dhcpStart: u.dhcpStart,
                                        restrict: u.restrict, hostForwards: forwards, hostname: u.hostname,
                                        domainName: u.domain))
        case .tap(let t):
            if t.bridge != nil {
                unsupported("\(p).tap.bridge", "adding a tap to a bridge (use the bridge backend, or a script)")
            }
            backend = .tap(TapNetwork(ifname: t.ifname, script: t.script, downscript: t.downscript,
                                      vhost: t.vhost, queues: t.queues))
        case .bridge(let name, let helper):
            backend = .bridge(BridgeNetwork(bridge: name, helper: helper))
        case .socket(let s):
            let mode: SocketNetwork.Mode
            switch s {
            case .listen(let a):
                let (h, port) = hostPort(a, "\(p).socket.listen")
                mode = .listen(host: h, port: port)
            case .connect(let a):
                let (h, port) = hostPort(a, "\(p).socket.connect")
                mode = .connect(host: h, port: port)
            case .mcast(let a):
                let (h, port) = hostPort(a, "\(p).socket.mcast")
                mode = .multicast(address: h, port: port)
            }
            backend = .socket(SocketNetwork(mode))
        case .stream(let s):
            let address: StreamNetwork.Address
            switch s.address {
            case .unix(let path): address = .unix(path: path)
            case .inet(let a):
                let (h, port) = hostPort(a, "\(p).stream.inet")
                address = .inet(host: Self.unbracketed(h), port: port)
            }
            backend = .stream(StreamNetwork(address: address, server: s.server))
        case .vde(let sock, let port, let group):
            backend = .vde(VDENetwork(socket: sock, port: port, group: group))
        }
        return Network(name: n.name, model: n.model, mac: MACAddress(rawValue: n.mac), backend: backend,
                       bootIndex: n.bootIndex, pciSlot: n.pciSlot)
    }

    /// `host:port` (host may be empty or `[IPv6]`, kept as written); a problem and port 0 when malformed.
    mutating func hostPort(_ s: String, _ field: String) -> (String, Int) {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else {
            problem(field, "'\(s)' is not HOST:PORT")
            return ("", 0)
        }
        return (String(s[..<colon]), port)
    }

    /// `[::1]` → `::1`; anything else unchanged.
    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 ? String(host.dropFirst().dropLast()) : host
    }

    /// Parses `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport` (the manifest's hostfwd format).
    static func hostForward(_ s: String) -> HostForward? {
        guard let dash = s.firstIndex(of: "-") else { return nil }
        let hostSide = s[..<dash].split(separator: ":", omittingEmptySubsequences: false)
        let guestSide = s[s.index(after: dash)...].split(separator: ":", omittingEmptySubsequences: false)
        guard hostSide.count == 3, guestSide.count == 2 else { return nil }
        let proto: HostForward.Proto
        switch hostSide[0] {
        case "", "tcp": proto = .tcp
        case "udp": proto = .udp
        default: return nil
        }
        guard let hostPort = Int(hostSide[2]), let guestPort = Int(guestSide[1]) else { return nil }
        return HostForward(proto: proto, hostAddress: hostSide[1].isEmpty ? nil : String(hostSide[1]),
                           hostPort: hostPort, guestAddress: guestSide[0].isEmpty ? nil : String(guestSide[0]),
                           guestPort: guestPort)
    }

    // MARK: Display, serial, USB, RTC

    mutating func display(_ d: Spec.Display) -> Display {
        var out = Display()
        if let v = d.vnc {
            let listen: VNC.Listen
            if v.listen == "none" {
                listen = .none
            } else if v.listen.hasPrefix("unix:") {
                listen = .unix(path: String(v.listen.dropFirst(5)))
            } else {
                let (h, display) = hostPort(v.listen, "spec.display.vnc.listen")
                listen = .tcp(host: Self.unbracketed(h), display: display)
            }
            out.vnc = VNC(listen: listen, password: v.passwordFrom.map(secret))
        }
        if let s = d.spice {
            let listen: SPICE.Listen
            if s.listen == "unix" {
                let path = runtimeDirectory + "/" + VMConfigMapping.spiceSocketName
                checkSocketPath(path, "spec.display.spice.listen")
                listen = .unix(path: path)
            } else {
                let (h, port) = hostPort(s.listen, "spec.display.spice.listen")
                listen = .tcp(host: Self.unbracketed(h), port: port)
            }
            let compression: SPICE.ImageCompression? = switch s.compression {
            case nil: nil
            case .autoGLZ: .autoGLZ
            case .autoLZ: .autoLZ
            case .quic: .quic
            case .glz: .glz
            case .lz: .lz
            case .off: .off
            }
            out.spice = SPICE(listen: listen, password: s.passwordFrom.map(secret),
                              disableTicketing: s.disableTicketing, imageCompression: compression)
        }
        switch d.video {
        case .none: out.video = nil
        case .std: out.video = .vga
        case .virtio: out.video = .virtio
        case .qxl: out.video = .qxl
        case .cirrus: out.video = .cirrus
        case .ramfb: out.video = .ramfb
        }
        return out
    }

    /// The console: always a serial port on a Unix socket in the runtime directory (for `qemuctl console`),
    /// logged to `serial.log` there when `spec.serial.log` is on.
    mutating func serial(_ s: Spec.Serial) -> Serial {
        let socket = runtimeDirectory + "/" + VMConfigMapping.consoleSocketName
        checkSocketPath(socket, "spec.serial")
        return Serial(name: VMConfigMapping.consoleSerialName, backend: .unix(path: socket, server: true),
                      logFile: s.log ? runtimeDirectory + "/" + VMConfigMapping.serialLogName : nil)
    }

    mutating func checkSocketPath(_ path: String, _ field: String) {
        if path.utf8.count > RuntimeLayout.maxSocketPathLength {
            problem(field, "the socket \(path) is \(path.utf8.count) bytes; a Unix socket path holds at most "
                    + "\(RuntimeLayout.maxSocketPathLength): use a shorter state directory")
        }
    }

    mutating func usb(_ u: Spec.USB, tablet: Bool) -> USB? {
        let controller: USB.Controller
        switch u.controller {
        case .none:
            if tablet || !u.devices.isEmpty {
                problem("spec.usb.controller", "none leaves no bus for USB devices")
            }
            return nil
        case .xhci: controller = .xhci
        case .ehci: controller = .ehci
        }
        // The controller is added only when a device needs it.
        guard tablet || !u.devices.isEmpty else { return nil }
        var devices: [USBDevice] = []
        var names: [String] = []
        for (i, d) in u.devices.enumerated() {
            defer { if devices.count > names.count { names.append(d.name) } }
            let p = "spec.usb.devices[\(i)]"
            switch d.type {
            case .tablet: devices.append(.tablet)
            case .keyboard: devices.append(.keyboard)
            case .mouse: devices.append(.mouse)
            case .host:
                if let v = d.vendor, let pr = d.product {
                    guard let vendor = Self.usbID(v) else { problem("\(p).vendor", "'\(v)' is not 0xHHHH"); continue }
                    guard let product = Self.usbID(pr) else { problem("\(p).product", "'\(pr)' is not 0xHHHH"); continue }
                    devices.append(.host(vendorID: vendor, productID: product))
                } else if let b = d.bus, let a = d.address {
                    devices.append(.hostAddress(bus: b, address: a))
                } else {
                    problem(p, "type host needs vendor and product, or bus and address")
                }
            }
        }
        return USB(controller: controller, devices: devices, names: names)
    }

    /// `0x046d` → 0x046d.
    static func usbID(_ s: String) -> Int? {
        guard s.hasPrefix("0x") || s.hasPrefix("0X") else { return nil }
        return Int(s.dropFirst(2), radix: 16)
    }

    /// The wav backend writes `audio0.wav` in the VM's runtime directory (the library's default).
    func audio(_ a: Spec.Audio) -> Audio {
        let backend: Audio.Backend = switch a.backend {
        case .none: .none
        case .pa: .pa
        case .pipewire: .pipewire
        case .alsa: .alsa
        case .sdl: .sdl
        case .spice: .spice
        case .wav: .wav
        }
        let model: Audio.Model = switch a.model {
        case .hda: .hda
        case .ac97: .ac97
        case .sb16: .sb16
        }
        return Audio(backend: backend, model: model)
    }

    func rtc(_ r: Spec.RTC) -> RTC {
        let base: RTC.Base = switch r.base {
        case .utc: .utc
        case .localtime: .localtime
        }
        let clock: RTC.Clock = switch r.clock {
        case .host: .host
        case .rt: .rt
        case .vm: .vm
        }
        let drift: RTC.DriftFix = switch r.driftFix {
        case .none: .none
        case .slew: .slew
        }
        return RTC(base: base, clock: clock, driftFix: drift)
    }
}
