extension VMConfig {
    /// Turns this configuration into QEMU's command line: a pure function (no I/O, same input, same output).
    ///
    /// Generated options use QEMU's JSON syntax where QEMU 7.2 has it (`-blockdev`, `-device`, `-object`,
    /// `-netdev`) and `,,`-escaped `key=value` syntax elsewhere (`-name`, `-machine`, `-chardev`, `-vnc`,
    /// `-spice`, …), always with explicit keys; so no value of the configuration can add or change an option.
    /// Secrets never appear: see ``QEMUCommandLine/secretFiles`` and ``QEMUCommandLine/postStartActions``.
    ///
    /// Always present: `-no-user-config`, `-display none`, the QMP monitor; `-nodefaults` unless
    /// ``noDefaults`` is off; `-S` unless ``LaunchOptions/startPaused`` is off.
    ///
    /// ```swift
    /// let choice = try await AcceleratorProbe.shared.probe(binary: qemu, machineType: "q35", requested: config.machine.accel)
    /// let cmd = try config.commandLine(LaunchOptions(qmpSocketPath: dir + "/qmp.sock", runtimeDirectory: dir,
    ///                                                pidFile: dir + "/qemu.pid", daemonize: true, accelerator: choice))
    /// // write cmd.secretFiles (0600), exec qemu with cmd.arguments, connect QMP,
    /// // perform cmd.postStartActions, then `cont`.
    /// ```
    ///
    /// - Parameter launch: Paths and process options from the launcher, and the accelerator probe result.
    /// - Returns: The arguments (without the binary), the secret files to write and the post-start QMP calls.
    /// - Throws: ``VMConfigError`` with every problem of ``problems()``, plus resource problems (PCI slots, IDE
    ///   units, SCSI ids exhausted; an IDE device on a board without IDE) and a missing accelerator choice for
    ///   ``AcceleratorMode/auto``.
    public func commandLine(_ launch: LaunchOptions) throws(VMConfigError) -> QEMUCommandLine {
        var problems = self.problems()
        var launchCheck = Validator()
        launchCheck.absolutePath("launch.qmpSocketPath", launch.qmpSocketPath)
        launchCheck.absolutePath("launch.runtimeDirectory", launch.runtimeDirectory)
        if let p = launch.pidFile { launchCheck.absolutePath("launch.pidFile", p) }
        if let p = launch.followerSocketPath { launchCheck.absolutePath("launch.followerSocketPath", p) }
        problems += launchCheck.problems
        if !problems.isEmpty { throw VMConfigError(problems: problems) }
        var b = ArgvBuilder(config: self, launch: launch)
        b.build()
        if !b.problems.isEmpty { throw VMConfigError(problems: b.problems) }
        return QEMUCommandLine(
            arguments: b.args, secretFiles: b.secretFiles, postStartActions: b.postStart,
            accelerator: b.accelerator, cpuModel: b.cpuArgument, machineType: b.machineType,
            guestAgentSocketPath: b.guestAgentSocket, hotplugPorts: b.hotplugPortIDs, pciSlots: b.slots)
    }

    /// The root-bus PCI slot each device gets (as ``QEMUCommandLine/pciSlots``) and the problems
    /// of the slot assignment (a fixed slot taken twice or not free, no slot left), with the paths
    /// of the devices' fields (`networks[1].pciSlot`). A pure function; ``commandLine(_:)``
    /// reports the same problems.
    public func pciSlotPlan() -> (slots: [String: Int], problems: [ConfigProblem]) {
        guard let mt = machine.type ?? (arch ?? .host).defaultMachineType else { return ([:], []) }
        var b = ArgvBuilder(config: self, launch: LaunchOptions(qmpSocketPath: "/", runtimeDirectory: "/"))
        b.family = BoardFamily(machineType: mt)
        b.planPCI()
        return (b.slots, b.problems)
    }
}

/// The one place that knows QEMU's option syntax. Internal ids:
/// chardevs `qmp`, `qmp-events`, `qga0`, `vdagent0`, `serial-NAME`; devices `disk-NAME`, `cd-NAME`, `net-NAME`, `video0`,
/// `scsi0`, `vser0`, `usb`, `usbN`, `balloon0`, `rng0-dev`, `sound0`, `sound0-codec`, `hotplugN`; netdevs
/// `netdev-NAME`; nodes `file-NAME`, `fmt-NAME`, `thr-NAME`, `efi-code(-file)`, `efi-vars(-file)`; objects
/// `tg-NAME`, `secret-NAME-key|password`, `ram0`, `rng0`; audiodevs `audio0`.
struct ArgvBuilder {
    let config: VMConfig
    let launch: LaunchOptions
    var args: [String] = []
    var problems: [ConfigProblem] = []
    var secretFiles: [SecretFile] = []
    var postStart: [PostStartAction] = []
    var accelerator: Accelerator = .tcg
    var cpuArgument: String?
    var machineType: String = ""
    var guestAgentSocket: String?
    var hotplugPortIDs: [String] = []

    var family: BoardFamily = .other
    var slots: [String: Int] = [:]

    init(config: VMConfig, launch: LaunchOptions) { self.config = config; self.launch = launch }

    mutating func opt(_ name: String, _ value: String? = nil) {
        args.append(name)
        if let value { args.append(value) }
    }

    mutating func problem(_ path: String, _ message: String) { problems.append(.init(path: path, message: message)) }

    /// `-device {...}` with the PCI address for `id` when the board has one.
    mutating func pciDevice(_ id: String, _ o: JSONObject) {
        var o = o
        if let bus = family.rootBus, let slot = slots[id] {
            o["bus"] = bus
            o["addr"] = "0x" + String(slot, radix: 16)
        }
        opt("-device", o.rendered)
    }

    // MARK: Plan

    var needsSCSI: Bool {
        config.disks.contains { $0.interface == .scsi } || config.cdroms.contains { $0.interface == .scsi }
    }
    var needsVirtioSerial: Bool { config.guestAgent || config.spiceAgent || !config.virtioSerialPorts.isEmpty }
    var usbController: USB.Controller? {
        if let u = config.usb { return u.controller }
        return config.usbTablet ? .xhci : nil
    }

    mutating func planPCI() {
        var reqs: [PCIAllocator.Request] = []
        if config.display.video?.isPCI == true { reqs.append(.init(id: "video0", path: "display.video")) }
        if needsSCSI { reqs.append(.init(id: "scsi0", path: "disks")) }
        if needsVirtioSerial { reqs.append(.init(id: "vser0", path: "virtioSerialPorts")) }
        if usbController != nil { reqs.append(.init(id: "usb", path: "usb")) }
        for (i, d) in config.disks.enumerated() where d.interface == .virtio || d.interface == .nvme {
            reqs.append(.init(id: DiskIDs(disk: d).device, fixed: d.pciSlot, path: "disks[\(i)]"))
        }
        for (i, n) in config.networks.enumerated() {
            reqs.append(.init(id: DeviceID.network(n.name).rawValue, fixed: n.pciSlot, path: "networks[\(i)]"))
        }
        if config.balloon != nil { reqs.append(.init(id: "balloon0", path: "balloon")) }
        // After everything older, so that adding them moves no existing device.
        if config.rng != nil { reqs.append(.init(id: "rng0-dev", path: "rng")) }
        if let a = config.audio, a.model != .sb16 { reqs.append(.init(id: "sound0", path: "audio")) }
        if family == .q35 {
            for i in 0..<(config.machine.hotplugPorts ?? 4) {
                hotplugPortIDs.append("hotplug\(i)")
                reqs.append(.init(id: "hotplug\(i)", path: "machine.hotplugPorts", fromTop: true))
            }
        }
        // Without -nodefaults QEMU adds its default VGA and NIC, which take the lowest free slots.
        let reserved: Set<Int> = config.noDefaults ? [] : (family == .q35 ? [0x01, 0x02] : [0x02, 0x03])
        let (s, p) = PCIAllocator(family: family, reserved: reserved, hints: config.pciSlotHints).allocate(reqs)
        slots = s
        problems += p
    }

    // MARK: Build

    mutating func build() {
        let arch = config.arch ?? .host
        guard let mt = config.machine.type ?? arch.defaultMachineType else {
            problem("machine.type", "is required for \(arch.rawValue) (no default machine type)")
            return
        }
        machineType = mt
        family = BoardFamily(machineType: mt)
        planPCI()

        var name = QemuOpts()
        name.add("guest", config.name)
        opt("-name", name.rendered)
        if let u = config.uuid { opt("-uuid", u) }
        opt("-no-user-config")
        if config.noDefaults { opt("-nodefaults") }

        var machine = QemuOpts()
        machine.add("type", mt)
        machine.add("usb", onOff: config.machine.usb)
        machine.add("dump-guest-core", onOff: config.machine.dumpGuestCore)
        if let fw = config.firmware {
            machine.add("pflash0", "efi-code")
            if fw.vars != nil { machine.add("pflash1", "efi-vars") }
            // Secure Boot firmware keeps its variables behind SMM: without SMM it stops at reset.
            if fw.secureBoot { machine.add("smm", "on") }
        }
        if config.memory.backend != nil { machine.add("memory-backend", "ram0") }
        opt("-machine", machine.rendered)

        accelAndCPU()
        smpAndMemory()
        opt("-display", "none")

        var qmp = QemuOpts("socket")
        qmp.add("id", "qmp"); qmp.add("path", launch.qmpSocketPath); qmp.add("server", "on"); qmp.add("wait", "off")
        opt("-chardev", qmp.rendered)
        opt("-mon", "chardev=qmp,mode=control")
        if let follower = launch.followerSocketPath {
            var events = QemuOpts("socket")
            events.add("id", "qmp-events"); events.add("path", follower); events.add("server", "on"); events.add("wait", "off")
            opt("-chardev", events.rendered)
            opt("-mon", "chardev=qmp-events,mode=control")
        }
        if let p = launch.pidFile { opt("-pidfile", p) }
        if launch.daemonize { opt("-daemonize") }
        if launch.startPaused { opt("-S") }

        memoryObject()
        bootAndClock()
        firmware()
        disks()
        networks()
        displays()
        chardevs()
        usbDevices()
        if let bl = config.balloon {
            var o = JSONObject(["driver": "virtio-balloon-pci", "id": "balloon0"])
            if bl.deflateOnOOM { o["deflate-on-oom"] = true }
            if bl.freePageReporting { o["free-page-reporting"] = true }
            pciDevice("balloon0", o)
        }
        if let r = config.rng {
            opt("-object", JSONObject(["qom-type": "rng-random", "id": "rng0", "filename": r.source]).rendered)
            pciDevice("rng0-dev", JSONObject(["driver": "virtio-rng-pci", "id": "rng0-dev", "rng": "rng0"]))
        }
        audio()
        for (i, id) in hotplugPortIDs.enumerated() {
            pciDevice(id, JSONObject(["driver": "pcie-root-port", "id": id, "chassis": i + 1]))
        }
        args += config.extraArgs
    }

    mutating func accelAndCPU() {
        let probe = launch.accelerator
        switch config.machine.accel {
        case .kvm: accelerator = .kvm
        case .tcg: accelerator = .tcg
        case .auto:
            guard let probe else {
                problem("machine.accel", "is auto, but no accelerator probe result was given (LaunchOptions.accelerator)")
                return
            }
            accelerator = probe.accelerator
        }
        opt("-accel", accelerator.rawValue)
        let usable = probe?.accelerator == accelerator ? probe : nil
        var features = config.cpu.model == nil ? (usable?.cpuFeatures ?? [:]) : [:]
        features.merge(config.cpu.features) { _, new in new }
        guard let model = config.cpu.model ?? usable?.cpuModel else {
            if !features.isEmpty { problem("cpu.features", "needs cpu.model (QEMU's default model was chosen)") }
            return
        }
        var cpu = QemuOpts(model)
        for (k, v) in features.sorted(by: { $0.key < $1.key }) { cpu.add(k, onOff: v) }
        cpuArgument = cpu.rendered
        opt("-cpu", cpu.rendered)
    }

    mutating func smpAndMemory() {
        let c = config.cpu
        var smp = QemuOpts()
        smp.add("cpus", c.count); smp.add("maxcpus", c.maxCount)
        smp.add("sockets", c.sockets); smp.add("cores", c.cores); smp.add("threads", c.threads)
        opt("-smp", smp.rendered)
        let m = config.memory
        var mem = QemuOpts()
        mem.add("size", "\(m.sizeMiB)M")
        if let mx = m.maxSizeMiB {
            mem.add("slots", m.slots ?? 1)
            mem.add("maxmem", "\(mx)M")
        }
        opt("-m", mem.rendered)
        if m.lock { opt("-overcommit", "mem-lock=on") }
    }

    mutating func memoryObject() {
        let m = config.memory
        guard let backend = m.backend else { return }
        var o = JSONObject()
        switch backend {
        case .ram: o["qom-type"] = "memory-backend-ram"
        case .memfd: o["qom-type"] = "memory-backend-memfd"
        case .file: o["qom-type"] = "memory-backend-file"
        }
        o["id"] = "ram0"
        o["size"] = m.sizeMiB * 1024 * 1024
        if case .file(let path) = backend { o["mem-path"] = path }
        o["share"] = m.share
        if m.prealloc { o["prealloc"] = true }
        opt("-object", o.rendered)
    }

    mutating func bootAndClock() {
        if let b = config.boot {
            var boot = QemuOpts()
            boot.add("order", b.order); boot.add("menu", onOff: b.menu); boot.add("strict", onOff: b.strict)
            if !boot.parts.isEmpty { opt("-boot", boot.rendered) }
            // -kernel, -initrd and -append take their argument verbatim (no option parsing).
            if let k = b.kernel { opt("-kernel", k) }
            if let i = b.initrd { opt("-initrd", i) }
            if let a = b.append { opt("-append", a) }
        }
        if let r = config.rtc {
            var rtc = QemuOpts()
            switch r.base {
            case .utc: rtc.add("base", "utc")
            case .localtime: rtc.add("base", "localtime")
            case .datetime(let d): rtc.add("base", d)
            }
            rtc.add("clock", r.clock?.rawValue); rtc.add("driftfix", r.driftFix?.rawValue)
            opt("-rtc", rtc.rendered)
        }
    }

    mutating func firmware() {
        guard let fw = config.firmware else { return }
        opt("-blockdev", JSONObject(["driver": "file", "node-name": "efi-code-file", "filename": fw.code,
                                     "read-only": true]).rendered)
        opt("-blockdev", JSONObject(["driver": "raw", "node-name": "efi-code", "file": "efi-code-file",
                                     "read-only": true]).rendered)
        if let vars = fw.vars {
            opt("-blockdev", JSONObject(["driver": "file", "node-name": "efi-vars-file", "filename": vars]).rendered)
            opt("-blockdev", JSONObject(["driver": "raw", "node-name": "efi-vars", "file": "efi-vars-file"]).rendered)
        }
        // Only code running in SMM may write the flash: the guest OS cannot change Secure Boot variables behind
        // the firmware's back.
        if fw.secureBoot { opt("-global", "driver=cfi.pflash01,property=secure,value=on") }
    }

    // MARK: Disks

    mutating func secret(_ s: Secret, objectID: String) -> String {
        let path = launch.runtimeDirectory + "/" + objectID
        secretFiles.append(SecretFile(objectID: objectID, path: path, secret: s))
        opt("-object", JSONObject(["qom-type": "secret", "id": objectID, "file": path]).rendered)
        return objectID
    }

    func cacheJSON(_ c: DiskCache?) -> JSONObject? {
        guard let c else { return nil }
        let direct = c == .none || c == .directsync
        return JSONObject(["direct": direct, "no-flush": c == .unsafe])
    }

    func writeCache(_ c: DiskCache?) -> String? {
        guard let c else { return nil }
        return (c == .writethrough || c == .directsync) ? "off" : "on"
    }

    var ideNext = 0
    var scsiNext = 0

    mutating func nextIDE(_ path: String) -> (bus: String, unit: Int)? {
        guard let layout = family.ideLayout else {
            problem(path, "ide needs a pc or q35 machine (machine type \(machineType) has no IDE bus we know)")
            return nil
        }
        guard ideNext < layout.buses * layout.units else {
            problem(path, "no free IDE unit: the \(family == .q35 ? "AHCI controller has 6 ports" : "PIIX3 IDE has 2 buses × 2 units")")
            return nil
        }
        defer { ideNext += 1 }
        return ("ide.\(ideNext / layout.units)", ideNext % layout.units)
    }

    mutating func nextSCSI(_ path: String) -> Int? {
        guard scsiNext < 256 else { problem(path, "no free SCSI id (0–255) on scsi0"); return nil }
        defer { scsiNext += 1 }
        return scsiNext
    }

    mutating func disks() {
        if needsSCSI { pciDevice("scsi0", JSONObject(["driver": "virtio-scsi-pci", "id": "scsi0"])) }
        for (i, d) in config.disks.enumerated() {
            let ids = DiskIDs(disk: d)
            let path = "disks[\(i)]"
            var proto = JSONObject()
            let format: DiskFormat
            var backingNode: String? = nil
            switch d.backend {
            case .file(let f):
                format = f.format
                // A declared backing file: its own nodes first, read-only, format explicit, and it follows nothing
                // further (HostFileCheck refuses a base that names a backing file of its own).
                if let b = f.backing, let bfile = ids.backingProtocolNode, let bfmt = ids.backingFormatNode {
                    var bproto = JSONObject(["driver": "file", "node-name": bfile, "filename": b.path, "read-only": true])
                    bproto["cache"] = cacheJSON(d.cache)
                    opt("-blockdev", bproto.rendered)
                    var bformat = JSONObject(["driver": b.format.rawValue, "node-name": bfmt, "file": bfile])
                    if b.format.hasBackingFiles { bformat["backing"] = ArgJSON.null }
                    bformat["read-only"] = true
                    bformat["cache"] = cacheJSON(d.cache)
                    opt("-blockdev", bformat.rendered)
                    backingNode = bfmt
                }
                proto = JSONObject(["driver": "file", "node-name": ids.protocolNode, "filename": f.path])
                if f.autoReadOnly { proto["auto-read-only"] = true }
            case .nbd(let n):
                format = n.format
                proto = JSONObject(["driver": "nbd", "node-name": ids.protocolNode])
                switch n.server {
                case .unix(let p): proto["server"] = JSONObject(["type": "unix", "path": p])
                case .tcp(let h, let port): proto["server"] = JSONObject(["type": "inet", "host": h, "port": String(port)])
                }
                proto["export"] = n.export
                proto["tls-creds"] = n.tlsCredsID
            case .rbd(let r):
                format = r.format
                let keyID = r.key.map { secret($0, objectID: "secret-\(d.name)-key") }
                proto = JSONObject(["driver": "rbd", "node-name": ids.protocolNode, "pool": r.pool, "image": r.image])
                proto["snapshot"] = r.snapshot
                proto["conf"] = r.conf
                proto["user"] = r.user
                proto["key-secret"] = keyID
                if !r.monitors.isEmpty {
                    proto["server"] = ArgJSON.array(r.monitors.map {
                        JSONObject(["host": $0.host, "port": String($0.port)]).json
                    })
                }
            case .iscsi(let s):
                format = s.format
                let pwID = s.password.map { secret($0, objectID: "secret-\(d.name)-password") }
                proto = JSONObject(["driver": "iscsi", "node-name": ids.protocolNode, "transport": "tcp",
                                    "portal": s.portal, "target": s.target, "lun": s.lun])
                proto["user"] = s.user
                proto["password-secret"] = pwID
                proto["initiator-name"] = s.initiator
            }
            if d.readOnly { proto["read-only"] = true }
            proto["cache"] = cacheJSON(d.cache)
            if d.discard { proto["discard"] = "unmap" }
            opt("-blockdev", proto.rendered)

            var fmt = JSONObject(["driver": format.rawValue, "node-name": ids.formatNode, "file": ids.protocolNode])
            // A backing file named in the image header is never opened: only what the configuration declares is.
            if let backingNode { fmt["backing"] = backingNode } else if format.hasBackingFiles { fmt["backing"] = ArgJSON.null }
            if d.readOnly { fmt["read-only"] = true }
            fmt["cache"] = cacheJSON(d.cache)
            if d.discard { fmt["discard"] = "unmap" }
            opt("-blockdev", fmt.rendered)

            if let t = d.throttle, let group = ids.throttleGroup, let node = ids.throttleNode {
                let limits = ArgJSON.object(t.qemuLimits.map { ($0.key, .int($0.value)) })
                opt("-object", JSONObject(["qom-type": "throttle-group", "id": group, "limits": limits]).rendered)
                opt("-blockdev", JSONObject(["driver": "throttle", "node-name": node, "throttle-group": group,
                                             "file": ids.formatNode]).rendered)
            }

            var dev = JSONObject()
            switch d.interface {
            case .virtio:
                dev = JSONObject(["driver": "virtio-blk-pci", "id": ids.device, "drive": ids.topNode])
            case .nvme:
                dev = JSONObject(["driver": "nvme", "id": ids.device, "drive": ids.topNode,
                                  "serial": d.serial ?? d.name])
            case .scsi:
                guard let sid = nextSCSI("\(path).interface") else { continue }
                dev = JSONObject(["driver": "scsi-hd", "id": ids.device, "drive": ids.topNode, "bus": "scsi0.0",
                                  "scsi-id": sid, "lun": 0])
            case .ide:
                guard let (bus, unit) = nextIDE("\(path).interface") else { continue }
                dev = JSONObject(["driver": "ide-hd", "id": ids.device, "drive": ids.topNode, "bus": bus, "unit": unit])
            }
            if d.interface != .nvme { dev["serial"] = d.serial }
            dev["bootindex"] = d.bootIndex
            dev["write-cache"] = writeCache(d.cache)
            if d.interface == .virtio || d.interface == .nvme { pciDevice(ids.device, dev) } else { opt("-device", dev.rendered) }
        }
        for (i, cd) in config.cdroms.enumerated() {
            let ids = DiskIDs(cdrom: cd)
            if let p = cd.path {
                opt("-blockdev", JSONObject(["driver": "file", "node-name": ids.protocolNode, "filename": p,
                                             "read-only": true]).rendered)
                opt("-blockdev", JSONObject(["driver": cd.format.rawValue, "node-name": ids.formatNode,
                                             "file": ids.protocolNode, "read-only": true]).rendered)
            }
            var dev: JSONObject
            switch cd.interface {
            case .ide:
                guard let (bus, unit) = nextIDE("cdroms[\(i)].interface") else { continue }
                dev = JSONObject(["driver": "ide-cd", "id": ids.device, "bus": bus, "unit": unit])
            case .scsi:
                guard let sid = nextSCSI("cdroms[\(i)].interface") else { continue }
                dev = JSONObject(["driver": "scsi-cd", "id": ids.device, "bus": "scsi0.0", "scsi-id": sid, "lun": 0])
            }
            if cd.path != nil { dev["drive"] = ids.formatNode }
            dev["bootindex"] = cd.bootIndex
            opt("-device", dev.rendered)
        }
    }

    // MARK: Networks

    mutating func networks() {
        for n in config.networks {
            let netdevID = "netdev-\(n.name)"
            var nd = JSONObject()
            var multiqueue = false
            switch n.backend {
            case .user(let u):
                nd = JSONObject(["type": "user", "id": netdevID])
                nd["net"] = u.net; nd["host"] = u.host; nd["dns"] = u.dns; nd["dhcpstart"] = u.dhcpStart
                nd["hostname"] = u.hostname; nd["domainname"] = u.domainName
                if u.restrict { nd["restrict"] = true }
                if !u.hostForwards.isEmpty {
                    nd["hostfwd"] = ArgJSON.array(u.hostForwards.map { JSONObject(["str": $0.qemuString]).json })
                }
            case .tap(let t):
                nd = JSONObject(["type": "tap", "id": netdevID])
                nd["ifname"] = t.ifname
                nd["script"] = t.script ?? "no"
                nd["downscript"] = t.downscript ?? "no"
                nd["vhost"] = t.vhost
                if let q = t.queues { nd["queues"] = q; multiqueue = q > 1 && n.model.hasPrefix("virtio-net") }
            case .bridge(let br):
                nd = JSONObject(["type": "bridge", "id": netdevID, "br": br.bridge])
                nd["helper"] = br.helper
            case .socket(let s):
                nd = JSONObject(["type": "socket", "id": netdevID])
                switch s.mode {
                case .listen(let h, let p): nd["listen"] = "\(h):\(p)"
                case .connect(let h, let p): nd["connect"] = "\(h):\(p)"
                case .multicast(let a, let p): nd["mcast"] = "\(a):\(p)"
                }
            case .stream(let s):
                nd = JSONObject(["type": "stream", "id": netdevID, "server": s.server])
                switch s.address {
                case .unix(let p): nd["addr"] = JSONObject(["type": "unix", "path": p])
                case .inet(let h, let p): nd["addr"] = JSONObject(["type": "inet", "host": h, "port": String(p)])
                }
            case .vde(let v):
                nd = JSONObject(["type": "vde", "id": netdevID, "sock": v.socket])
                nd["port"] = v.port; nd["group"] = v.group; nd["mode"] = v.mode
            }
            opt("-netdev", nd.rendered)
            var dev = JSONObject(["driver": n.model, "id": DeviceID.network(n.name).rawValue, "netdev": netdevID])
            dev["mac"] = n.mac?.rawValue
            if multiqueue { dev["mq"] = true }
            dev["bootindex"] = n.bootIndex
            pciDevice(DeviceID.network(n.name).rawValue, dev)
        }
    }

    // MARK: Displays

    mutating func displays() {
        if let v = config.display.video {
            if v.isPCI { pciDevice("video0", JSONObject(["driver": v.driver, "id": "video0"])) } else { opt("-device", JSONObject(["driver": v.driver, "id": "video0"]).rendered) }
        }
        if let vnc = config.display.vnc {
            var o = QemuOpts()
            switch vnc.listen {
            case .none: o.add("vnc", "none")
            case .unix(let p): o.add("vnc", "unix:" + p)
            case .tcp(let h, let d): o.add("vnc", (h.contains(":") ? "[\(h)]" : h) + ":\(d)")
            }
            if let pw = vnc.password {
                o.add("password", "on")
                postStart.append(.setPassword(.vnc, pw))
            }
            opt("-vnc", o.rendered)
        }
        if let sp = config.display.spice {
            var o = QemuOpts()
            switch sp.listen {
            case .unix(let p): o.add("unix", "on"); o.add("addr", p)
            case .tcp(let h, let p): o.add("port", p); o.add("addr", h)
            }
            if sp.disableTicketing { o.add("disable-ticketing", "on") }
            o.add("image-compression", sp.imageCompression?.rawValue)
            if let pw = sp.password { postStart.append(.setPassword(.spice, pw)) }
            opt("-spice", o.rendered)
        }
    }

    // MARK: Character devices

    func chardevOptions(_ b: CharBackend, id: String, logFile: String?) -> String {
        var o: QemuOpts
        switch b {
        case .null: o = QemuOpts("null"); o.add("id", id)
        case .pty: o = QemuOpts("pty"); o.add("id", id)
        case .file(let p, let append):
            o = QemuOpts("file"); o.add("id", id); o.add("path", p)
            if append { o.add("append", "on") }
        case .unix(let p, let server):
            o = QemuOpts("socket"); o.add("id", id); o.add("path", p)
            // A client socket must not say wait=off (QEMU 7.2 rejects it).
            if server { o.add("server", "on"); o.add("wait", "off") }
        case .tcp(let h, let port, let server):
            o = QemuOpts("socket"); o.add("id", id); o.add("host", h); o.add("port", port)
            if server { o.add("server", "on"); o.add("wait", "off") }
        case .ringbuf(let size):
            o = QemuOpts("ringbuf"); o.add("id", id); o.add("size", size)
        }
        o.add("logfile", logFile)
        return o.rendered
    }

    mutating func chardevs() {
        for s in config.serials {
            let id = "serial-\(s.name)"
            opt("-chardev", chardevOptions(s.backend, id: id, logFile: s.logFile))
            opt("-serial", "chardev:" + id)
        }
        for c in config.chardevs { opt("-chardev", chardevOptions(c.backend, id: c.id, logFile: c.logFile)) }
        guard needsVirtioSerial else { return }
        pciDevice("vser0", JSONObject(["driver": "virtio-serial-pci", "id": "vser0"]))
        var ports: [(id: String, chardev: String, name: String)] = []
        if config.guestAgent {
            let path = launch.runtimeDirectory + "/qga.sock"
            guestAgentSocket = path
            opt("-chardev", chardevOptions(.unix(path: path, server: true), id: "qga0", logFile: nil))
            ports.append(("qga0", "qga0", "org.qemu.guest_agent.0"))
        }
        if config.spiceAgent {
            opt("-chardev", "spicevmc,id=vdagent0,name=vdagent")
            ports.append(("vdagent0", "vdagent0", "com.redhat.spice.0"))
        }
        for (i, p) in config.virtioSerialPorts.enumerated() { ports.append(("vport\(i)", p.chardev, p.name)) }
        for p in ports {
            opt("-device", JSONObject(["driver": "virtserialport", "id": p.id, "bus": "vser0.0", "chardev": p.chardev,
                                       "name": p.name]).rendered)
        }
    }

    // MARK: Audio

    /// `-audiodev` in JSON (QEMU 7.2 accepts it), then the card: PCI cards get a slot, `sb16` sits on the ISA bus.
    mutating func audio() {
        guard let a = config.audio else { return }
        var ad = JSONObject(["driver": a.backend.rawValue, "id": "audio0"])
        if a.backend == .wav { ad["path"] = a.wavPath ?? launch.runtimeDirectory + "/audio0.wav" }
        opt("-audiodev", ad.rendered)
        switch a.model {
        case .hda:
            pciDevice("sound0", JSONObject(["driver": "intel-hda", "id": "sound0"]))
            opt("-device", JSONObject(["driver": "hda-duplex", "id": "sound0-codec", "bus": "sound0.0",
                                       "audiodev": "audio0"]).rendered)
        case .ac97:
            pciDevice("sound0", JSONObject(["driver": "AC97", "id": "sound0", "audiodev": "audio0"]))
        case .sb16:
            guard family != .other else {
                problem("audio.model", "sb16 is an ISA card and needs a pc or q35 machine (machine type \(machineType) has no ISA bus we know)")
                return
            }
            opt("-device", JSONObject(["driver": "sb16", "id": "sound0", "audiodev": "audio0"]).rendered)
        }
    }

    // MARK: USB

    mutating func usbDevices() {
        guard let controller = usbController else { return }
        pciDevice("usb", JSONObject(["driver": controller.driver, "id": "usb"]))
        var devices = config.usb?.devices ?? []
        let tablet = config.usbTablet && !devices.contains(.tablet) ? devices.count : nil
        if tablet != nil { devices.append(.tablet) }
        for (i, d) in devices.enumerated() {
            var o = JSONObject()
            switch d {
            case .tablet: o["driver"] = "usb-tablet"
            case .keyboard: o["driver"] = "usb-kbd"
            case .mouse: o["driver"] = "usb-mouse"
            case .host(let v, let p): o["driver"] = "usb-host"; o["vendorid"] = v; o["productid"] = p
            case .hostAddress(let b, let a): o["driver"] = "usb-host"; o["hostbus"] = b; o["hostaddr"] = a
            }
            o["id"] = i == tablet ? USB.tabletID : config.usb?.deviceID(i) ?? "usb\(i)"
            o["bus"] = "usb.0"
            opt("-device", o.rendered)
        }
    }
}
