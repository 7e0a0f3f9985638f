import Manifest

// MARK: - Leaves

/// One scalar field of a flattened spec, rendered as the planner reports it.
struct Leaf: Sendable {
    /// `spec.disks[root].throttle.bps`.
    var path: String
    /// The rendered value; nil when absent. `(sensitive)` for a set secret.
    var value: String?
    /// The number behind the value, for bound checks (`cpu.count` up to `cpu.maxCount`).
    var number: UInt64?
    /// For a secret reference: what is compared instead of ``value``.
    var secret: SecretValue?
    /// The path of the optional group this leaf belongs to (`spec.display.vnc`): when the group
    /// itself is added or removed, the group's leaf says so and its children are not listed.
    var group: String?
    /// Whether this leaf is an optional group's presence (`spec.display.vnc`).
    var isGroup = false

    /// Whether `desired` asks for something other than `actual` (either may be absent).
    static func differ(desired: Leaf?, actual: Leaf?) -> Bool {
        // A group's summary is for display; only its presence counts (children are compared).
        if desired?.isGroup == true || actual?.isGroup == true { return (desired?.value == nil) != (actual?.value == nil) }
        if let ds = desired?.secret, let acs = actual?.secret {
            if ds.reference != acs.reference { return true }
            // An unknown desired marker means "not compared"; an unknown actual one means
            // "we do not know what is set", which is worth setting again.
            if let dm = ds.marker { return dm != acs.marker }
            return false
        }
        return desired?.value != actual?.value
    }
}

/// A secret reference and, when known, the marker of the value behind it.
struct SecretValue: Sendable, Equatable {
    /// `file:/path` or `env:NAME`: not secret, but never printed either.
    var reference: String
    /// The marker of the value; nil when unknown.
    var marker: SecretMarker?
}

/// One element of a named collection (a disk, a CD-ROM, a NIC, a USB device).
struct Element: Sendable {
    /// The element's `name`.
    var name: String
    /// A one-line description for adds and removes: `file "/images/a.qcow2" (qcow2), virtio`.
    var summary: String
    /// The element's fields, paths prefixed with `spec.disks[NAME]`.
    var leaves: [Leaf]
}

/// A flattened spec: scalar leaves and named collections, in field-table order.
struct FlatSpec: Sendable {
    /// A position in the spec.
    enum Item: Sendable {
        /// A scalar field.
        case leaf(Leaf)
        /// A named collection, by its path (`spec.disks`).
        case collection(path: String, elements: [Element])
    }

    /// `metadata.labels[KEY]` leaves, sorted by key.
    var labels: [Leaf]
    /// Everything under `spec` except `runState`, which the planner compares with QMP's status.
    var items: [Item]

    /// Flattens a spec; `secrets` are markers by field path, as in ``LaunchRecord/secrets``.
    init(labels: [String: String], spec s: VirtualMachineSpec, secrets: [String: SecretMarker]) {
        self.labels = labels.keys.sorted().map { Leaf(path: "metadata.labels[\($0)]", value: Render.quoted(labels[$0])) }
        var w = LeafWriter(secrets: secrets)
        w.add("spec.restartPolicy", s.effectiveRestartPolicy.rawValue)
        w.add("spec.arch", s.arch.rawValue)
        w.add("spec.emulator", Render.quoted(s.emulator))
        w.add("spec.machine.type", Render.quoted(s.machine.type))
        w.add("spec.machine.accel", s.machine.accel.rawValue)
        w.add("spec.machine.hotplugPorts", int: s.machine.hotplugPorts)
        w.add("spec.machine.dumpGuestCore", bool: s.machine.dumpGuestCore)
        w.add("spec.cpu.model", Render.quoted(s.cpu.model))
        w.add("spec.cpu.count", int: s.cpu.count)
        w.add("spec.cpu.maxCount", int: s.cpu.maxCount)
        w.add("spec.cpu.sockets", int: s.cpu.sockets)
        w.add("spec.cpu.cores", int: s.cpu.cores)
        w.add("spec.cpu.threads", int: s.cpu.threads)
        w.add("spec.cpu.features", Render.list(s.cpu.features))
        w.add("spec.memory.size", size: s.memory.size)
        w.add("spec.memory.max", size: s.memory.max)
        w.add("spec.memory.slots", int: s.memory.slots)
        w.add("spec.memory.backend", s.memory.backend.rawValue)
        w.add("spec.memory.path", Render.quoted(s.memory.path))
        w.add("spec.memory.share", bool: s.memory.share)
        w.add("spec.memory.prealloc", bool: s.memory.prealloc)
        w.add("spec.memory.lock", bool: s.memory.lock)
        w.add("spec.firmware.type", s.firmware.type.rawValue)
        w.add("spec.firmware.code", Render.quoted(s.firmware.code))
        w.add("spec.firmware.vars", Render.quoted(s.firmware.vars))
        w.add("spec.firmware.secureBoot", bool: s.firmware.secureBoot)
        w.add("spec.boot.kernel", Render.quoted(s.boot.kernel))
        w.add("spec.boot.initrd", Render.quoted(s.boot.initrd))
        w.add("spec.boot.cmdline", Render.quoted(s.boot.cmdline))
        w.add("spec.boot.order", Render.quoted(s.boot.order))
        w.add("spec.boot.menu", bool: s.boot.menu)
        w.add("spec.boot.strict", bool: s.boot.strict)
        w.collection("spec.disks", s.disks.map { d in
            Element(name: d.name, summary: Render.summary(d), leaves: LeafWriter.leaves(secrets: secrets) {
                $0.disk(d, "spec.disks[\(d.name)]")
            })
        })
        w.collection("spec.cdroms", s.cdroms.map { c in
            Element(name: c.name, summary: Render.summary(c), leaves: LeafWriter.leaves(secrets: secrets) {
                let p = "spec.cdroms[\(c.name)]"
                $0.add(p + ".path", Render.quoted(c.path))
                $0.add(p + ".interface", c.interface.rawValue)
                $0.add(p + ".bootIndex", int: c.bootIndex)
            })
        })
        w.collection("spec.networks", s.networks.map { n in
            Element(name: n.name, summary: Render.summary(n), leaves: LeafWriter.leaves(secrets: secrets) {
                $0.network(n, "spec.networks[\(n.name)]")
            })
        })
        let vnc = s.display.vnc
        w.group("spec.display.vnc", vnc.map { "{listen: \(Render.quoted($0.listen) ?? "")}" }) { w in
            w.add("spec.display.vnc.listen", Render.quoted(vnc?.listen))
            w.secret("spec.display.vnc.passwordFrom", vnc?.passwordFrom)
        }
        let spice = s.display.spice
        w.group("spec.display.spice", spice.map { "{listen: \(Render.quoted($0.listen) ?? "")}" }) { w in
            w.add("spec.display.spice.listen", Render.quoted(spice?.listen))
            w.secret("spec.display.spice.passwordFrom", spice?.passwordFrom)
            w.add("spec.display.spice.disableTicketing", bool: spice?.disableTicketing)
            w.add("spec.display.spice.compression", spice?.compression?.rawValue)
        }
        w.add("spec.display.video", s.display.video.rawValue)
        w.add("spec.serial.log", bool: s.serial.log)
        w.add("spec.guestAgent", bool: s.guestAgent)
        let cloudInit = s.cloudInit
        w.group("spec.cloudInit", cloudInit.map { "{keys: \($0.sshAuthorizedKeys.count)}" }) { w in
            w.cloudInitSource("spec.cloudInit.userData", cloudInit?.userData)
            w.add("spec.cloudInit.sshAuthorizedKeys", cloudInit.flatMap { Render.list($0.sshAuthorizedKeys) })
            w.cloudInitSource("spec.cloudInit.networkConfig", cloudInit?.networkConfig)
            w.add("spec.cloudInit.metaData", cloudInit.flatMap { c in
                Render.list(c.metaData.keys.sorted().map { "\($0)=\(c.metaData[$0]!)" }) })
            w.add("spec.cloudInit.instanceID", Render.quoted(cloudInit?.instanceID))
        }
        let readiness = s.readiness
        w.group("spec.readiness", readiness.map(Render.readiness)) { w in
            w.add("spec.readiness.guestAgent", bool: readiness == .guestAgent ? true : nil)
            if case .tcpPort(let p)? = readiness { w.add("spec.readiness.tcpPort", int: p) } else { w.add("spec.readiness.tcpPort", int: nil) }
            if case .serialMatch(let m)? = readiness { w.add("spec.readiness.serialMatch", Render.quoted(m)) } else { w.add("spec.readiness.serialMatch", nil) }
        }
        w.add("spec.spiceAgent", bool: s.spiceAgent)
        w.add("spec.usbTablet", bool: s.usbTablet)
        w.add("spec.usb.controller", s.usb.controller.rawValue)
        w.collection("spec.usb.devices", s.usb.devices.map { d in
            Element(name: d.name, summary: d.type.rawValue, leaves: LeafWriter.leaves(secrets: secrets) {
                let p = "spec.usb.devices[\(d.name)]"
                $0.add(p + ".type", d.type.rawValue)
                $0.add(p + ".vendor", Render.quoted(d.vendor))
                $0.add(p + ".product", Render.quoted(d.product))
                $0.add(p + ".bus", int: d.bus)
                $0.add(p + ".address", int: d.address)
            })
        })
        w.add("spec.balloon", bool: s.balloon)
        w.add("spec.rng", bool: s.rng)
        w.add("spec.rtc.base", s.rtc.base.rawValue)
        w.add("spec.rtc.clock", s.rtc.clock.rawValue)
        w.add("spec.rtc.driftFix", s.rtc.driftFix.rawValue)
        let audio = s.audio
        w.group("spec.audio", audio.map { "{backend: \($0.backend.rawValue), model: \($0.model.rawValue)}" }) { w in
            w.add("spec.audio.backend", audio?.backend.rawValue)
            w.add("spec.audio.model", audio?.model.rawValue)
        }
        self.items = w.items
    }

    /// Every leaf by path, collection elements' leaves included.
    var leavesByPath: [String: Leaf] {
        var out: [String: Leaf] = [:]
        for l in labels { out[l.path] = l }
        for item in items {
            switch item {
            case .leaf(let l): out[l.path] = l
            case .collection(_, let elements):
                for e in elements { for l in e.leaves { out[l.path] = l } }
            }
        }
        return out
    }

    /// The elements of the collection at `path`.
    func elements(_ path: String) -> [Element] {
        for case .collection(let p, let elements) in items where p == path { return elements }
        return []
    }
}

// MARK: - LeafWriter

/// Appends leaves and collections in order.
struct LeafWriter {
    let secrets: [String: SecretMarker]
    var items: [FlatSpec.Item] = []
    private var currentGroup: String?

    init(secrets: [String: SecretMarker]) { self.secrets = secrets }

    /// The leaves `body` writes.
    static func leaves(secrets: [String: SecretMarker], _ body: (inout LeafWriter) -> Void) -> [Leaf] {
        var w = LeafWriter(secrets: secrets)
        body(&w)
        return w.items.compactMap { if case .leaf(let l) = $0 { l } else { nil } }
    }

    mutating func add(_ path: String, _ value: String?, number: UInt64? = nil) {
        items.append(.leaf(Leaf(path: path, value: value, number: number, group: currentGroup)))
    }

    mutating func add(_ path: String, int: Int?) {
        add(path, int.map(String.init), number: int.flatMap { $0 >= 0 ? UInt64($0) : nil })
    }

    mutating func add(_ path: String, size: UInt64?) {
        add(path, size.map(ByteSize.format), number: size)
    }

    mutating func add(_ path: String, count: UInt64?) {
        add(path, count.map { String($0) }, number: count)
    }

    mutating func add(_ path: String, bool: Bool?) {
        add(path, bool.map { $0 ? "true" : "false" })
    }

    mutating func secret(_ path: String, _ ref: SecretReference?) {
        let secret = ref.map { r -> SecretValue in
            let text: String = switch r {
            case .file(let f): "file:" + f
            case .env(let e): "env:" + e
            }
            return SecretValue(reference: text, marker: secrets[path])
        }
        items.append(.leaf(Leaf(path: path, value: ref == nil ? nil : Render.sensitive, secret: secret, group: currentGroup)))
    }

    /// A cloud-init text: a secret reference (rendered `(sensitive)`, compared by marker), or inline
    /// text compared by its length and SHA-256 (a plan shows neither the text nor a secret).
    mutating func cloudInitSource(_ path: String, _ source: VirtualMachineSpec.CloudInit.Source?) {
        switch source {
        case .secret(let r)?: secret(path, r)
        case .inline(let text)?:
            var h = SHA256()
            h.update(Array(text.utf8))
            let digest = h.finalize().prefix(8).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            add(path, "inline, \(text.utf8.count) bytes, sha256 \(digest.joined())…")
        case nil: add(path, nil)
        }
    }

    /// An optional object: a leaf for its presence (`summary`, nil when absent), then its children.
    mutating func group(_ path: String, _ summary: String?, _ body: (inout LeafWriter) -> Void) {
        items.append(.leaf(Leaf(path: path, value: summary, group: currentGroup, isGroup: true)))
        let saved = currentGroup
        currentGroup = path
        body(&self)
        currentGroup = saved
    }

    mutating func collection(_ path: String, _ elements: [Element]) {
        items.append(.collection(path: path, elements: elements))
    }

    mutating func disk(_ d: VirtualMachineSpec.Disk, _ p: String) {
        var file: (String, VirtualMachineSpec.Disk.Format)?
        var nbd: VirtualMachineSpec.Disk.NBD?
        var rbd: VirtualMachineSpec.Disk.RBD?
        var iscsi: VirtualMachineSpec.Disk.ISCSI?
        switch d.backend {
        case .file(let path, let format): file = (path, format)
        case .nbd(let n): nbd = n
        case .rbd(let r): rbd = r
        case .iscsi(let i): iscsi = i
        }
        add(p + ".file.path", Render.quoted(file?.0))
        add(p + ".file.format", file?.1.rawValue)
        add(p + ".file.backing.path", Render.quoted(d.backing?.path))
        add(p + ".file.backing.format", d.backing?.format.rawValue)
        var unix: String?, host: String?, port: Int?
        switch nbd?.server {
        case .unix(let u): unix = u
        case .tcp(let h, let pt): host = h; port = pt
        case nil: break
        }
        add(p + ".nbd.unix", Render.quoted(unix))
        add(p + ".nbd.host", Render.quoted(host))
        add(p + ".nbd.port", int: port)
        add(p + ".nbd.export", Render.quoted(nbd?.export))
        add(p + ".nbd.tls", bool: nbd?.tls)
        add(p + ".rbd.pool", Render.quoted(rbd?.pool))
        add(p + ".rbd.image", Render.quoted(rbd?.image))
        add(p + ".rbd.snapshot", Render.quoted(rbd?.snapshot))
        add(p + ".rbd.conf", Render.quoted(rbd?.conf))
        add(p + ".rbd.user", Render.quoted(rbd?.user))
        secret(p + ".rbd.keyFrom", rbd?.keyFrom)
        add(p + ".iscsi.portal", Render.quoted(iscsi?.portal))
        add(p + ".iscsi.target", Render.quoted(iscsi?.target))
        add(p + ".iscsi.lun", int: iscsi?.lun)
        add(p + ".iscsi.user", Render.quoted(iscsi?.user))
        secret(p + ".iscsi.passwordFrom", iscsi?.passwordFrom)
        add(p + ".iscsi.initiator", Render.quoted(iscsi?.initiator))
        add(p + ".interface", d.interface.rawValue)
        add(p + ".serial", Render.quoted(d.serial))
        add(p + ".readOnly", bool: d.readOnly)
        add(p + ".cache", d.cache.rawValue)
        add(p + ".discard", bool: d.discard)
        add(p + ".bootIndex", int: d.bootIndex)
        add(p + ".pciAddress", d.pciSlot.map(LeafWriter.pciAddress))
        add(p + ".create.size", size: d.createSize)
        add(p + ".create.from.path", Render.quoted(d.createFrom?.path))
        add(p + ".create.from.format", d.createFrom?.format.rawValue)
        add(p + ".create.mode", d.createFrom == nil ? nil : (d.createMode ?? .overlay).rawValue)
        // No throttle and a throttle without limits mean the same; QMP reports the latter.
        let t = d.throttle ?? .init()
        let q = p + ".throttle."
        add(q + "bps", size: t.bps)
        add(q + "bpsRead", size: t.bpsRead)
        add(q + "bpsWrite", size: t.bpsWrite)
        add(q + "iops", count: t.iops)
        add(q + "iopsRead", count: t.iopsRead)
        add(q + "iopsWrite", count: t.iopsWrite)
        add(q + "bpsMax", size: t.bpsMax)
        add(q + "bpsReadMax", size: t.bpsReadMax)
        add(q + "bpsWriteMax", size: t.bpsWriteMax)
        add(q + "iopsMax", count: t.iopsMax)
        add(q + "iopsReadMax", count: t.iopsReadMax)
        add(q + "iopsWriteMax", count: t.iopsWriteMax)
        add(q + "burstLength", int: t.burstLength)
        add(q + "iopsSize", size: t.iopsSize)
    }

    mutating func network(_ n: VirtualMachineSpec.Network, _ p: String) {
        var user: VirtualMachineSpec.Network.User?
        var tap: VirtualMachineSpec.Network.Tap?
        var bridge: (String, String?)?
        var socket: VirtualMachineSpec.Network.Socket?
        var stream: VirtualMachineSpec.Network.Stream?
        var vde: (String, Int?, String?)?
        switch n.backend {
        case .user(let u): user = u
        case .tap(let t): tap = t
        case .bridge(let name, let helper): bridge = (name, helper)
        case .socket(let s): socket = s
        case .stream(let s): stream = s
        case .vde(let sock, let port, let group): vde = (sock, port, group)
        }
        add(p + ".user.net", Render.quoted(user?.net))
        add(p + ".user.host", Render.quoted(user?.host))
        add(p + ".user.dns", Render.quoted(user?.dns))
        add(p + ".user.dhcpStart", Render.quoted(user?.dhcpStart))
        add(p + ".user.restrict", bool: user?.restrict)
        add(p + ".user.hostname", Render.quoted(user?.hostname))
        add(p + ".user.domain", Render.quoted(user?.domain))
        add(p + ".user.hostfwd", user.flatMap { Render.list($0.hostfwd) })
        add(p + ".tap.ifname", Render.quoted(tap?.ifname))
        add(p + ".tap.bridge", Render.quoted(tap?.bridge))
        add(p + ".tap.script", Render.quoted(tap?.script))
        add(p + ".tap.downscript", Render.quoted(tap?.downscript))
        add(p + ".tap.vhost", bool: tap?.vhost)
        add(p + ".tap.queues", int: tap?.queues)
        add(p + ".bridge.name", Render.quoted(bridge?.0))
        add(p + ".bridge.helper", Render.quoted(bridge?.1))
        var listen: String?, connect: String?, mcast: String?
        switch socket {
        case .listen(let a): listen = a
        case .connect(let a): connect = a
        case .mcast(let a): mcast = a
        case nil: break
        }
        add(p + ".socket.listen", Render.quoted(listen))
        add(p + ".socket.connect", Render.quoted(connect))
        add(p + ".socket.mcast", Render.quoted(mcast))
        var sUnix: String?, sInet: String?
        switch stream?.address {
        case .unix(let u): sUnix = u
        case .inet(let i): sInet = i
        case nil: break
        }
        add(p + ".stream.unix", Render.quoted(sUnix))
        add(p + ".stream.inet", Render.quoted(sInet))
        add(p + ".stream.server", bool: stream?.server)
        add(p + ".vde.sock", Render.quoted(vde?.0))
        add(p + ".vde.port", int: vde?.1)
        add(p + ".vde.group", Render.quoted(vde?.2))
        add(p + ".model", Render.quoted(n.model))
        add(p + ".mac", n.mac)
        add(p + ".link", n.link.rawValue)
        add(p + ".bootIndex", int: n.bootIndex)
        add(p + ".pciAddress", n.pciSlot.map(LeafWriter.pciAddress))
    }

    /// A slot as the manifest writes it: `0x06`.
    static func pciAddress(_ slot: Int) -> String {
        let hex = String(slot, radix: 16)
        return "0x" + (hex.count < 2 ? "0" + hex : hex)
    }
}

// MARK: - Render

/// How values are written in changes: as in a manifest, strings quoted, secrets redacted.
enum Render {
    /// What a secret is rendered as.
    static let sensitive = "(sensitive)"

    /// A string in double quotes with `"`, `\` and control characters escaped; nil stays nil.
    static func quoted(_ s: String?) -> String? {
        guard let s else { return nil }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    let hex = String(u.value, radix: 16)
                    out += "\\x" + String(repeating: "0", count: max(0, 2 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// `["a", "b"]`; nil for an empty list (the same as absent).
    /// `{guestAgent: true}`, `{tcpPort: 22}` or `{serialMatch: "REGEX"}`.
    static func readiness(_ r: VirtualMachineSpec.Readiness) -> String {
        switch r {
        case .guestAgent: "{guestAgent: true}"
        case .tcpPort(let p): "{tcpPort: \(p)}"
        case .serialMatch(let m): "{serialMatch: \(quoted(m)!)}"
        }
    }

    static func list(_ items: [String]) -> String? {
        items.isEmpty ? nil : "[" + items.map { quoted($0)! }.joined(separator: ", ") + "]"
    }

    /// `file "/images/a.qcow2" (qcow2), virtio`; with a backing file,
    /// `file "/images/a.qcow2" (qcow2) backed by "/base/d.qcow2" (qcow2), virtio`.
    static func summary(_ d: VirtualMachineSpec.Disk) -> String {
        let backend: String = switch d.backend {
        case .file(let path, let format):
            "file \(quoted(path)!) (\(format.rawValue))"
                + (d.declaredBacking.map { " backed by \(quoted($0.path)!) (\($0.format.rawValue))" } ?? "")
        case .nbd(let n):
            switch n.server {
            case .unix(let u): "nbd unix \(quoted(u)!)"
            case .tcp(let h, let p): "nbd \(quoted("\(h):\(p)")!)"
            }
        case .rbd(let r): "rbd \(quoted("\(r.pool)/\(r.image)")!)"
        case .iscsi(let i): "iscsi \(quoted("\(i.portal)/\(i.target)/\(i.lun)")!)"
        }
        return "\(backend), \(d.interface.rawValue)"
    }

    /// `ide, media "/isos/x.iso"` or `ide, empty`.
    static func summary(_ c: VirtualMachineSpec.CDROM) -> String {
        "\(c.interface.rawValue), " + (c.path.map { "media \(quoted($0)!)" } ?? "empty")
    }

    /// `user, virtio-net-pci, mac 52:54:00:12:34:56`.
    static func summary(_ n: VirtualMachineSpec.Network) -> String {
        let kind: String = switch n.backend {
        case .user: "user"
        case .tap: "tap"
        case .bridge(let name, _): "bridge \(quoted(name)!)"
        case .socket: "socket"
        case .stream: "stream"
        case .vde: "vde"
        }
        return "\(kind), \(n.model), mac \(n.mac)"
    }
}
