#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// One problem found in a ``VMConfig``, naming the field it is about.
public struct ConfigProblem: Sendable, Hashable, CustomStringConvertible {
    /// The field path, e.g. `disks[2].nbd.port` or `name`.
    public var path: String
    /// What is wrong, in a sentence fragment (`must be between 1 and 65535, got 0`).
    public var message: String

    /// Creates a problem.
    public init(path: String, message: String) { self.path = path; self.message = message }

    /// `path: message`.
    public var description: String { "\(path): \(message)" }
}

/// The error thrown when a configuration cannot become a QEMU command line: it carries every problem found,
/// not only the first.
public struct VMConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// All problems, in field order.
    public var problems: [ConfigProblem]

    /// Creates an error from problems.
    public init(problems: [ConfigProblem]) { self.problems = problems }

    /// One line per problem, after a summary line.
    public var description: String {
        let head = problems.count == 1 ? "invalid VM configuration:" : "invalid VM configuration (\(problems.count) problems):"
        return ([head] + problems.map { "  \($0)" }).joined(separator: "\n")
    }
}

extension VMConfig {
    /// Checks the whole configuration and returns every problem, each naming its field.
    ///
    /// An empty result means ``commandLine(_:)`` will only fail on resource limits (PCI slots, IDE units) or a
    /// missing accelerator choice. Files are not looked at: a disk image that does not exist yet is not a
    /// problem here.
    public func problems() -> [ConfigProblem] {
        var v = Validator()
        v.check(self)
        return v.problems
    }

    /// Throws when ``problems()`` is not empty.
    ///
    /// - Throws: ``VMConfigError`` listing every problem.
    public func validate() throws(VMConfigError) {
        let p = problems()
        if !p.isEmpty { throw VMConfigError(problems: p) }
    }
}

// MARK: - Rules

/// The character rules for names and ids.
enum Names {
    static let maxDeviceName = 24

    /// A VM name: a DNS label.
    static func vmNameProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > 63 { return "must be at most 63 characters, got \(s.utf8.count)" }
        let ok = s.unicodeScalars.allSatisfy { isLowerAlnum($0) || isUpper($0) || $0 == "-" }
        if !ok { return "must contain only letters, digits and '-' (a DNS label), got \(quoted(s))" }
        if s.hasPrefix("-") || s.hasSuffix("-") { return "must not start or end with '-', got \(quoted(s))" }
        return nil
    }

    /// A device name (disk, network, serial, chardev): becomes part of QEMU ids and node names.
    static func deviceNameProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > maxDeviceName { return "must be at most \(maxDeviceName) characters, got \(s.utf8.count)" }
        guard let f = s.unicodeScalars.first, ("a"..."z").contains(f) else {
            return "must start with a lowercase letter, got \(quoted(s))"
        }
        if !s.unicodeScalars.allSatisfy({ isLowerAlnum($0) || $0 == "-" || $0 == "_" }) {
            return "must contain only lowercase letters, digits, '-' and '_', got \(quoted(s))"
        }
        return nil
    }

    /// A QEMU-side token that is not ours (CPU model, machine type, NIC model, feature).
    static func tokenProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if !s.unicodeScalars.allSatisfy({ isLowerAlnum($0) || isUpper($0) || "._-".unicodeScalars.contains($0) }) {
            return "must contain only letters, digits, '.', '_' and '-', got \(quoted(s))"
        }
        return nil
    }

    static func isLowerAlnum(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
    static func isUpper(_ c: Unicode.Scalar) -> Bool { ("A"..."Z").contains(c) }

    /// A readable, escaped rendering of a hostile value for messages.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if c.value < 0x20 || c.value == 0x7f { out += "\\u{\(String(c.value, radix: 16))}" } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

struct Validator {
    var problems: [ConfigProblem] = []

    mutating func add(_ path: String, _ message: String) { problems.append(.init(path: path, message: message)) }

    mutating func name(_ path: String, _ s: String) {
        if let m = Names.deviceNameProblem(s) { add(path, m) }
    }

    mutating func token(_ path: String, _ s: String) {
        if let m = Names.tokenProblem(s) { add(path, m) }
    }

    /// An absolute path with no NUL (a NUL cannot be passed in argv).
    mutating func absolutePath(_ path: String, _ s: String) {
        if s.isEmpty { add(path, "must not be empty") }
        else if !s.hasPrefix("/") { add(path, "must be an absolute path (QEMU runs in /), got \(Names.quoted(s))") }
        if s.unicodeScalars.contains("\0") { add(path, "must not contain NUL") }
    }

    /// Free text: no NUL, no control characters.
    mutating func text(_ path: String, _ s: String, allowEmpty: Bool = false) {
        if s.isEmpty && !allowEmpty { add(path, "must not be empty") }
        if s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            add(path, "must not contain control characters, got \(Names.quoted(s))")
        }
    }

    mutating func range(_ path: String, _ v: Int, _ r: ClosedRange<Int>) {
        if !r.contains(v) { add(path, "must be between \(r.lowerBound) and \(r.upperBound), got \(v)") }
    }

    mutating func port(_ path: String, _ v: Int) { range(path, v, 1...65535) }

    mutating func host(_ path: String, _ s: String) {
        text(path, s)
        if s.unicodeScalars.contains(where: { " ,/\"'\\".unicodeScalars.contains($0) }) {
            add(path, "is not a host name or address: \(Names.quoted(s))")
        }
    }

    mutating func unique(_ path: String, _ names: [String], what: String) {
        var seen: Set<String> = []
        for (i, n) in names.enumerated() where !seen.insert(n).inserted {
            add("\(path)[\(i)]", "duplicate \(what) \(Names.quoted(n))")
        }
    }

    mutating func check(_ c: VMConfig) {
        if let m = Names.vmNameProblem(c.name) { add("name", m) }
        if let u = c.uuid, !isUUID(u) { add("uuid", "must be a UUID (8-4-4-4-12 hex digits), got \(Names.quoted(u))") }
        if let q = c.qemuPath { text("qemuPath", q) }
        if let d = c.socketDirectory { absolutePath("socketDirectory", d) }

        // Machine
        if let t = c.machine.type { token("machine.type", t) }
        if let h = c.machine.hotplugPorts { range("machine.hotplugPorts", h, 0...24) }

        // CPU
        let cpu = c.cpu
        if let m = cpu.model { token("cpu.model", m) }
        for f in cpu.features.keys.sorted() { token("cpu.features[\(Names.quoted(f))]", f) }
        range("cpu.count", cpu.count, 1...1024)
        if let mx = cpu.maxCount { range("cpu.maxCount", mx, max(1, cpu.count)...1024) }
        for (k, v) in [("sockets", cpu.sockets), ("cores", cpu.cores), ("threads", cpu.threads)] {
            if let v { range("cpu.\(k)", v, 1...1024) }
        }
        if let s = cpu.sockets, let co = cpu.cores, let t = cpu.threads, s * co * t != (cpu.maxCount ?? cpu.count) {
            add("cpu", "sockets × cores × threads = \(s * co * t) must equal maxCount (or count) = \(cpu.maxCount ?? cpu.count)")
        }

        // Memory
        let mem = c.memory
        if mem.sizeMiB <= 0 { add("memory.sizeMiB", "must be greater than 0, got \(mem.sizeMiB)") }
        if let mx = mem.maxSizeMiB, mx < mem.sizeMiB {
            add("memory.maxSizeMiB", "must be at least sizeMiB (\(mem.sizeMiB)), got \(mx)")
        }
        if let s = mem.slots {
            range("memory.slots", s, 1...256)
            if mem.maxSizeMiB == nil { add("memory.slots", "needs maxSizeMiB") }
        }
        if case .file(let p) = mem.backend { absolutePath("memory.backend.file.path", p) }
        if mem.share != nil || mem.prealloc, mem.backend == nil {
            add("memory.backend", "share and prealloc need an explicit backend (ram, file or memfd)")
        }

        // Firmware and boot
        if let fw = c.firmware {
            absolutePath("firmware.code", fw.code)
            if let v = fw.vars { absolutePath("firmware.vars", v) }
            if let t = fw.varsTemplate {
                absolutePath("firmware.varsTemplate", t)
                if fw.vars == nil { add("firmware.varsTemplate", "needs firmware.vars (the store to create from it)") }
            }
            if fw.secureBoot {
                let type = c.machine.type ?? (c.arch ?? .host).defaultMachineType ?? ""
                if !(type == "q35" || type.hasPrefix("pc-q35-")) {
                    add("firmware.secureBoot", "needs a q35 machine (SMM-protected flash), got machine type \(Names.quoted(type))")
                }
                if fw.vars == nil { add("firmware.secureBoot", "needs firmware.vars (the enrolled keys live in the variable store)") }
            }
        }
        if let b = c.boot {
            if let o = b.order {
                if o.isEmpty || !o.unicodeScalars.allSatisfy({ ("a"..."p").contains($0) }) {
                    add("boot.order", "must be drive letters a–p (c disk, d CD-ROM, n network), got \(Names.quoted(o))")
                }
            }
            if let k = b.kernel { absolutePath("boot.kernel", k) }
            if let i = b.initrd {
                absolutePath("boot.initrd", i)
                if b.kernel == nil { add("boot.initrd", "needs boot.kernel") }
            }
            if let a = b.append {
                if a.unicodeScalars.contains("\0") { add("boot.append", "must not contain NUL") }
                if b.kernel == nil { add("boot.append", "needs boot.kernel") }
            }
        }

        // Disks and CD-ROMs
        unique("disks", c.disks.map(\.name), what: "disk name")
        for (i, d) in c.disks.enumerated() { check(disk: d, at: "disks[\(i)]") }
        for (i, cd) in c.cdroms.enumerated() {
            let p = "cdroms[\(i)]"
            name("\(p).name", cd.name)
            if c.disks.contains(where: { $0.name == cd.name }) {
                add("\(p).name", "\(Names.quoted(cd.name)) is already a disk name (disks and CD-ROMs share names)")
            }
            if let path = cd.path { absolutePath("\(p).path", path) }
            if let b = cd.bootIndex { range("\(p).bootIndex", b, 0...1000) }
        }
        unique("cdroms", c.cdroms.map(\.name), what: "CD-ROM name")

        // Networks
        unique("networks", c.networks.map(\.name), what: "network name")
        for (i, n) in c.networks.enumerated() { check(network: n, at: "networks[\(i)]") }

        // Display
        if let vnc = c.display.vnc {
            switch vnc.listen {
            case .none: break
            case .unix(let p): absolutePath("display.vnc.listen.unix.path", p)
            case .tcp(let h, let d):
                host("display.vnc.listen.tcp.host", h)
                range("display.vnc.listen.tcp.display", d, 0...59635)
            }
            if let s = vnc.password { check(secret: s, at: "display.vnc.password") }
        }
        if let sp = c.display.spice {
            switch sp.listen {
            case .unix(let p): absolutePath("display.spice.listen.unix.path", p)
            case .tcp(let h, let p):
                host("display.spice.listen.tcp.host", h)
                port("display.spice.listen.tcp.port", p)
            }
            if let s = sp.password {
                check(secret: s, at: "display.spice.password")
                if sp.disableTicketing { add("display.spice", "password and disableTicketing contradict each other") }
            }
        }

        // Character devices
        unique("serials", c.serials.map(\.name), what: "serial name")
        for (i, s) in c.serials.enumerated() {
            name("serials[\(i)].name", s.name)
            check(char: s.backend, at: "serials[\(i)].backend")
            if let l = s.logFile { absolutePath("serials[\(i)].logFile", l) }
        }
        unique("chardevs", c.chardevs.map(\.id), what: "chardev id")
        for (i, s) in c.chardevs.enumerated() {
            name("chardevs[\(i)].id", s.id)
            check(char: s.backend, at: "chardevs[\(i)].backend")
            if let l = s.logFile { absolutePath("chardevs[\(i)].logFile", l) }
        }
        unique("virtioSerialPorts", c.virtioSerialPorts.map(\.name), what: "port name")
        for (i, p) in c.virtioSerialPorts.enumerated() {
            token("virtioSerialPorts[\(i)].name", p.name)
            if (c.guestAgent && p.name == "org.qemu.guest_agent.0") || (c.spiceAgent && p.name == "com.redhat.spice.0") {
                add("virtioSerialPorts[\(i)].name", "\(Names.quoted(p.name)) is used by the built-in agent channel")
            }
            if !c.chardevs.contains(where: { $0.id == p.chardev }) {
                add("virtioSerialPorts[\(i)].chardev", "no chardev with id \(Names.quoted(p.chardev)) in chardevs")
            }
        }

        // USB, agents, RTC
        if let usb = c.usb {
            for (i, d) in usb.devices.enumerated() {
                switch d {
                case .host(let v, let p):
                    range("usb.devices[\(i)].host.vendorID", v, 0...0xffff)
                    range("usb.devices[\(i)].host.productID", p, 0...0xffff)
                case .hostAddress(let b, let a):
                    range("usb.devices[\(i)].hostAddress.bus", b, 0...255)
                    range("usb.devices[\(i)].hostAddress.address", a, 1...127)
                default: break
                }
            }
        }
        if c.spiceAgent && c.display.spice == nil { add("spiceAgent", "needs display.spice") }
        if let r = c.rng { absolutePath("rng.source", r.source) }
        if let a = c.audio {
            if a.backend == .spice && c.display.spice == nil { add("audio.backend", "spice needs display.spice") }
            if let w = a.wavPath {
                absolutePath("audio.wavPath", w)
                if a.backend != .wav { add("audio.wavPath", "is only used by backend wav, got \(a.backend.rawValue)") }
            }
        }
        if let rtc = c.rtc, case .datetime(let d) = rtc.base {
            let ok = d.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || $0 == "-" || $0 == ":" || $0 == "T" }
            if !ok || !(d.count == 10 || d.count == 19) {
                add("rtc.base.datetime", "must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, got \(Names.quoted(d))")
            }
        }
        for (i, a) in c.extraArgs.enumerated() where a.unicodeScalars.contains("\0") {
            add("extraArgs[\(i)]", "must not contain NUL")
        }
    }

    mutating func check(secret: Secret, at p: String) {
        switch secret {
        case .file(let f): absolutePath("\(p).file", f)
        case .environment(let e): token("\(p).env", e)
        case .value: break
        }
    }

    mutating func check(disk d: Disk, at p: String) {
        name("\(p).name", d.name)
        switch d.backend {
        case .file(let f):
            absolutePath("\(p).file.path", f.path)
            if let b = f.backing {
                absolutePath("\(p).file.backing.path", b.path)
                if f.format != .qcow2 { add("\(p).file.backing", "a declared backing file needs a qcow2 image, not \(f.format.rawValue)") }
                if b.path == f.path { add("\(p).file.backing.path", "the image cannot be its own backing file") }
            }
        case .nbd(let n):
            switch n.server {
            case .unix(let path): absolutePath("\(p).nbd.server.unix.path", path)
            case .tcp(let h, let port):
                host("\(p).nbd.host", h)
                self.port("\(p).nbd.port", port)
            }
            if let e = n.export { text("\(p).nbd.export", e, allowEmpty: true) }
            if let t = n.tlsCredsID { token("\(p).nbd.tlsCredsID", t) }
        case .rbd(let r):
            text("\(p).rbd.pool", r.pool); text("\(p).rbd.image", r.image)
            if let s = r.snapshot { text("\(p).rbd.snapshot", s) }
            if let cf = r.conf { absolutePath("\(p).rbd.conf", cf) }
            if let u = r.user { text("\(p).rbd.user", u) }
            if let k = r.key { check(secret: k, at: "\(p).rbd.key") }
            for (i, m) in r.monitors.enumerated() {
                host("\(p).rbd.monitors[\(i)].host", m.host)
                port("\(p).rbd.monitors[\(i)].port", m.port)
            }
            if r.snapshot != nil && !d.readOnly { add("\(p).readOnly", "must be true to open an RBD snapshot") }
        case .iscsi(let s):
            host("\(p).iscsi.portal", s.portal)
            text("\(p).iscsi.target", s.target)
            range("\(p).iscsi.lun", s.lun, 0...16383)
            if let u = s.user { text("\(p).iscsi.user", u) }
            if let pw = s.password {
                check(secret: pw, at: "\(p).iscsi.password")
                if s.user == nil { add("\(p).iscsi.password", "needs iscsi.user") }
            }
            if let i = s.initiator { text("\(p).iscsi.initiator", i) }
        }
        if let s = d.serial {
            text("\(p).serial", s)
            if s.utf8.count > 20 { add("\(p).serial", "must be at most 20 bytes, got \(s.utf8.count)") }
        }
        if d.interface == .nvme && d.serial == nil && d.name.utf8.count > 20 {
            add("\(p).serial", "is required for nvme (the default, the name, is longer than 20 bytes)")
        }
        if d.interface == .ide && d.readOnly { add("\(p).readOnly", "ide-hd cannot be read-only; use virtio, scsi or a CD-ROM") }
        if d.interface == .nvme && d.readOnly { add("\(p).readOnly", "nvme cannot be read-only in QEMU 7.2; use virtio or scsi") }
        if let b = d.bootIndex { range("\(p).bootIndex", b, 0...1000) }
        if let s = d.pciSlot {
            range("\(p).pciSlot", s, 1...31)
            if d.interface == .ide || d.interface == .scsi {
                add("\(p).pciSlot", "only virtio and nvme disks are PCI devices")
            }
        }
        if let t = d.throttle { check(throttle: t, at: "\(p).throttle") }
    }

    mutating func check(throttle t: Throttle, at p: String) {
        // (base, max, length) triples per kind, named as the fields.
        let triples: [(String, Int?, Int?, Int?)] = [
            ("bpsTotal", t.bpsTotal, t.bpsTotalMax, t.bpsTotalMaxLength),
            ("bpsRead", t.bpsRead, t.bpsReadMax, t.bpsReadMaxLength),
            ("bpsWrite", t.bpsWrite, t.bpsWriteMax, t.bpsWriteMaxLength),
            ("iopsTotal", t.iopsTotal, t.iopsTotalMax, t.iopsTotalMaxLength),
            ("iopsRead", t.iopsRead, t.iopsReadMax, t.iopsReadMaxLength),
            ("iopsWrite", t.iopsWrite, t.iopsWriteMax, t.iopsWriteMaxLength),
        ]
        for (n, base, mx, len) in triples {
            if let base, base < 0 { add("\(p).\(n)", "must not be negative, got \(base)") }
            if let mx {
                if mx < 0 { add("\(p).\(n)Max", "must not be negative, got \(mx)") }
                if let base, mx > 0, mx < base { add("\(p).\(n)Max", "must be at least \(n) (\(base)), got \(mx)") }
                if base == nil || base == 0 { add("\(p).\(n)Max", "needs \(n) (a burst above no limit)") }
            }
            if let len {
                if len < 1 { add("\(p).\(n)MaxLength", "must be at least 1, got \(len)") }
                if mx == nil { add("\(p).\(n)MaxLength", "needs \(n)Max (a burst length without a burst rate)") }
            }
        }
        if t.bpsTotal != nil && (t.bpsRead != nil || t.bpsWrite != nil) {
            add("\(p).bpsTotal", "cannot be combined with bpsRead/bpsWrite")
        }
        if t.iopsTotal != nil && (t.iopsRead != nil || t.iopsWrite != nil) {
            add("\(p).iopsTotal", "cannot be combined with iopsRead/iopsWrite")
        }
        if let s = t.iopsSize, s < 0 { add("\(p).iopsSize", "must not be negative, got \(s)") }
    }

    mutating func check(network n: Network, at p: String) {
        name("\(p).name", n.name)
        token("\(p).model", n.model)
        if let m = n.mac, !m.isValid { add("\(p).mac", "must be a unicast MAC address xx:xx:xx:xx:xx:xx, got \(Names.quoted(m.rawValue))") }
        if let b = n.bootIndex { range("\(p).bootIndex", b, 0...1000) }
        if let s = n.pciSlot { range("\(p).pciSlot", s, 1...31) }
        switch n.backend {
        case .user(let u):
            for (k, v) in [("net", u.net), ("host", u.host), ("dns", u.dns), ("dhcpStart", u.dhcpStart)] {
                if let v { host("\(p).user.\(k)", v.replacing("/", with: "")) }
            }
            for (i, f) in u.hostForwards.enumerated() {
                let fp = "\(p).user.hostForwards[\(i)]"
                if let a = f.hostAddress { host("\(fp).hostAddress", a) }
                if let a = f.guestAddress { host("\(fp).guestAddress", a) }
                for (k, a) in [("hostAddress", f.hostAddress), ("guestAddress", f.guestAddress)] {
                    if let a, a.contains(":") || a.contains("-") { add("\(fp).\(k)", "must be an IPv4 address, got \(Names.quoted(a))") }
                }
                port("\(fp).hostPort", f.hostPort)
                port("\(fp).guestPort", f.guestPort)
            }
        case .tap(let t):
            if let i = t.ifname { ifname("\(p).tap.ifname", i) }
            if let s = t.script { absolutePath("\(p).tap.script", s) }
            if let s = t.downscript { absolutePath("\(p).tap.downscript", s) }
            if let q = t.queues { range("\(p).tap.queues", q, 1...1024) }
        case .bridge(let b):
            ifname("\(p).bridge.bridge", b.bridge)
            if let h = b.helper {
                absolutePath("\(p).bridge.helper", h)
                // QEMU 7.2 runs a helper whose path holds a space or tab through `/bin/sh -c`: the rest would be
                // shell code.
                if h.contains(" ") || h.contains("\t") {
                    add("\(p).bridge.helper", "must not contain a space or tab (QEMU would run it through a shell), got \(Names.quoted(h))")
                }
            }
        case .socket(let s):
            switch s.mode {
            case .listen(let h, let po):
                if !h.isEmpty { host("\(p).socket.listen.host", h) }
                port("\(p).socket.listen.port", po)
            case .connect(let h, let po):
                host("\(p).socket.connect.host", h); port("\(p).socket.connect.port", po)
            case .multicast(let a, let po):
                host("\(p).socket.multicast.address", a); port("\(p).socket.multicast.port", po)
            }
        case .stream(let s):
            switch s.address {
            case .unix(let path): absolutePath("\(p).stream.address.unix.path", path)
            case .inet(let h, let po):
                host("\(p).stream.address.inet.host", h); port("\(p).stream.address.inet.port", po)
            }
        case .vde(let v):
            absolutePath("\(p).vde.socket", v.socket)
            // libvdeplug reads its argument as a URL: '://' picks a plugin to load, '[…]' adds parameters, quotes
            // and backslashes are removed. Only a plain path is passed.
            if v.socket.contains("://") || v.socket.contains(where: { "[]'\"\\".contains($0) }) {
                add("\(p).vde.socket", "must be a plain path: libvdeplug would read '://', '[', ']', quotes or '\\' in it as plugin or parameter syntax, got \(Names.quoted(v.socket))")
            }
            if let po = v.port { range("\(p).vde.port", po, 0...65535) }
            if let g = v.group { token("\(p).vde.group", g) }
            if let m = v.mode { range("\(p).vde.mode", m, 0...0o777) }
        }
    }

    mutating func ifname(_ path: String, _ s: String) {
        token(path, s)
        // Tap scripts get the name as an argument: a leading '-' would read as an option.
        if s.hasPrefix("-") { add(path, "must not start with '-', got \(Names.quoted(s))") }
        if s.utf8.count > 15 { add(path, "must be at most 15 characters (IFNAMSIZ), got \(s.utf8.count)") }
    }

    mutating func check(char b: CharBackend, at p: String) {
        switch b {
        case .null, .pty: break
        case .file(let path, _): absolutePath("\(p).file.path", path)
        case .unix(let path, _): absolutePath("\(p).unix.path", path)
        case .tcp(let h, let po, _): host("\(p).tcp.host", h); port("\(p).tcp.port", po)
        case .ringbuf(let size):
            if size <= 0 || size & (size - 1) != 0 { add("\(p).ringbuf.size", "must be a power of two, got \(size)") }
        }
    }

    func isUUID(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return parts.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}
