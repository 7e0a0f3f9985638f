// MARK: - SpecDecoder

/// Decodes one YAML document into a normalized ``VirtualMachine``, reporting every
/// problem to the context. Knows nothing of QEMU: only the manifest format.
struct SpecDecoder {
    let ctx: DecodeContext

    /// A decoded VM, plus positions that cross-document checks point at.
    struct Decoded {
        var vm: VirtualMachine
        /// `metadata.name`'s value node.
        var nameNode: YAMLNode
        /// Each NIC's MAC and where it comes from (the mac value, or the NIC's name when derived).
        var macs: [(mac: String, node: YAMLNode, derived: Bool)]
    }

    /// Decodes a document; nil when it is not a VM manifest at all or has errors that leave
    /// no usable VM (the errors are in the context either way).
    func decode(_ root: YAMLNode) -> Decoded? {
        let before = ctx.diagnostics.count
        ctx.resetPaths()
        guard root.isMapping else {
            ctx.error(root, "a manifest must be a mapping, not \(Values.describe(root, ctx))",
                      hint: "start with 'apiVersion: \(FieldTable.apiVersion)' and 'kind: \(FieldTable.kind)'")
            return nil
        }
        // apiVersion and kind first: if they are wrong, nothing else is worth reporting.
        guard checkHeader(root, ctx.tree.items(root)) else { return nil }
        guard let doc = ObjectReader(root, FieldTable.document, ctx, parent: nil, key: "") else { return nil }

        var name = ""
        var nameNode = root
        var labels: [String: String] = [:]
        if let meta = doc.object("metadata") {
            name = meta.string("name") ?? ""
            nameNode = meta.position("name")
            labels = meta.map("labels")
        }
        var macs: [(String, YAMLNode, Bool)] = []
        var spec = VirtualMachineSpec()
        if let s = doc.object("spec") {
            spec = decodeSpec(s, vmName: name, macs: &macs)
        }
        guard ctx.diagnostics.count == before || !name.isEmpty else { return nil }
        let vm = VirtualMachine(name: name, labels: labels, spec: spec, source: ctx.location(nameNode))
        return Decoded(vm: vm, nameNode: nameNode, macs: macs)
    }

    private func checkHeader(_ root: YAMLNode, _ items: UnsafeBufferPointer<YAMLNode>) -> Bool {
        let tree = ctx.tree
        func value(_ key: String) -> YAMLNode? {
            var i = 0
            while i + 1 < items.count {
                if tree.isScalar(items[i], equalTo: key) { return items[i + 1] }
                i += 2
            }
            return nil
        }
        if let foreign = foreignFormat(value) {
            ctx.error(foreign.node, foreign.message, hint: foreign.hint)
            return false
        }
        for (key, expected) in [("apiVersion", FieldTable.apiVersion), ("kind", FieldTable.kind)] {
            guard let v = value(key) else {
                ctx.error(root, "missing '\(key)'; every manifest starts with 'apiVersion: \(FieldTable.apiVersion)' and 'kind: \(FieldTable.kind)'")
                return false
            }
            guard !tree.isScalar(v, equalTo: expected) else { continue }
            do {
                let shown: String = v.isScalar ? Text.quoted(tree.string(v)) : Values.describe(v, ctx)
                var hint = "expected '\(key): \(expected)'"
                if v.isScalar, Text.suggestion(for: tree.string(v), among: [expected]) != nil {
                    hint = "did you mean '\(key): \(expected)'?"
                }
                ctx.error(v, "unsupported \(key) \(shown)", hint: hint)
                return false
            }
        }
        return true
    }

    /// Top-level keys of a Lima template (lima-vm.io) that a qemuctl manifest does not have.
    static let limaKeys = ["images", "vmType", "mounts", "containerd", "provision", "portForwards"]

    /// A document in another tool's VM format: a KubeVirt `VirtualMachine` (apiVersion
    /// `kubevirt.io/…`) or a Lima template (no apiVersion; `images:`, `vmType:`…). Names the
    /// format, so the error says what the file is rather than "unsupported apiVersion".
    private func foreignFormat(_ value: (String) -> YAMLNode?) -> (node: YAMLNode, message: String, hint: String)? {
        let tree = ctx.tree
        if let v = value("apiVersion") {
            guard v.isScalar, tree.string(v).hasPrefix("kubevirt.io/") else { return nil }
            let kind = value("kind").flatMap { $0.isScalar ? tree.string($0) : nil } ?? "object"
            return (v, "this is a KubeVirt \(kind) (apiVersion \(Text.quoted(tree.string(v)))), not a qemuctl manifest",
                    "qemuctl manifests start with 'apiVersion: \(FieldTable.apiVersion)' and 'kind: \(FieldTable.kind)'; "
                    + "'qemuctl export kubevirt' goes the other way, from a qemuctl manifest to a KubeVirt VirtualMachine")
        }
        for key in Self.limaKeys {
            guard let v = value(key) else { continue }
            return (v, "this looks like a Lima template (top-level '\(key)'), not a qemuctl manifest",
                    "qemuctl does not read Lima templates; write a manifest with 'apiVersion: \(FieldTable.apiVersion)' and "
                    + "'kind: \(FieldTable.kind)' ('qemuctl schema --markdown' lists its fields)")
        }
        return nil
    }

    // MARK: - spec

    private func decodeSpec(_ r: ObjectReader, vmName: String, macs: inout [(String, YAMLNode, Bool)]) -> VirtualMachineSpec {
        var spec = VirtualMachineSpec()
        spec.runState = r.enumeration("runState") ?? .running
        // Left nil when absent, so a manifest without it equals a record written before the field existed.
        if r.has("restartPolicy") { spec.restartPolicy = r.enumeration("restartPolicy") }
        spec.arch = r.enumeration("arch") ?? .host
        spec.emulator = r.string("emulator")
        ctx.checkHostFile(spec.emulator, r.position("emulator"), "emulator")
        if let m = r.object("machine") {
            spec.machine.type = m.string("type")
            spec.machine.accel = m.enumeration("accel") ?? .auto
            spec.machine.hotplugPorts = m.int("hotplugPorts") ?? 4
            spec.machine.dumpGuestCore = m.bool("dumpGuestCore")
        }
        if let c = r.object("cpu") { spec.cpu = decodeCPU(c) }
        if let m = r.object("memory") { spec.memory = decodeMemory(m) }
        if let f = r.object("firmware") {
            spec.firmware.type = f.enumeration("type") ?? .bios
            spec.firmware.code = f.string("code")
            spec.firmware.vars = f.string("vars")
            spec.firmware.secureBoot = f.bool("secureBoot")
            ctx.checkHostFile(spec.firmware.code, f.position("code"), "firmware code")
            if spec.firmware.type == .bios {
                for key in ["code", "vars", "secureBoot"] where f.has(key) {
                    ctx.error(f.keyPosition(key), "'spec.firmware.\(key)' needs 'type: efi'")
                }
            } else if spec.firmware.secureBoot {
                // SMM-protected flash exists on q35 only (QEMU's pc machine boots Secure Boot OVMF without it).
                let type = spec.machine.type ?? (spec.arch == .amd64 || spec.arch == .i386 ? "q35" : "")
                if !(type == "q35" || type.hasPrefix("pc-q35-")) {
                    ctx.error(f.keyPosition("secureBoot"),
                              "'spec.firmware.secureBoot' needs a q35 machine (spec.machine.type q35 or pc-q35-*), got \(type.isEmpty ? "the \(spec.arch.rawValue) default" : "'\(type)'")")
                }
            }
        }
        if let b = r.object("boot") {
            spec.boot.kernel = b.string("kernel")
            spec.boot.initrd = b.string("initrd")
            spec.boot.cmdline = b.string("cmdline")
            spec.boot.order = b.string("order")
            spec.boot.menu = b.bool("menu")
            spec.boot.strict = b.bool("strict")
            ctx.checkHostFile(spec.boot.kernel, b.position("kernel"), "kernel")
            ctx.checkHostFile(spec.boot.initrd, b.position("initrd"), "initrd")
            if !b.has("kernel") {
                for key in ["initrd", "cmdline"] where b.has(key) {
                    ctx.error(b.keyPosition(key), "'spec.boot.\(key)' needs 'spec.boot.kernel'")
                }
            }
        }

        var driveNames = NameSet()
        var pciSlots: [Int: YAMLNode] = [:]
        let (diskField, diskItems) = r.array("disks")
        for (i, item) in diskItems.enumerated() {
            guard let d = ObjectReader(item, diskField, ctx, parent: r, key: "disks", index: i) else { continue }
            if let disk = decodeDisk(d) {
                unique(disk.name, d.position("name"), in: &driveNames, what: "drive")
                uniqueSlot(disk.pciSlot, d, in: &pciSlots)
                if disk.pciSlot != nil, disk.interface != .virtio, disk.interface != .nvme {
                    ctx.error(d.position("pciAddress"), "an \(disk.interface.rawValue) disk is not a PCI device",
                              hint: "pciAddress is for virtio and nvme disks; ide and scsi disks sit on their controller")
                }
                spec.disks.append(disk)
            }
        }
        let (cdField, cdItems) = r.array("cdroms")
        for (i, item) in cdItems.enumerated() {
            guard let c = ObjectReader(item, cdField, ctx, parent: r, key: "cdroms", index: i), let name = c.string("name") else {
                continue
            }
            unique(name, c.position("name"), in: &driveNames, what: "drive")
            var cd = VirtualMachineSpec.CDROM(name: name)
            cd.path = c.string("path")
            ctx.checkHostFile(cd.path, c.position("path"), "CD-ROM image")
            cd.interface = c.enumeration("interface") ?? .ide
            cd.bootIndex = c.int("bootIndex")
            spec.cdroms.append(cd)
        }

        var nicNames = NameSet()
        let (nicField, nicItems) = r.array("networks")
        for (i, item) in nicItems.enumerated() {
            guard let n = ObjectReader(item, nicField, ctx, parent: r, key: "networks", index: i) else { continue }
            if let nic = decodeNetwork(n, vmName: vmName) {
                guard unique(nic.name, n.position("name"), in: &nicNames, what: "network") else { continue }
                uniqueSlot(nic.pciSlot, n, in: &pciSlots)
                macs.append((nic.mac, n.has("mac") ? n.position("mac") : n.position("name"), !n.has("mac")))
                spec.networks.append(nic)
            }
        }

        if let d = r.object("display") {
            if let v = d.object("vnc") {
                var vnc = VirtualMachineSpec.Display.VNC()
                vnc.listen = v.string("listen") ?? "none"
                vnc.passwordFrom = secret(v, "passwordFrom")
                spec.display.vnc = vnc
            }
            if let s = d.object("spice") {
                var spice = VirtualMachineSpec.Display.SPICE()
                spice.listen = s.string("listen") ?? "unix"
                spice.passwordFrom = secret(s, "passwordFrom")
                spice.disableTicketing = s.bool("disableTicketing")
                spice.compression = s.enumeration("compression")
                if spice.disableTicketing, spice.passwordFrom != nil {
                    ctx.error(s.keyPosition("disableTicketing"),
                              "'disableTicketing: true' contradicts 'passwordFrom' in 'spec.display.spice'")
                }
                spec.display.spice = spice
            }
            let hasDisplay = spec.display.vnc != nil || spec.display.spice != nil
            spec.display.video = d.enumeration("video") ?? (hasDisplay ? .std : .none)
        }
        if let s = r.object("serial") { spec.serial.log = s.bool("log") }
        spec.guestAgent = r.bool("guestAgent")
        if let c = r.object("cloudInit") { spec.cloudInit = decodeCloudInit(c, spec: spec) }
        if let p = r.object("readiness") { spec.readiness = decodeReadiness(p, spec: spec) }
        spec.spiceAgent = r.bool("spiceAgent")
        if spec.spiceAgent, spec.display.spice == nil {
            ctx.error(r.keyPosition("spiceAgent"), "'spec.spiceAgent' needs 'spec.display.spice'")
        }
        spec.usbTablet = r.bool("usbTablet")
        if let u = r.object("usb") { spec.usb = decodeUSB(u) }
        if spec.usb.controller == .none, spec.usbTablet || !spec.usb.devices.isEmpty {
            ctx.error(r.position("usb"), "'spec.usb.controller: none' leaves no bus for USB devices",
                      hint: spec.usbTablet ? "usbTablet is a USB device" : nil)
        }
        spec.balloon = r.bool("balloon")
        spec.rng = r.bool("rng")
        if let t = r.object("rtc") {
            spec.rtc.base = t.enumeration("base") ?? .utc
            spec.rtc.clock = t.enumeration("clock") ?? .host
            spec.rtc.driftFix = t.enumeration("driftFix") ?? .none
        }
        if let a = r.object("audio") {
            var audio = VirtualMachineSpec.Audio()
            audio.backend = a.enumeration("backend") ?? .none
            audio.model = a.enumeration("model") ?? .hda
            if audio.backend == .spice, spec.display.spice == nil {
                ctx.error(a.position("backend"), "'spec.audio.backend: spice' needs 'spec.display.spice'")
            }
            spec.audio = audio
        }
        return spec
    }

    /// Reports the second use of a name within one VM.
    @discardableResult
    private func unique(_ name: String, _ node: YAMLNode, in seen: inout NameSet, what: String) -> Bool {
        if let first = seen.first(name) {
            ctx.error(node, "\(what) name '\(name)' is used twice in this VM",
                      hint: "first used at line \(first.line), column \(first.column)")
            return false
        }
        seen.insert(name, node)
        return true
    }

    /// Reports a `pciAddress` outside the root bus's device slots, or the second use of one
    /// within one VM (which slots a board keeps for itself, `plan` and `apply` say).
    private func uniqueSlot(_ slot: Int?, _ r: ObjectReader, in seen: inout [Int: YAMLNode]) {
        guard let slot else { return }
        let node = r.position("pciAddress")
        let hex = String(slot, radix: 16)
        let text = "0x" + (hex.count < 2 ? "0" + hex : hex)
        guard (1...0x1f).contains(slot) else {
            ctx.error(node, "PCI slot \(text) is not a device slot", hint: "slots 0x01 to 0x1f (0x00 is the host bridge)")
            return
        }
        if let first = seen[slot] {
            ctx.error(node, "PCI slot \(text) on the root bus is already taken in this VM",
                      hint: "first used at line \(first.line), column \(first.column)")
            return
        }
        seen[slot] = node
    }

    // MARK: - cpu, memory

    private func decodeCPU(_ c: ObjectReader) -> VirtualMachineSpec.CPU {
        var cpu = VirtualMachineSpec.CPU()
        cpu.model = c.string("model")
        cpu.count = c.int("count") ?? 1
        cpu.maxCount = c.int("maxCount") ?? cpu.count
        cpu.sockets = c.int("sockets")
        cpu.cores = c.int("cores")
        cpu.threads = c.int("threads")
        cpu.features = c.strings("features")
        if cpu.maxCount < cpu.count {
            ctx.error(c.position("maxCount"), "'spec.cpu.maxCount' (\(cpu.maxCount)) is less than 'count' (\(cpu.count))")
        }
        if cpu.sockets != nil || cpu.cores != nil || cpu.threads != nil {
            let product = (cpu.sockets ?? 1) * (cpu.cores ?? 1) * (cpu.threads ?? 1)
            if cpu.sockets != nil, cpu.cores != nil, cpu.threads != nil, product != cpu.maxCount {
                ctx.error(c.node, "CPU topology \(cpu.sockets!)×\(cpu.cores!)×\(cpu.threads!) = \(product) does not match maxCount \(cpu.maxCount)",
                          hint: "sockets × cores × threads must equal maxCount (or count when maxCount is absent)")
            } else if product > cpu.maxCount {
                ctx.error(c.node, "CPU topology has \(product) threads, more than maxCount \(cpu.maxCount)")
            }
        }
        return cpu
    }

    private func decodeMemory(_ m: ObjectReader) -> VirtualMachineSpec.Memory {
        var mem = VirtualMachineSpec.Memory()
        mem.size = m.size("size") ?? mem.size
        mem.max = m.size("max")
        mem.slots = m.int("slots") ?? 8
        mem.backend = m.enumeration("backend") ?? .ram
        mem.path = m.string("path")
        mem.share = m.bool("share")
        mem.prealloc = m.bool("prealloc")
        mem.lock = m.bool("lock")
        if let max = mem.max, max < mem.size {
            ctx.error(m.position("max"), "'spec.memory.max' (\(ByteSize.format(max))) is less than 'size' (\(ByteSize.format(mem.size)))")
        }
        if m.has("slots"), mem.max == nil {
            ctx.error(m.keyPosition("slots"), "'spec.memory.slots' needs 'spec.memory.max'")
        }
        if mem.backend == .file, mem.path == nil, !m.has("path") {
            ctx.error(m.position("backend"), "'spec.memory.backend: file' needs 'spec.memory.path'")
        }
        if mem.backend != .file, m.has("path") {
            ctx.error(m.keyPosition("path"), "'spec.memory.path' needs 'backend: file'")
        }
        return mem
    }

    // MARK: - disks

    private func decodeDisk(_ d: ObjectReader) -> VirtualMachineSpec.Disk? {
        var path: String { d.path }
        let name = d.string("name")
        var backend: VirtualMachineSpec.Disk.Backend? = nil
        let fileReader = d.object("file")
        if let f = fileReader {
            if let p = f.string("path"), let format: VirtualMachineSpec.Disk.Format = f.enumeration("format") {
                backend = .file(path: p, format: format)
            }
        } else if let n = d.object("nbd") {
            var server: VirtualMachineSpec.Disk.NBD.Server? = nil
            if let u = n.string("unix") {
                server = .unix(u)
                if n.has("port") { ctx.error(n.keyPosition("port"), "'\(path).nbd.port' needs 'host', not 'unix'") }
            } else if let h = n.string("host"), let port = n.int("port") {
                server = .tcp(host: h, port: port)
            }
            if let server {
                backend = .nbd(.init(server: server, export: n.string("export"), tls: n.bool("tls")))
            }
        } else if let r = d.object("rbd") {
            if let pool = r.string("pool"), let image = r.string("image") {
                backend = .rbd(.init(
                    pool: pool, image: image, snapshot: r.string("snapshot"), conf: r.string("conf"),
                    user: r.string("user"), keyFrom: secret(r, "keyFrom")))
            }
        } else if let s = d.object("iscsi") {
            if let portal = s.string("portal"), let target = s.string("target") {
                let password = secret(s, "passwordFrom")
                if password != nil, !s.has("user") {
                    ctx.error(s.keyPosition("passwordFrom"), "'\(path).iscsi.passwordFrom' needs 'user'")
                }
                backend = .iscsi(.init(
                    portal: portal, target: target, lun: s.int("lun") ?? 0, user: s.string("user"),
                    passwordFrom: password, initiator: s.string("initiator")))
            }
        }
        let interface: VirtualMachineSpec.Disk.Interface = d.enumeration("interface") ?? .virtio
        let serial = d.string("serial")
        let readOnly = d.bool("readOnly")
        let cache: VirtualMachineSpec.Disk.Cache = d.enumeration("cache") ?? .writeback
        let discard = d.bool("discard")
        let bootIndex = d.int("bootIndex")
        var backing: VirtualMachineSpec.Disk.ImageFile? = nil
        if let f = fileReader, let b = f.object("backing") {
            backing = imageFile(b)
            if let format: VirtualMachineSpec.Disk.Format = f.enumeration("format"), format != .qcow2 {
                ctx.error(f.keyPosition("backing"), "'\(path).file.backing' needs 'file.format: qcow2' (not \(format.rawValue))",
                          hint: "qemuctl attaches backing chains of qcow2 images only")
            }
        }
        var createSize: UInt64? = nil
        var createFrom: VirtualMachineSpec.Disk.ImageFile? = nil
        var createMode: VirtualMachineSpec.Disk.CreateMode? = nil
        if let c = d.object("create") {
            createSize = c.size("size")
            // The mode (default overlay) means something only with a base.
            createMode = c.has("from") ? c.enumeration("mode") : nil
            if let from = c.object("from") {
                createFrom = imageFile(from)
                if let base = createFrom, case .file(let p, _)? = backend, base.path == p {
                    ctx.error(from.position("path"), "'\(path).create.from.path' is the disk's own image '\(p)'",
                              hint: "the base must be another image, which the new one is made from")
                }
                if (createMode ?? .overlay) == .overlay, let f = fileReader,
                   let format: VirtualMachineSpec.Disk.Format = f.enumeration("format"), format != .qcow2 {
                    ctx.error(c.keyPosition("from"), "'\(path).create.from' with mode overlay makes a qcow2 image, but 'file.format' is \(format.rawValue)",
                              hint: "set 'file.format: qcow2', or 'create.mode: copy' for an independent \(format.rawValue) copy")
                }
                if backing != nil, let f = fileReader {
                    ctx.error(f.keyPosition("backing"), "'\(path).file.backing' cannot be given with 'create.from'",
                              hint: (createMode ?? .overlay) == .overlay ? "an overlay's backing file is its base, create.from: remove file.backing"
                                  : "a copy has no backing file: remove file.backing")
                }
                if let base = createFrom, ctx.hostFiles != .ignore {
                    let overlay = (createMode ?? .overlay) == .overlay
                    // A copy's base matters only while the image is still to be made; an overlay's is its backing file.
                    var imageExists = false
                    if case .file(let p, _)? = backend { imageExists = FileSystem.exists(p) }
                    if overlay || !imageExists {
                        ctx.checkBaseImage(base.path, from.position("path"), regular: overlay)
                    }
                }
            } else {
                if !c.has("size") {
                    ctx.error(d.keyPosition("create"), "'\(path).create' needs 'size' (a blank image) or 'from' (a base image)")
                }
                if c.has("mode") {
                    ctx.error(c.keyPosition("mode"), "'\(path).create.mode' needs 'create.from'")
                }
            }
            if d.has("nbd") || d.has("rbd") || d.has("iscsi") {
                ctx.error(d.keyPosition("create"), "'\(path).create' works only with the 'file' backend")
            }
            if readOnly {
                ctx.error(d.keyPosition("create"), "'\(path).create' makes no sense for a read-only disk")
            }
        }
        var throttle: VirtualMachineSpec.Disk.Throttle? = nil
        if let t = d.object("throttle") { throttle = decodeThrottle(t) }
        // QEMU's own limits (QemuCtl's validation refuses them at apply; said here so `validate` agrees).
        if readOnly, interface == .ide || interface == .nvme {
            ctx.error(d.keyPosition("readOnly"), "'\(path).readOnly' is not possible with 'interface: \(interface.rawValue)'",
                      hint: interface == .ide ? "ide-hd cannot be read-only; use virtio, scsi or a CD-ROM"
                          : "nvme cannot be read-only in QEMU 7.2; use virtio or scsi")
        }

        guard let name, let backend else { return nil }
        if case .file(let p, _) = backend, !d.has("create"), let f = fileReader {
            ctx.checkHostFile(p, f.position("path"), "disk image")
        }
        if let b = backing, let r = fileReader?.object("backing") {
            ctx.checkHostFile(b.path, r.position("path"), "backing file")
        }
        var disk = VirtualMachineSpec.Disk(name: name, backend: backend)
        disk.interface = interface
        disk.serial = serial ?? (interface == .nvme ? String(name.prefix(20)) : nil)
        disk.readOnly = readOnly
        disk.cache = cache
        disk.discard = discard
        disk.bootIndex = bootIndex
        disk.pciSlot = d.string("pciAddress").flatMap { Int($0.dropFirst(2), radix: 16) }
        disk.createSize = createSize
        disk.createFrom = createFrom
        disk.createMode = createMode
        disk.backing = backing
        disk.throttle = throttle
        return disk
    }

    /// `create.from` or `file.backing`: a path and an explicit format.
    private func imageFile(_ r: ObjectReader) -> VirtualMachineSpec.Disk.ImageFile? {
        guard let p = r.string("path"), let format: VirtualMachineSpec.Disk.Format = r.enumeration("format") else { return nil }
        return .init(path: p, format: format)
    }

    /// Totals and the per-direction limits they exclude.
    private static let throttleTotals: [(String, [String])] = [("bps", ["bpsRead", "bpsWrite"]), ("iops", ["iopsRead", "iopsWrite"])]

    private func decodeThrottle(_ t: ObjectReader) -> VirtualMachineSpec.Disk.Throttle {
        var path: String { t.path }
        var th = VirtualMachineSpec.Disk.Throttle()
        th.bps = t.size("bps")
        th.bpsRead = t.size("bpsRead")
        th.bpsWrite = t.size("bpsWrite")
        th.iops = t.int("iops").map(UInt64.init)
        th.iopsRead = t.int("iopsRead").map(UInt64.init)
        th.iopsWrite = t.int("iopsWrite").map(UInt64.init)
        th.bpsMax = t.size("bpsMax")
        th.bpsReadMax = t.size("bpsReadMax")
        th.bpsWriteMax = t.size("bpsWriteMax")
        th.iopsMax = t.int("iopsMax").map(UInt64.init)
        th.iopsReadMax = t.int("iopsReadMax").map(UInt64.init)
        th.iopsWriteMax = t.int("iopsWriteMax").map(UInt64.init)
        th.burstLength = t.int("burstLength") ?? 1
        th.iopsSize = t.size("iopsSize")
        // Totals and per-direction limits exclude each other.
        for (total, parts) in Self.throttleTotals where t.has(total) {
            for part in parts where t.has(part) {
                ctx.error(t.keyPosition(part), "'\(path).\(part)' cannot be combined with '\(total)'",
                          hint: "limit the total, or reads and writes separately")
            }
        }
        let anyBurst = th.bpsMax != nil || th.bpsReadMax != nil || th.bpsWriteMax != nil || th.iopsMax != nil
            || th.iopsReadMax != nil || th.iopsWriteMax != nil
        guard anyBurst || t.has("burstLength") else { return th }  // the common case: nothing more to check
        let bursts: [(String, String, UInt64?, UInt64?)] = [
            ("bpsMax", "bps", th.bpsMax, th.bps), ("bpsReadMax", "bpsRead", th.bpsReadMax, th.bpsRead),
            ("bpsWriteMax", "bpsWrite", th.bpsWriteMax, th.bpsWrite), ("iopsMax", "iops", th.iopsMax, th.iops),
            ("iopsReadMax", "iopsRead", th.iopsReadMax, th.iopsRead),
            ("iopsWriteMax", "iopsWrite", th.iopsWriteMax, th.iopsWrite),
        ]
        for (maxKey, baseKey, maxValue, baseValue) in bursts {
            guard let maxValue else { continue }
            guard let baseValue else {
                if !t.has(baseKey) { ctx.error(t.keyPosition(maxKey), "'\(path).\(maxKey)' needs '\(baseKey)'") }
                continue
            }
            if maxValue < baseValue {
                ctx.error(t.position(maxKey), "'\(path).\(maxKey)' is below '\(baseKey)'", hint: "a burst limit is at least the sustained limit")
            }
        }
        if t.has("burstLength"), !bursts.contains(where: { t.has($0.0) }) {
            ctx.error(t.keyPosition("burstLength"), "'\(path).burstLength' needs a burst limit (bpsMax, iopsMax, …)")
        }
        return th
    }

    // MARK: - networks

    private func decodeNetwork(_ n: ObjectReader, vmName: String) -> VirtualMachineSpec.Network? {
        let name = n.string("name")
        typealias Net = VirtualMachineSpec.Network
        var backend: Net.Backend? = nil
        if let u = n.object("user") {
            var user = Net.User()
            user.net = u.string("net") ?? user.net
            user.host = u.string("host")
            user.dns = u.string("dns")
            user.dhcpStart = u.string("dhcpStart")
            user.restrict = u.bool("restrict")
            user.hostname = u.string("hostname")
            user.domain = u.string("domain")
            user.hostfwd = u.strings("hostfwd")
            backend = .user(user)
        } else if let t = n.object("tap") {
            var tap = Net.Tap()
            tap.ifname = t.string("ifname")
            tap.bridge = t.string("bridge")
            tap.script = t.string("script")
            tap.downscript = t.string("downscript")
            tap.vhost = t.bool("vhost")
            tap.queues = t.int("queues") ?? 1
            backend = .tap(tap)
        } else if let b = n.object("bridge") {
            if let bridge = b.string("name") { backend = .bridge(name: bridge, helper: b.string("helper")) }
        } else if let s = n.object("socket") {
            if let a = s.string("listen") { backend = .socket(.listen(a)) }
            else if let a = s.string("connect") { backend = .socket(.connect(a)) }
            else if let a = s.string("mcast") { backend = .socket(.mcast(a)) }
        } else if let s = n.object("stream") {
            let server = s.bool("server")
            if let u = s.string("unix") { backend = .stream(.init(address: .unix(u), server: server)) }
            else if let i = s.string("inet") { backend = .stream(.init(address: .inet(i), server: server)) }
        } else if let v = n.object("vde") {
            if let sock = v.string("sock") { backend = .vde(sock: sock, port: v.int("port"), group: v.string("group")) }
        }
        let model = n.string("model") ?? "virtio-net-pci"
        let explicitMAC = n.string("mac")?.lowercased()
        let link: Net.Link = n.enumeration("link") ?? .up
        let bootIndex = n.int("bootIndex")
        guard let name, let backend else { return nil }
        var nic = Net(name: name, backend: backend, mac: explicitMAC ?? MACAddress.derive(vm: vmName, nic: name))
        nic.model = model
        nic.link = link
        nic.bootIndex = bootIndex
        nic.pciSlot = n.string("pciAddress").flatMap { Int($0.dropFirst(2), radix: 16) }
        return nic
    }

    // MARK: - cloud-init, readiness

    /// The name of the seed's CD-ROM, which no disk or CD-ROM of a VM with `cloudInit` may use.
    static var seedDriveName: String { VirtualMachineSpec.CloudInit.driveName }

    private func decodeCloudInit(_ c: ObjectReader, spec: VirtualMachineSpec) -> VirtualMachineSpec.CloudInit {
        var out = VirtualMachineSpec.CloudInit()
        out.userData = cloudInitSource(c, "userData")
        out.networkConfig = cloudInitSource(c, "networkConfig")
        out.sshAuthorizedKeys = c.strings("sshAuthorizedKeys")
        let keyNodes = c.array("sshAuthorizedKeys").items
        for (i, key) in out.sshAuthorizedKeys.enumerated() where key.split(separator: " ").count < 2 {
            ctx.error(i < keyNodes.count ? keyNodes[i] : c.position("sshAuthorizedKeys"),
                      "'\(c.path).sshAuthorizedKeys[\(i)]' is not a public key line",
                      hint: "write the content of a .pub file: TYPE BASE64 [COMMENT]")
        }
        out.metaData = c.map("metaData")
        for key in out.metaData.keys.sorted() {
            let plain = key.utf8.allSatisfy { StringFormat.isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
            if !plain || key == "instance-id" || key == "local-hostname" {
                ctx.error(c.position("metaData"), "'\(key)' cannot be a key of '\(c.path).metaData'",
                          hint: key == "instance-id" ? "set '\(c.path).instanceID' instead"
                              : key == "local-hostname" ? "local-hostname is the VM name" : "use letters, digits, '-' and '_'")
            }
        }
        out.instanceID = c.string("instanceID")
        for d in spec.disks where d.name == Self.seedDriveName {
            ctx.error(c.node, "a VM with '\(c.path)' cannot have a disk named '\(Self.seedDriveName)'",
                      hint: "the cloud-init seed's CD-ROM is named \(Self.seedDriveName): rename the disk")
        }
        for d in spec.cdroms where d.name == Self.seedDriveName {
            ctx.error(c.node, "a VM with '\(c.path)' cannot have a CD-ROM named '\(Self.seedDriveName)'",
                      hint: "the cloud-init seed's CD-ROM is named \(Self.seedDriveName): rename the CD-ROM")
        }
        return out
    }

    private func cloudInitSource(_ r: ObjectReader, _ name: String) -> VirtualMachineSpec.CloudInit.Source? {
        guard let s = r.object(name) else { return nil }
        if let text = s.string("inline") { return .inline(text) }
        return secret(r, name).map { .secret($0) }
    }

    private func decodeReadiness(_ p: ObjectReader, spec: VirtualMachineSpec) -> VirtualMachineSpec.Readiness? {
        if p.has("guestAgent") {
            guard p.bool("guestAgent") else {
                ctx.error(p.position("guestAgent"), "'\(p.path).guestAgent: false' names no probe",
                          hint: "write 'guestAgent: true', or use tcpPort or serialMatch")
                return nil
            }
            if !spec.guestAgent {
                ctx.error(p.keyPosition("guestAgent"), "'\(p.path).guestAgent' needs 'spec.guestAgent: true'",
                          hint: "add 'guestAgent: true' to spec (and qemu-guest-agent to the guest)")
            }
            return .guestAgent
        }
        if let port = p.int("tcpPort") {
            var guestPorts: [Int] = []
            for n in spec.networks {
                guard case .user(let user) = n.backend else { continue }
                for rule in user.hostfwd where !rule.hasPrefix("udp:") {
                    if let colon = rule.lastIndex(of: ":"), let gp = Int(rule[rule.index(after: colon)...]) { guestPorts.append(gp) }
                }
            }
            if !guestPorts.contains(port) {
                ctx.error(p.position("tcpPort"), "'\(p.path).tcpPort: \(port)' is not the guest port of a tcp hostfwd",
                          hint: "add 'hostfwd: [tcp:127.0.0.1:HOSTPORT-:\(port)]' to a user network"
                              + (guestPorts.isEmpty ? "" : " (forwarded guest ports: \(guestPorts.map(String.init).joined(separator: ", ")))"))
            }
            return .tcpPort(port)
        }
        if let pattern = p.string("serialMatch") {
            do { _ = try Regex(pattern) } catch {
                ctx.error(p.position("serialMatch"), "'\(p.path).serialMatch' is not a valid regular expression: \(error)",
                          hint: "Swift Regex syntax, like 'login:' or 'Cloud-init v\\. .* finished'")
                return nil
            }
            if !spec.serial.log {
                ctx.error(p.keyPosition("serialMatch"), "'\(p.path).serialMatch' needs 'spec.serial.log: true'",
                          hint: "the probe reads the serial log")
            }
            return .serialMatch(pattern)
        }
        return nil
    }

    // MARK: - usb, secrets

    private func decodeUSB(_ u: ObjectReader) -> VirtualMachineSpec.USB {
        var usb = VirtualMachineSpec.USB()
        usb.controller = u.enumeration("controller") ?? .xhci
        var names = NameSet()
        let (field, items) = u.array("devices")
        for (i, item) in items.enumerated() {
            guard let d = ObjectReader(item, field, ctx, parent: u, key: "devices", index: i) else { continue }
            var path: String { d.path }
            guard let name = d.string("name"), let type: VirtualMachineSpec.USB.Device.Kind = d.enumeration("type") else {
                continue
            }
            unique(name, d.position("name"), in: &names, what: "USB device")
            let device = VirtualMachineSpec.USB.Device(
                name: name, type: type, vendor: d.string("vendor"), product: d.string("product"),
                bus: d.int("bus"), address: d.int("address"))
            if type == .host {
                let byID = device.vendor != nil && device.product != nil
                let byPort = device.bus != nil && device.address != nil
                if byID == byPort {
                    ctx.error(d.node, "'\(path)' (type host) needs either vendor and product, or bus and address")
                }
            } else {
                for key in ["vendor", "product", "bus", "address"] where d.has(key) {
                    ctx.error(d.keyPosition(key), "'\(path).\(key)' is only for 'type: host'")
                }
            }
            usb.devices.append(device)
        }
        return usb
    }

    private func secret(_ r: ObjectReader, _ name: String) -> SecretReference? {
        guard let s = r.object(name) else { return nil }
        if let f = s.string("file") {
            ctx.checkHostFile(f, s.position("file"), "secret file")
            return .file(f)
        }
        if let e = s.string("env") { return .env(e) }
        return nil
    }
}

// MARK: - MACAddress

/// Deterministic MAC addresses for NICs that do not name one.
package enum MACAddress {
    /// `52:54:xx:xx:xx:xx`: QEMU's familiar locally administered unicast prefix, then
    /// 32 bits of a 64-bit FNV-1a hash of `vm/nic`. Stable across runs, hosts and versions;
    /// 32 bits (not the 24 of `52:54:00:…`) keep collisions unlikely in fleets of
    /// thousands of NICs, and the loader reports any that happen.
    package static func derive(vm: String, nic: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for byte in vm.utf8 { mix(byte) }
        mix(UInt8(ascii: "/"))
        for byte in nic.utf8 { mix(byte) }
        // "52:54:" then four lower-case hex bytes, high to low: 17 ASCII bytes, built in place.
        return String(unsafeUninitializedCapacity: 17) { out in
            let digits: StaticString = "0123456789abcdef"
            let hex = digits.utf8Start
            for (i, b) in "52:54:".utf8.enumerated() { out[i] = b }
            for k in 0..<4 {
                let v = UInt8(truncatingIfNeeded: hash >> UInt64(24 - 8 * k))
                out[6 + 3 * k] = hex[Int(v >> 4)]
                out[7 + 3 * k] = hex[Int(v & 15)]
                if k < 3 { out[8 + 3 * k] = UInt8(ascii: ":") }
            }
            return 17
        }
    }
}

// MARK: - NameSet

/// Names seen so far in one VM: a few entries, so a list with hashes beats a dictionary.
struct NameSet {
    private var entries: [(hash: UInt64, name: String, node: YAMLNode)] = []

    /// The node where `name` was first seen.
    func first(_ name: String) -> YAMLNode? {
        let h = Field.hash(name)
        return entries.first { $0.hash == h && $0.name == name }?.node
    }

    mutating func insert(_ name: String, _ node: YAMLNode) {
        entries.append((Field.hash(name), name, node))
    }
}
