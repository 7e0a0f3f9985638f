#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Manifest
import QemuCtl
import Reconcile

/// `qemuctl describe NAME`: the one model behind its three forms. `-o json` and `-o yaml` print
/// ``document`` (every key present, null for what is unknown, so both have one shape); the text
/// form prints the same values as sections, plus how to reach the VM.
///
/// Never holds a secret: passwords appear as "set" or absent, and QEMU's command line has none
/// (they go to QEMU through files); what looks like one there is replaced by `(sensitive)`.
struct VMDescription {
    /// What the guest agent told, or why it told nothing.
    struct GuestInfo {
        /// Whether the agent answered.
        var answered: Bool
        /// Why it did not, or nil.
        var problem: String?
        /// `PRETTY_NAME` (or name and version) of the guest's OS.
        var os: String?
        /// The guest's kernel release.
        var kernel: String?
        /// Interfaces: name, MAC and addresses (`10.0.2.15/24`).
        var interfaces: [(name: String, mac: String?, addresses: [String])]

        /// The address `get -o wide` shows: the first IPv4 address that is not loopback, else the
        /// first other address that is neither loopback nor link-local; without its prefix length.
        var primaryAddress: String? {
            let all = interfaces.flatMap(\.addresses).map { String($0.split(separator: "/").first ?? "") }
            return all.first { $0.contains(".") && !$0.hasPrefix("127.") }
                ?? all.first { $0.contains(":") && $0 != "::1" && !$0.lowercased().hasPrefix("fe80:") }
        }
    }

    /// The VM's name.
    var name: String
    /// The state directory it is in.
    var store: StateStore
    /// What observation found (QMP, with the record filling what QMP cannot report).
    var vm: ObservedVM
    /// The VM's record, when it has one.
    var stored: StoredRecord?
    /// How its last QEMU ended, for a VM whose QEMU is gone.
    var exit: ExitReport?
    /// Ready, Paused, Failed, RestartPending (``VMConditions``).
    var conditions: [VMCondition]
    /// Restart-class changes waiting, as `path: old -> new`.
    var pendingChanges: [String]
    /// QEMU's arguments, secrets redacted; nil when it does not run.
    var commandLine: [String]?
    /// QEMU's pid, when it runs.
    var pid: Int32?
    /// What the guest agent told, for a VM with `spec.guestAgent`.
    var guest: GuestInfo?
    /// The EFI firmware in use; nil for BIOS.
    var firmware: FirmwareFacts?

    /// The VM's runtime files.
    var layout: RuntimeLayout { store.layout(name) }
    /// The spec as applied (the record's, amended by live changes).
    var spec: VirtualMachineSpec? { vm.record?.spec ?? stored?.launch.spec }

    /// `running`, `paused`, `not running`, `busy`, … as `get` says it.
    var state: String { VMSummary(vm, record: stored).state }

    // MARK: - The document

    /// The whole object, keys in the order the text form shows them.
    var document: ManifestDocument {
        .map([
            ("name", .string(name)),
            ("managed", .bool(vm.ownership == .managed)),
            ("manifest", text(stored?.source)),
            ("labels", .map((stored?.launch.labels ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("status", statusDocument),
            ("spec", specDocument),
            ("cpus", cpusDocument),
            ("memory", memoryDocument),
            ("disks", .list(disks)),
            ("cdroms", .list(cdroms)),
            ("networks", .list(networks)),
            ("firmware", firmwareDocument),
            ("display", displayDocument),
            ("guestAgent", guestDocument),
            ("conditions", .list(conditions.map(Self.conditionDocument))),
            ("restart", restartDocument),
            ("lastExit", exitDocument),
        ])
    }

    private func text(_ s: String?) -> ManifestDocument { s.map(ManifestDocument.string) ?? .null }
    private func int<T: BinaryInteger>(_ n: T?) -> ManifestDocument { n.map { .int(Int($0)) } ?? .null }
    private func size(_ n: UInt64?) -> ManifestDocument { n.map { .string(ByteSizeText.format($0)) } ?? .null }
    private func time(_ t: Double?) -> ManifestDocument { t.map { .string(EventFollower.timestamp($0)) } ?? .null }

    private var statusDocument: ManifestDocument {
        let alive = vm.liveness == .alive
        return .map([
            ("state", .string(state)),
            ("runStatus", text(vm.live?.runStatus.rawValue)),
            ("runStatusSource", vm.live != nil ? .string("qmp") : .null),
            ("monitor", .string(monitorText)),
            ("accelerator", alive ? text(stored?.accelerator) : .null),
            ("acceleratorReasons", .list((stored?.acceleratorReasons ?? []).map(ManifestDocument.string))),
            ("pid", int(pid)),
            ("startedAt", alive ? time(stored?.startedAt) : .null),
            ("uptimeSeconds", alive ? int(stored?.startedAt.map { Int(Date().timeIntervalSince1970 - $0) }) : .null),
            ("uuid", text(stored?.launch.uuid)),
            ("commandLine", commandLine.map { .list($0.map(ManifestDocument.string)) } ?? .null),
            ("socket", .string(layout.socketPath)),
            ("qemuLog", .string(layout.qemuLog)),
            ("serialLog", .string(layout.serialLog)),
            ("detail", vm.liveness == .alive ? .null : text(vm.detail)),
        ])
    }

    /// What the monitor did: answered, busy (another client holds it), or no answer.
    var monitorText: String {
        switch vm.liveness {
        case .alive: "answering"
        case .gone: "none (QEMU is not running)"
        case .unresponsive:
            vm.monitorBusy == true ? "monitor busy (held by another client)" : "not answering: \(vm.detail ?? "no answer within the deadline")"
        }
    }

    private var specDocument: ManifestDocument {
        guard let spec else { return .null }
        return .map([
            ("runState", .string(spec.runState.rawValue)),
            ("restartPolicy", .string(spec.effectiveRestartPolicy.rawValue)),
            ("arch", .string(spec.arch.rawValue)),
            ("emulator", text(spec.emulator)),
            ("machine", .map([("type", text(spec.machine.type)), ("accel", .string(spec.machine.accel.rawValue)),
                              ("hotplugPorts", .int(spec.machine.hotplugPorts))])),
            ("cpu", .map([("model", text(spec.cpu.model)), ("count", .int(spec.cpu.count)), ("maxCount", .int(spec.cpu.maxCount))])),
            ("memory", .map([("size", size(spec.memory.size)), ("max", size(spec.memory.max)),
                             ("backend", .string(spec.memory.backend.rawValue))])),
            ("firmware", .map([("type", .string(spec.firmware.type.rawValue)), ("code", text(spec.firmware.code)),
                               ("vars", text(spec.firmware.vars)), ("secureBoot", .bool(spec.firmware.secureBoot))])),
            ("boot", .map([("kernel", text(spec.boot.kernel)), ("initrd", text(spec.boot.initrd)),
                           ("cmdline", text(spec.boot.cmdline)), ("order", text(spec.boot.order))])),
            ("guestAgent", .bool(spec.guestAgent)),
            ("spiceAgent", .bool(spec.spiceAgent)),
            ("usbTablet", .bool(spec.usbTablet)),
            ("balloon", .bool(spec.balloon)),
            ("rng", .bool(spec.rng)),
            ("serialLog", .bool(spec.serial.log)),
            ("rtc", .map([("base", .string(spec.rtc.base.rawValue)), ("clock", .string(spec.rtc.clock.rawValue)),
                          ("driftFix", .string(spec.rtc.driftFix.rawValue))])),
            ("usb", .map([("controller", .string(spec.usb.controller.rawValue)),
                          ("devices", .list(spec.usb.devices.map { d in
                              .map([("name", .string(d.name)), ("type", .string(d.type.rawValue))]) }))])),
            ("audio", spec.audio.map { a in .map([("backend", .string(a.backend.rawValue)), ("model", .string(a.model.rawValue))]) } ?? .null),
        ])
    }

    private var cpusDocument: ManifestDocument {
        .map([("count", int(vm.live?.cpuCount ?? spec?.cpu.count)), ("maxCount", int(spec?.cpu.maxCount)),
              ("source", .string(vm.live?.cpuCount != nil ? "qmp" : "record"))])
    }

    private var memoryDocument: ManifestDocument {
        .map([("size", size(vm.live?.memorySize ?? spec?.memory.size)), ("max", size(spec?.memory.max)),
              ("source", .string(vm.live?.memorySize != nil ? "qmp" : "record"))])
    }

    /// Throttle limits in the manifest's units (sizes per second as `20MiB`, operations as numbers).
    static func throttle(_ t: VirtualMachineSpec.Disk.Throttle?) -> ManifestDocument {
        guard let t else { return .null }
        let bytes: [(String, UInt64?)] = [("bps", t.bps), ("bpsRead", t.bpsRead), ("bpsWrite", t.bpsWrite),
                                          ("bpsMax", t.bpsMax), ("bpsReadMax", t.bpsReadMax), ("bpsWriteMax", t.bpsWriteMax),
                                          ("iopsSize", t.iopsSize)]
        let ops: [(String, UInt64?)] = [("iops", t.iops), ("iopsRead", t.iopsRead), ("iopsWrite", t.iopsWrite),
                                        ("iopsMax", t.iopsMax), ("iopsReadMax", t.iopsReadMax), ("iopsWriteMax", t.iopsWriteMax)]
        let entries = bytes.compactMap { k, v in v.map { (k, ManifestDocument.string(ByteSizeText.format($0))) } }
            + ops.compactMap { k, v in v.map { (k, ManifestDocument.int(Int($0))) } }
        return entries.isEmpty ? .null : .map(entries)
    }

    private var disks: [ManifestDocument] {
        let live = Dictionary((vm.live?.disks ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return (spec?.disks ?? []).map { d in
            var backend = "", path: String? = nil, format: String? = nil
            switch d.backend {
            case .file(let p, let f): (backend, path, format) = ("file", p, f.rawValue)
            case .nbd: backend = "nbd"
            case .rbd: backend = "rbd"
            case .iscsi: backend = "iscsi"
            }
            let fileSize = path.flatMap { Posix.sizeAndModificationTime($0)?.size }.map { UInt64($0) }
            let observed = live[d.name]
            return .map([
                ("name", .string(d.name)), ("backend", .string(backend)), ("path", text(path)), ("format", text(format)),
                ("createSize", size(d.createSize)), ("fileSize", size(fileSize)),
                // The read-only file under the image (`file.backing`, or an overlay's base), from the record.
                ("backing", d.declaredBacking.map { b in .map([("path", .string(b.path)), ("format", .string(b.format.rawValue))]) } ?? .null),
                ("interface", .string(d.interface.rawValue)), ("readOnly", .bool(d.readOnly)),
                ("throttle", Self.throttle(observed != nil ? observed!.throttle : d.throttle)),
                ("throttleSource", .string(observed != nil ? "qmp" : "record")),
            ])
        }
    }

    private var cdroms: [ManifestDocument] {
        let live = Dictionary((vm.live?.cdroms ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return (spec?.cdroms ?? []).map { c in
            .map([("name", .string(c.name)), ("media", text(live[c.name].map { $0.media } ?? c.path)),
                  ("source", .string(live[c.name] != nil ? "qmp" : "record"))])
        }
    }

    /// A port forward of a user-mode NIC: `tcp:127.0.0.1:2222-:22`, read apart.
    struct Forward {
        /// The rule as written in the manifest.
        var rule: String
        /// `tcp` or `udp`.
        var proto: String
        /// The host address (empty: every address).
        var hostAddress: String
        /// The host port.
        var hostPort: Int?
        /// The guest address (empty: the guest's DHCP address).
        var guestAddress: String
        /// The guest port.
        var guestPort: Int?

        /// Reads `rule` apart.
        init(_ rule: String) {
            self.rule = rule
            var rest = Substring(rule)
            proto = "tcp"
            if rest.hasPrefix("tcp:") || rest.hasPrefix("udp:") {
                proto = String(rest.prefix(3))
                rest = rest.dropFirst(4)
            }
            let sides = rest.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            func split(_ s: Substring) -> (String, Int?) {
                guard let colon = s.lastIndex(of: ":") else { return ("", Int(s)) }
                return (String(s[..<colon]), Int(s[s.index(after: colon)...]))
            }
            (hostAddress, hostPort) = split(sides.first ?? "")
            (guestAddress, guestPort) = sides.count > 1 ? split(sides[1]) : ("", nil)
        }

        /// How to use it from the host.
        var hint: String {
            let host = hostAddress.isEmpty || hostAddress == "127.0.0.1" || hostAddress == "0.0.0.0" ? "localhost" : hostAddress
            guard let hostPort else { return rule }
            if proto == "tcp" && guestPort == 22 { return "ssh -p \(hostPort) \(host)" }
            return "\(proto) \(host):\(hostPort) reaches the guest's port \(guestPort.map(String.init) ?? "?")"
        }
    }

    private var networks: [ManifestDocument] {
        let live = Dictionary((vm.live?.nics ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return (spec?.networks ?? []).map { n in
            var backend = "", forwards: [Forward] = []
            switch n.backend {
            case .user(let u): (backend, forwards) = ("user", u.hostfwd.map(Forward.init))
            case .tap: backend = "tap"
            case .bridge: backend = "bridge"
            case .socket: backend = "socket"
            case .stream: backend = "stream"
            case .vde: backend = "vde"
            }
            return .map([
                ("name", .string(n.name)), ("backend", .string(backend)), ("model", .string(n.model)), ("mac", .string(n.mac)),
                ("link", .string((live[n.name]?.link ?? n.link).rawValue)),
                // QEMU reports no link state (the record's is shown).
                ("linkSource", .string("record")),
                ("portForwards", .list(forwards.map { f in
                    .map([("rule", .string(f.rule)), ("protocol", .string(f.proto)), ("hostAddress", .string(f.hostAddress)),
                          ("hostPort", int(f.hostPort)), ("guestPort", int(f.guestPort)), ("hint", .string(f.hint))])
                })),
            ])
        }
    }

    /// The VNC endpoint (`127.0.0.1:5975`, a unix path) or nil.
    var vncEndpoint: String? {
        guard let v = spec?.display.vnc else { return nil }
        if v.listen == "none" { return "none (qemuctl vnc hands connections over)" }
        if v.listen.hasPrefix("unix:") { return String(v.listen.dropFirst(5)) }
        if let colon = v.listen.lastIndex(of: ":"), let display = Int(v.listen[v.listen.index(after: colon)...]) {
            return "\(v.listen[..<colon]):\(5900 + display)"
        }
        return v.listen
    }

    /// The SPICE endpoint or nil.
    var spiceEndpoint: String? {
        guard let s = spec?.display.spice else { return nil }
        return s.listen == "unix" ? layout.runtimeDirectory + "/" + VMConfigMapping.spiceSocketName : s.listen
    }

    /// The EFI firmware in use (from QEMU's command line when it runs); null for BIOS.
    private var firmwareDocument: ManifestDocument {
        guard let f = firmware else { return .null }
        return .map([("code", text(f.code)), ("vars", text(f.vars)), ("secureBoot", .bool(f.secureBoot)), ("source", .string(f.source))])
    }

    private var displayDocument: ManifestDocument {
        let vnc = spec?.display.vnc
        let spice = spec?.display.spice
        return .map([
            ("vnc", vnc.map { v in .map([("listen", .string(v.listen)), ("endpoint", text(vncEndpoint)),
                                         ("password", .string(v.passwordFrom == nil ? "none" : "(sensitive)")),
                                         // QEMU cannot report a password: what the record says was set.
                                         ("passwordSource", .string("record")),
                                         ("connect", .string("qemuctl vnc \(name)"))]) } ?? .null),
            ("spice", spice.map { s in .map([("listen", .string(s.listen)), ("endpoint", text(spiceEndpoint)),
                                             ("password", .string(s.passwordFrom == nil ? (s.disableTicketing ? "none (ticketing disabled)" : "none") : "(sensitive)")),
                                             ("passwordSource", .string("record")),
                                             ("connect", .string("qemuctl spice \(name)"))]) } ?? .null),
            ("video", .string(spec?.display.video.rawValue ?? "none")),
            ("console", .map([("connect", .string("qemuctl console \(name)")), ("socket", .string(layout.consoleSocket)),
                              ("serialLog", .string(layout.serialLog))])),
        ])
    }

    private var guestDocument: ManifestDocument {
        .map([
            ("enabled", .bool(spec?.guestAgent ?? false)),
            ("answered", .bool(guest?.answered ?? false)),
            ("detail", text(guest?.problem)),
            ("os", text(guest?.os)),
            ("kernel", text(guest?.kernel)),
            ("interfaces", .list((guest?.interfaces ?? []).map { i in
                .map([("name", .string(i.name)), ("mac", text(i.mac)), ("addresses", .list(i.addresses.map(ManifestDocument.string)))])
            })),
        ])
    }

    /// One condition as a mapping (`type`, `status`, `reason`, `message`, `lastTransitionTime`).
    static func conditionDocument(_ c: VMCondition) -> ManifestDocument {
        .map([("type", .string(c.type)), ("status", .string(c.status.rawValue)), ("reason", .string(c.reason)),
              ("message", .string(c.message)),
              ("lastTransitionTime", c.lastTransitionTime.map { .string(EventFollower.timestamp($0)) } ?? .null)])
    }

    private var restartDocument: ManifestDocument {
        let h = stored?.restarts
        return .map([
            ("policy", .string(spec?.effectiveRestartPolicy.rawValue ?? "never")),
            ("pending", .bool(vm.restartPending)),
            ("pendingChanges", .list(pendingChanges.map(ManifestDocument.string))),
            ("restarts", .int(h?.count ?? 0)),
            ("lastRestart", time(h?.lastRestartAt)),
            ("nextRestart", time(h?.nextRestartAt)),
            ("leftDown", text(h?.leftDown)),
        ])
    }

    private var exitDocument: ManifestDocument {
        guard let exit else { return .null }
        return .map([
            ("summary", .string(exit.summary)),
            ("reason", .string(exit.short)),
            ("exitStatus", int(exit.exitStatus)),
            ("signal", text(exit.signal)),
            ("shutdownReason", text(exit.shutdownReason)),
            ("byGuest", .bool(exit.byGuest)),
            ("at", time(exit.at)),
            ("log", .string(exit.logPath)),
            ("logTail", .list(exit.logTail.map(ManifestDocument.string))),
        ])
    }

    // MARK: - Text

    /// The text form: sections of aligned `key: value` lines, then how to reach the VM.
    var text: String {
        var out = ""
        func line(_ indent: Int, _ key: String, _ value: String) {
            out += String(repeating: " ", count: indent) + key + ":" + (value.isEmpty ? "" : " " + value) + "\n"
        }
        func section(_ title: String) { out += "\n" + title + ":\n" }
        line(0, "Name", name)
        line(0, "Managed", vm.ownership == .managed ? "yes" : "no (no launch record)")
        if let source = stored?.source { line(0, "Manifest", source) }
        if let labels = stored?.launch.labels, !labels.isEmpty {
            line(0, "Labels", labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        }
        section("Status")
        line(2, "State", state + (vm.live.map { state.hasPrefix($0.runStatus.rawValue) ? "" : " (QEMU reports \($0.runStatus.rawValue))" } ?? ""))
        line(2, "Monitor", monitorText)
        if vm.liveness == .alive, let a = stored?.accelerator {
            line(2, "Accelerator", a + (stored!.acceleratorReasons.isEmpty ? "" : " (" + stored!.acceleratorReasons.joined(separator: "; ") + ")"))
        }
        if let pid { line(2, "PID", String(pid)) }
        if vm.liveness == .alive, let t = stored?.startedAt {
            line(2, "Started", EventFollower.timestamp(t) + " (up \(VMSummary.duration(Int(Date().timeIntervalSince1970 - t))))")
        }
        if let uuid = stored?.launch.uuid { line(2, "UUID", uuid) }
        if vm.liveness != .alive, vm.monitorBusy != true, let d = vm.detail { line(2, "Detail", d) }
        if let spec {
            section("Spec")
            line(2, "runState", spec.runState.rawValue)
            line(2, "restartPolicy", spec.effectiveRestartPolicy.rawValue)
            line(2, "arch", spec.arch.rawValue)
            line(2, "machine", (spec.machine.type ?? "default") + ", accel " + spec.machine.accel.rawValue)
            line(2, "cpus", "\(vm.live?.cpuCount ?? spec.cpu.count) (max \(spec.cpu.maxCount))\(vm.live?.cpuCount != nil ? "" : ", from the record")")
            line(2, "memory", ByteSizeText.format(vm.live?.memorySize ?? spec.memory.size) + (spec.memory.max.map { " (max \(ByteSizeText.format($0)))" } ?? ""))
            line(2, "firmware", spec.firmware.type.rawValue + (firmware.map { f in ", code \(f.code ?? "(none found)")" + (f.vars.map { ", vars \($0)" } ?? "") } ?? ""))
            if let k = spec.boot.kernel { line(2, "boot.kernel", k) }
            if let c = spec.boot.cmdline { line(2, "boot.cmdline", c) }
            line(2, "guestAgent", spec.guestAgent ? "yes" : "no")
            if !spec.disks.isEmpty {
                section("Disks")
                for case .map(let d) in disks {
                    let v = Dictionary(d, uniquingKeysWith: { a, _ in a })
                    var parts: [String] = []
                    if case .string(let p)? = v["path"] { parts.append(p) } else if case .string(let b)? = v["backend"] { parts.append(b) }
                    if case .string(let f)? = v["format"] { parts.append("(\(f))") }
                    if case .string(let s)? = v["fileSize"] { parts.append("size \(s)") }
                    if case .string(let i)? = v["interface"] { parts.append(i) }
                    if case .bool(true)? = v["readOnly"] { parts.append("read-only") }
                    if case .map(let t)? = v["throttle"] {
                        parts.append("throttle " + t.map { k, x in "\(k)=\(Self.scalar(x))" }.joined(separator: " "))
                    }
                    line(2, Self.scalar(v["name"] ?? .null), parts.joined(separator: " "))
                    if case .map(let b)? = v["backing"] {
                        let bv = Dictionary(b, uniquingKeysWith: { a, _ in a })
                        line(4, "backing", "\(Self.scalar(bv["path"] ?? .null)) (\(Self.scalar(bv["format"] ?? .null)), read-only)")
                    }
                }
            }
            if !spec.cdroms.isEmpty {
                section("CD-ROMs")
                for case .map(let c) in cdroms {
                    let v = Dictionary(c, uniquingKeysWith: { a, _ in a })
                    line(2, Self.scalar(v["name"] ?? .null), v["media"].map { $0 == .null ? "empty" : Self.scalar($0) } ?? "empty")
                }
            }
            if !spec.networks.isEmpty {
                section("Networks")
                for n in spec.networks {
                    let link = (vm.live?.nics?.first { $0.name == n.name }?.link ?? n.link).rawValue
                    line(2, n.name, "\(n.model), mac \(n.mac), link \(link)")
                    if case .user(let u) = n.backend {
                        for f in u.hostfwd.map(Forward.init) { line(4, "forward", "\(f.rule)  →  \(f.hint)") }
                    }
                }
            }
        }
        if let guest, spec?.guestAgent == true {
            section("Guest (agent)")
            if guest.answered {
                if let os = guest.os { line(2, "OS", os + (guest.kernel.map { " (kernel \($0))" } ?? "")) }
                for i in guest.interfaces where !i.addresses.isEmpty {
                    line(2, i.name, i.addresses.joined(separator: ", ") + (i.mac.map { " (mac \($0))" } ?? ""))
                }
            } else {
                line(2, "Agent", guest.problem ?? "did not answer")
            }
        }
        section("Conditions")
        let rows = conditions.map { c in
            ["  " + c.type, c.status.rawValue, c.reason, c.lastTransitionTime.map(EventFollower.timestamp) ?? "-", c.message]
        }
        out += Terminal.table(["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows)
        if let spec {
            section("Restart")
            line(2, "restartPolicy", spec.effectiveRestartPolicy.rawValue)
            line(2, "restartPending", vm.restartPending ? "yes" : "no")
            for c in pendingChanges { line(4, "pending", c) }
            let h = stored?.restarts
            line(2, "restarts", String(h?.count ?? 0))
            if let e = h?.lastExit { line(2, "lastExit", "\(e.reason) at \(EventFollower.timestamp(e.at))") }
            if let t = h?.lastRestartAt { line(2, "lastRestart", EventFollower.timestamp(t)) }
            if let t = h?.nextRestartAt { line(2, "nextRestart", "\(EventFollower.timestamp(t)) (backoff after \(h!.consecutive) in a row)") }
            if let why = h?.leftDown { line(2, "leftDown", why) }
        }
        if let exit {
            section("Last exit")
            line(2, "Reason", exit.summary)
            if let at = exit.at { line(2, "At", EventFollower.timestamp(at)) }
            if let s = exit.shutdownReason { line(2, "Shutdown", s) }
            line(2, "QEMU log", exit.logPath + (exit.logTail.isEmpty ? " (empty)" : " (last lines below)"))
            for l in exit.logTail { out += "    | " + l + "\n" }
        }
        section("Reach")
        var reach: [String] = []
        for n in spec?.networks ?? [] {
            if case .user(let u) = n.backend { reach += u.hostfwd.map { Forward($0).hint } }
        }
        if let v = vncEndpoint { reach.append("VNC \(v) — or `qemuctl vnc \(name)`") }
        if let s = spiceEndpoint { reach.append("SPICE \(s) — or `qemuctl spice \(name)`") }
        if vm.ownership == .managed { reach.append("serial console: `qemuctl console \(name)` (log \(layout.serialLog))") }
        reach.append("monitor: `qemuctl qmp \(name) query-status` (socket \(layout.socketPath))")
        for r in reach { out += "  " + r + "\n" }
        if let commandLine {
            section("QEMU command line")
            out += "  " + commandLine.joined(separator: " ") + "\n"
        }
        if let stored, !stored.launch.secrets.isEmpty {
            section("Secrets (values never shown)")
            for path in stored.launch.secrets.keys.sorted() { line(2, path, "(sensitive)") }
        }
        return out
    }

    /// A document value as the text form shows it (`-` for null, `yes`/`no` for booleans).
    static func scalar(_ d: ManifestDocument) -> String {
        switch d {
        case .null: "-"
        case .string(let s): s
        case .int(let i): String(i)
        case .bool(let b): b ? "yes" : "no"
        default: d.json()
        }
    }

    // MARK: - Gathering

    /// QEMU's command line from `/proc/PID/cmdline`, with anything that looks like a secret value
    /// (`password=…`, `data=…` of a secret object) replaced.
    static func commandLine(pid: Int32) -> [String]? {
        Posix.commandLine(of: pid).map { $0.map(redacted) }
    }

    /// `arg` with the values of `password=`, `data=`, `passwd=` and `secret=` replaced by `(sensitive)`.
    static func redacted(_ arg: String) -> String {
        var out = arg
        for key in ["password=", "passwd=", "data=", "secret=", "\"password\":", "\"data\":"] {
            var searchFrom = out.startIndex
            while let r = out[searchFrom...].firstRange(of: key) {
                let valueEnd = out[r.upperBound...].firstIndex { $0 == "," || $0 == "}" } ?? out.endIndex
                out.replaceSubrange(r.upperBound..<valueEnd, with: "(sensitive)")
                searchFrom = out.index(r.upperBound, offsetBy: "(sensitive)".count, limitedBy: out.endIndex) ?? out.endIndex
            }
        }
        return out
    }

    /// Asks the guest agent for the OS and the addresses, within `deadline` in all.
    static func askGuest(_ layout: RuntimeLayout, deadline: Duration) async -> GuestInfo {
        guard Posix.fileExists(layout.guestAgentSocket) else {
            return GuestInfo(answered: false, problem: "no agent socket at \(layout.guestAgentSocket) (QEMU not running?)", interfaces: [])
        }
        // One deadline for the connection and both questions: what is left of it for each.
        let end = ContinuousClock.now + deadline
        let left = { max(end - ContinuousClock.now, .milliseconds(50)) }
        do {
            return try await GuestAgent.withConnection(socketPath: layout.guestAgentSocket, timeout: deadline) { agent in
                let os = try? await agent.osInfo(timeout: left())
                let nics = (try? await agent.networkInterfaces(timeout: left())) ?? []
                return GuestInfo(
                    answered: true, problem: nil,
                    os: os.flatMap { info in info.prettyName ?? info.name.map { n in n + (info.version.map { " " + $0 } ?? "") } },
                    kernel: os?.kernelRelease,
                    interfaces: nics.filter { $0.name != "lo" }.map { n in
                        (n.name, n.hardwareAddress, n.ipAddresses.map { "\($0.address)/\($0.prefix)" })
                    })
            }
        } catch {
            return GuestInfo(answered: false, problem: "the guest agent did not answer within \(deadline): \(error)", interfaces: [])
        }
    }
}
