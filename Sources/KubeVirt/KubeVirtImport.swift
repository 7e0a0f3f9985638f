package import Manifest
package import Reconcile
import QMP

// MARK: - KubeVirtImport

/// The reverse of ``KubeVirtExport``: a KubeVirt `kubevirt.io/v1` `VirtualMachine` (YAML or
/// JSON, one object, several documents, or a `v1` `List`) as a qemuctl manifest.
///
/// Every field of the object is either read or reported in ``Result/dropped`` with its
/// position: fields are tracked as they are read, and whatever is left at the end is named.
/// Storage does not come over: each volume becomes an image file `images/VM-DISK.qcow2`
/// next to the manifest (created with the DataVolume's size when there is one), reported.
package enum KubeVirtImport {
    /// One imported VM.
    package struct Result: Sendable {
        /// The VM's name.
        package var name: String
        /// The manifest.
        package var document: ManifestDocument
        /// What did not carry over, in document order.
        package var dropped: [KubeVirtExport.Dropped]
    }

    /// Reads every VirtualMachine of `bytes`.
    ///
    /// - Returns: the manifests, and errors (YAML syntax, an object that is not a KubeVirt
    ///   VirtualMachine or lacks a name); with errors, the results hold the objects that read.
    package static func read(_ bytes: [UInt8], file: String) -> (results: [Result], errors: [ManifestDiagnostic]) {
        let (texts, syntax) = ManifestSchema.jsonDocuments(ofYAML: bytes, file: file)
        var errors = syntax.filter { $0.severity == .error }
        let maps = ManifestSourceMap.documents(ofYAML: bytes, file: file)
        var results: [Result] = []
        for (n, text) in texts.enumerated() {
            let map = n < maps.count ? maps[n] : ManifestSourceMap(file: file, start: SourceLocation(file: file, line: 1, column: 1))
            guard let value = try? JSONValue(parsing: text) else { continue }
            var objects: [(JSONValue, String)] = [(value, "")]
            if value["kind"]?.stringValue == "List", let items = value["items"]?.arrayValue {
                objects = items.enumerated().map { ($0.element, "items[\($0.offset)].") }
            }
            for (object, prefix) in objects {
                guard object["apiVersion"]?.stringValue == "kubevirt.io/v1", object["kind"]?.stringValue == "VirtualMachine" else {
                    errors.append(.init(at: map.nearest(prefix + "kind"),
                                        "not a KubeVirt VirtualMachine (apiVersion kubevirt.io/v1, kind VirtualMachine)"))
                    continue
                }
                guard let name = object["metadata"]?["name"]?.stringValue, StringFormat.name.accepts(name) else {
                    errors.append(.init(at: map.nearest(prefix + "metadata.name"),
                                        "metadata.name is missing or not a DNS label", hint: "qemuctl names VMs with DNS labels"))
                    continue
                }
                var reader = Reader(name: name, root: object, prefix: prefix, map: map)
                let document = reader.manifest()
                results.append(Result(name: name, document: document, dropped: reader.dropped))
            }
        }
        return (results, errors)
    }

    /// A guest PCI address on the root bus, `0000:00:06.0`, as a manifest's `pciAddress`
    /// (`0x06`); nil for another domain, bus or function, which qemuctl cannot place.
    package static func pciAddress(ofKubeVirt text: String) -> String? {
        let parts = text.lowercased().split(separator: ":")
        guard parts.count == 3, parts[0] == "0000", parts[1] == "00" else { return nil }
        let slotFunction = parts[2].split(separator: ".")
        guard slotFunction.count == 2, slotFunction[1] == "0", slotFunction[0].count == 2,
              let slot = Int(slotFunction[0], radix: 16), (1...0x1f).contains(slot) else { return nil }
        return "0x" + slotFunction[0]
    }

    /// A Kubernetes quantity in bytes (`2Gi`, `1G`, `1536Mi`, `1073741824`), nil when it is
    /// not a whole number of bytes.
    package static func bytes(ofQuantity text: String) -> UInt64? {
        let units: [(String, UInt64)] = [
            ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50),
            ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000), ("P", 1_000_000_000_000_000),
        ]
        var number = Substring(text), unit: UInt64 = 1
        for (suffix, size) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            unit = size
            break
        }
        guard let n = UInt64(number) else { return nil }
        let (total, overflow) = n.multipliedReportingOverflow(by: unit)
        return overflow ? nil : total
    }
}

// MARK: - Reader

/// Reads one VirtualMachine object, remembering which fields it read.
private struct Reader {
    typealias Doc = ManifestDocument
    let name: String
    let root: JSONValue
    let prefix: String
    let map: ManifestSourceMap
    var read: Set<String> = []
    var dropped: [KubeVirtExport.Dropped] = []

    init(name: String, root: JSONValue, prefix: String, map: ManifestSourceMap) {
        self.name = name
        self.root = root
        self.prefix = prefix
        self.map = map
    }

    /// The value at `path` (`spec.template.spec.domain.cpu.sockets`), marked as read with all below it.
    mutating func take(_ path: String) -> JSONValue? {
        guard let v = value(path) else { return nil }
        read.insert(path)
        return v
    }

    /// The value at `path`, not marked.
    func value(_ path: String) -> JSONValue? {
        var current: JSONValue? = root
        for part in path.split(separator: ".") {
            var key = Substring(part), index: Int? = nil
            if let open = key.firstIndex(of: "["), key.hasSuffix("]") {
                index = Int(key[key.index(after: open)..<key.index(before: key.endIndex)])
                key = key[..<open]
            }
            current = current?[String(key)]
            if let index { current = current?[index] }
        }
        return current
    }

    /// Reports `path` as not carried over, and marks it read.
    mutating func drop(_ path: String, _ reason: String) {
        read.insert(path)
        dropped.append(.init(vm: name, path: prefix + path, location: map.nearest(prefix + path), reason: reason))
    }

    /// Whether `path` or a field above it was read.
    func isRead(_ path: String) -> Bool {
        var p = Substring(path)
        while true {
            if read.contains(String(p)) { return true }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { return false }
            p = p[..<cut]
        }
    }

    /// Every leaf (and empty container) under `value` that was not read, reported.
    mutating func reportUnread(_ value: JSONValue, path: String) {
        if !path.isEmpty, isRead(path) { return }
        switch value {
        case .object(let members) where !members.isEmpty:
            for key in members.keys.sorted() { reportUnread(members[key]!, path: path.isEmpty ? key : "\(path).\(key)") }
        case .array(let items) where !items.isEmpty:
            for (i, item) in items.enumerated() { reportUnread(item, path: "\(path)[\(i)]") }
        case .null:
            read.insert(path)   // `creationTimestamp: null` and the like say nothing
        case .array:
            read.insert(path)   // an empty list asks for nothing
        case .object where Self.containers.contains(path):
            read.insert(path)   // an empty container asks for nothing (`rng: {}` or `pod: {}` do)
        default:
            drop(path, "qemuctl has no field for this")
        }
    }

    /// Objects that only hold other fields: empty, they ask for nothing.
    static let containers: Set<String> = [
        "metadata", "metadata.labels", "metadata.annotations", "spec", "spec.template", "spec.template.metadata",
        "spec.template.metadata.labels", "spec.template.metadata.annotations", "spec.template.spec",
        "spec.template.spec.domain", "spec.template.spec.domain.devices", "spec.template.spec.domain.cpu",
        "spec.template.spec.domain.memory", "spec.template.spec.domain.machine", "spec.template.spec.domain.firmware",
        "spec.template.spec.domain.firmware.bootloader", "spec.template.spec.domain.resources",
        "spec.template.spec.domain.resources.requests", "spec.template.spec.domain.resources.limits",
        "spec.template.spec.domain.features", "spec.template.spec.domain.clock", "spec.template.spec.nodeSelector",
    ]

    // MARK: The manifest

    mutating func manifest() -> Doc {
        for known in ["apiVersion", "kind", "metadata.name"] { _ = take(known) }
        for server in ["status", "metadata.uid", "metadata.resourceVersion", "metadata.generation",
                       "metadata.creationTimestamp", "metadata.managedFields", "metadata.selfLink", "metadata.finalizers",
                       "spec.template.metadata.creationTimestamp"] {
            _ = take(server)   // set by the cluster, not part of the VM's description
        }
        if value("metadata.namespace") != nil {
            drop("metadata.namespace", "qemuctl has no namespaces (export kubevirt --namespace sets it back)")
        }
        var labels = take("metadata.labels")?.objectValue ?? [:]
        if labels[KubeVirtExport.ownershipLabel.key]?.stringValue == KubeVirtExport.ownershipLabel.value {
            labels[KubeVirtExport.ownershipLabel.key] = nil
        }
        if let templateLabels = value("spec.template.metadata.labels")?.objectValue {
            var rest = templateLabels
            rest[KubeVirtExport.ownershipLabel.key] = nil
            for (k, v) in templateLabels where labels[k] == v { rest[k] = nil }
            read.insert("spec.template.metadata.labels")
            for k in rest.keys.sorted() where !k.hasPrefix("kubevirt.io/") {
                drop("spec.template.metadata.labels.\(k)", "a label of the VM's pods only; qemuctl has one set of labels")
            }
        }
        var metadata: [(String, Doc)] = [("name", .string(name))]
        let kept = labels.keys.sorted().compactMap { k in labels[k]?.stringValue.map { (k, Doc.string($0)) } }
        if !kept.isEmpty { metadata.append(("labels", .map(kept))) }

        var spec: [(String, Doc)] = []
        spec.append(("runState", .string(runState())))
        let t = "spec.template.spec"
        if let arch = take("\(t).architecture")?.stringValue {
            if Architecture(rawValue: arch) != nil { spec.append(("arch", .string(arch))) } else {
                drop("\(t).architecture", "not an architecture qemuctl knows")
            }
        }
        if let type = take("\(t).domain.machine.type")?.stringValue { spec.append(("machine", .map([("type", .string(type))]))) }
        spec.append(("cpu", .map(cpu())))
        spec.append(("memory", .map(memory())))
        if let f = firmware() { spec.append(("firmware", .map(f))) }
        let (disks, cdroms) = drives()
        if !disks.isEmpty { spec.append(("disks", .list(disks))) }
        if !cdroms.isEmpty { spec.append(("cdroms", .list(cdroms))) }
        let nics = networks()
        if !nics.isEmpty { spec.append(("networks", .list(nics))) }
        spec += devices()
        reportUnread(root, path: "")
        return .map([
            ("apiVersion", .string(FieldTable.apiVersion)), ("kind", .string(FieldTable.kind)),
            ("metadata", .map(metadata)), ("spec", .map(spec)),
        ])
    }

    mutating func runState() -> String {
        let t = "spec.template.spec"
        if take("\(t).startStrategy")?.stringValue == "Paused" {
            _ = take("spec.runStrategy")
            return "paused"
        }
        if let running = take("spec.running")?.boolValue { return running ? "running" : "stopped" }
        switch take("spec.runStrategy")?.stringValue {
        case "Halted"?: return "stopped"
        case "Manual"?:
            drop("spec.runStrategy", "Manual leaves starting to the operator; the manifest says stopped (qemuctl start starts it)")
            return "stopped"
        case "Once"?, "WaitAsReceiver"?:
            drop("spec.runStrategy", "qemuctl has no run-once or migration-target state; the manifest says running")
            return "running"
        default: return "running"   // Always, RerunOnFailure (until spec.restartPolicy exists), or none
        }
    }

    mutating func cpu() -> [(String, Doc)] {
        let c = "spec.template.spec.domain.cpu"
        let sockets = take("\(c).sockets")?.intValue ?? 1
        let cores = take("\(c).cores")?.intValue ?? 1
        let threads = take("\(c).threads")?.intValue ?? 1
        let maxSockets = take("\(c).maxSockets")?.intValue ?? sockets
        var out: [(String, Doc)] = [("count", .int(sockets * cores * threads))]
        if maxSockets > sockets { out.append(("maxCount", .int(maxSockets * cores * threads))) }
        if cores > 1 || threads > 1 {
            out += [("sockets", .int(maxSockets)), ("cores", .int(cores)), ("threads", .int(threads))]
        }
        if let model = value("\(c).model")?.stringValue {
            switch model {
            case "host-passthrough": out.append(("model", .string("host"))); read.insert("\(c).model")
            case "host-model": drop("\(c).model", "QEMU has no host-model; qemuctl picks a model that works with the accelerator")
            default: out.append(("model", .string(model))); read.insert("\(c).model")
            }
        }
        if let features = value("\(c).features")?.arrayValue {
            var list: [Doc] = []
            for (i, f) in features.enumerated() {
                guard let n = f["name"]?.stringValue else { continue }
                switch f["policy"]?.stringValue ?? "require" {
                case "require", "force": list.append(.string("+" + n)); read.insert("\(c).features[\(i)]")
                case "disable", "forbid": list.append(.string("-" + n)); read.insert("\(c).features[\(i)]")
                default: drop("\(c).features[\(i)]", "qemuctl adds or removes features; 'optional' has no equivalent")
                }
            }
            if !list.isEmpty { out.append(("features", .list(list))) }
        }
        if value("spec.template.spec.domain.resources.requests.cpu") != nil, value("\(c).sockets") == nil {
            drop("spec.template.spec.domain.resources.requests.cpu", "a scheduling request, not a vCPU count; set spec.cpu.count")
        }
        return out
    }

    mutating func memory() -> [(String, Doc)] {
        let m = "spec.template.spec.domain.memory"
        var out: [(String, Doc)] = []
        let guest = take("\(m).guest") ?? take("spec.template.spec.domain.resources.requests.memory")
        if let text = guest.flatMap(\.stringValue), let b = KubeVirtImport.bytes(ofQuantity: text) {
            out.append(("size", .string(ByteSize.format(b))))
        }
        if let text = take("\(m).maxGuest")?.stringValue, let b = KubeVirtImport.bytes(ofQuantity: text) {
            out.append(("max", .string(ByteSize.format(b))))
        }
        return out
    }

    mutating func firmware() -> [(String, Doc)]? {
        let b = "spec.template.spec.domain.firmware.bootloader"
        if take("\(b).bios") != nil { return [("type", .string("bios"))] }
        guard value("\(b).efi") != nil else { return nil }
        read.insert("\(b).efi")
        if take("\(b).efi.secureBoot")?.boolValue ?? true {
            // KubeVirt's efi defaults to secure boot.
            drop("\(b).efi.secureBoot", "qemuctl has no secure-boot switch: set spec.firmware.code to a secure-boot OVMF image")
            _ = take("spec.template.spec.domain.features.smm")
        }
        if value("\(b).efi.persistent")?.boolValue == true { read.insert("\(b).efi.persistent") }   // qemuctl keeps vars per VM
        return [("type", .string("efi"))]
    }

    /// The size of DataVolume `name` from the VM's dataVolumeTemplates.
    mutating func dataVolumeSize(_ name: String) -> UInt64? {
        guard let templates = value("spec.dataVolumeTemplates")?.arrayValue else { return nil }
        for (i, t) in templates.enumerated() where t["metadata"]?["name"]?.stringValue == name {
            let d = "spec.dataVolumeTemplates[\(i)]"
            read.insert("\(d).metadata.name")
            let size = take("\(d).spec.storage.resources.requests.storage") ?? take("\(d).spec.pvc.resources.requests.storage")
            if value("\(d).spec.source.blank") != nil { read.insert("\(d).spec.source") }
            return size?.stringValue.flatMap(KubeVirtImport.bytes(ofQuantity:))
        }
        return nil
    }

    mutating func drives() -> (disks: [Doc], cdroms: [Doc]) {
        let t = "spec.template.spec"
        let volumes = value("\(t).volumes")?.arrayValue ?? []
        var disks: [Doc] = [], cdroms: [Doc] = []
        for (i, d) in (value("\(t).domain.devices.disks")?.arrayValue ?? []).enumerated() {
            let at = "\(t).domain.devices.disks[\(i)]"
            guard let name = take("\(at).name")?.stringValue else { continue }
            let v = volumes.firstIndex { $0["name"]?.stringValue == name }
            var size: UInt64? = nil
            let isCD = d["cdrom"] != nil
            if let v, isCD {
                drop("\(t).volumes[\(v)]", "the medium does not come over: the CD-ROM is imported empty (set spec.cdroms[].path to an ISO)")
            } else if let v {
                let va = "\(t).volumes[\(v)]"
                read.insert("\(va).name")
                if let dv = take("\(va).dataVolume.name")?.stringValue {
                    size = dataVolumeSize(dv)
                    drop("\(va).dataVolume", "the DataVolume's content does not come over: the disk is the image file images/\(self.name)-\(name).qcow2 beside the manifest\(size == nil ? "" : ", created empty")")
                } else if let claim = value("\(va).persistentVolumeClaim.claimName")?.stringValue {
                    drop("\(va).persistentVolumeClaim", "claim \(claim)'s content does not come over: the disk is the image file images/\(self.name)-\(name).qcow2 beside the manifest")
                } else if let capacity = take("\(va).emptyDisk.capacity")?.stringValue {
                    size = KubeVirtImport.bytes(ofQuantity: capacity)
                } else if volumes[v]["cloudInitNoCloud"] != nil || volumes[v]["cloudInitConfigDrive"] != nil {
                    drop(va, "qemuctl has no cloud-init field yet; the seed disk is not imported")
                    read.insert(at)
                    continue
                } else {
                    drop(va, "this volume source has no qemuctl equivalent: the disk is the image file images/\(self.name)-\(name).qcow2 beside the manifest")
                }
            }
            var entry: [(String, Doc)] = [("name", .string(name))]
            if d["cdrom"] != nil {
                read.insert("\(at).cdrom.readonly")
                if let bus = take("\(at).cdrom.bus")?.stringValue, bus == "scsi" { entry.append(("interface", .string("scsi"))) }
                if let boot = take("\(at).bootOrder")?.intValue { entry.append(("bootIndex", .int(max(0, boot - 1)))) }
                read.insert(at + ".cdrom")
                cdroms.append(.map(entry))
                continue
            }
            entry.append(("file", .map([("path", .string("images/\(self.name)-\(name).qcow2")), ("format", .string("qcow2"))])))
            if let bus = take("\(at).disk.bus")?.stringValue {
                switch bus {
                case "virtio", "scsi": entry.append(("interface", .string(bus)))
                case "sata": entry.append(("interface", .string("ide")))
                default: drop("\(at).disk.bus", "qemuctl's disk interfaces are virtio, scsi, ide and nvme; virtio is used")
                }
            }
            if take("\(at).disk.readonly")?.boolValue == true { entry.append(("readOnly", .bool(true))) }
            if let address = value("\(at).disk.pciAddress")?.stringValue, let slot = KubeVirtImport.pciAddress(ofKubeVirt: address) {
                read.insert("\(at).disk.pciAddress")
                entry.append(("pciAddress", .string(slot)))
            }
            if d["disk"]?.objectValue?.isEmpty == true { read.insert("\(at).disk") }
            if let serial = take("\(at).serial")?.stringValue { entry.append(("serial", .string(serial))) }
            if let cache = value("\(at).cache")?.stringValue, ["none", "writethrough", "writeback"].contains(cache) {
                read.insert("\(at).cache")
                entry.append(("cache", .string(cache)))
            }
            if let boot = take("\(at).bootOrder")?.intValue { entry.append(("bootIndex", .int(max(0, boot - 1)))) }
            if let size, size >= 1 << 20 { entry.append(("create", .map([("size", .string(ByteSize.format(size)))]))) }
            disks.append(.map(entry))
        }
        return (disks, cdroms)
    }

    mutating func networks() -> [Doc] {
        let t = "spec.template.spec"
        let networks = value("\(t).networks")?.arrayValue ?? []
        var out: [Doc] = []
        var first = true
        for (i, nic) in (value("\(t).domain.devices.interfaces")?.arrayValue ?? []).enumerated() {
            let at = "\(t).domain.devices.interfaces[\(i)]"
            guard let name = take("\(at).name")?.stringValue else { continue }
            var entry: [(String, Doc)] = [("name", .string(name))]
            let n = networks.firstIndex { $0["name"]?.stringValue == name }
            let na = n.map { "\(t).networks[\($0)]" }
            if let na { read.insert("\(na).name") }
            if let na, value("\(na).pod") != nil {
                read.insert("\(na).pod")
                _ = take("\(at).masquerade")
                var user: [(String, Doc)] = []
                if let cidr = take("\(na).pod.vmNetworkCIDR")?.stringValue { user.append(("net", .string(cidr))) }
                if first, let h = take("\(t).hostname")?.stringValue { user.append(("hostname", .string(h))) }
                if first, let s = value("\(t).dnsConfig.searches")?.arrayValue?.first?.stringValue {
                    read.insert("\(t).dnsConfig.searches[0]")
                    user.append(("domain", .string(s)))
                }
                first = false
                entry.append(("user", .map(user)))
            } else if let na, let bridge = take("\(na).multus.networkName")?.stringValue {
                _ = take("\(at).bridge")
                let local = bridge.split(separator: "/").last.map(String.init) ?? bridge
                drop("\(na).multus", "a Multus network is the cluster's; the NIC joins host bridge '\(local)' (qemu-bridge-helper)")
                entry.append(("bridge", .map([("name", .string(String(local.prefix(15))))])))
            } else {
                drop(at, "no pod or Multus network for this interface; not imported")
                continue
            }
            if let model = take("\(at).model")?.stringValue { entry.append(("model", .string(model == "virtio" ? "virtio-net-pci" : model))) }
            if let mac = take("\(at).macAddress")?.stringValue { entry.append(("mac", .string(mac.lowercased()))) }
            if take("\(at).state")?.stringValue == "down" { entry.append(("link", .string("down"))) }
            if let boot = take("\(at).bootOrder")?.intValue { entry.append(("bootIndex", .int(max(0, boot - 1)))) }
            if let address = value("\(at).pciAddress")?.stringValue, let slot = KubeVirtImport.pciAddress(ofKubeVirt: address) {
                read.insert("\(at).pciAddress")
                entry.append(("pciAddress", .string(slot)))
            }
            out.append(.map(entry))
        }
        return out
    }

    mutating func devices() -> [(String, Doc)] {
        let d = "spec.template.spec.domain.devices"
        var out: [(String, Doc)] = []
        if take("\(d).autoattachGraphicsDevice")?.boolValue != false {
            out.append(("display", .map([("vnc", .map([("listen", .string("none"))]))])))
        }
        _ = take("\(d).autoattachPodInterface")
        _ = take("\(d).autoattachSerialConsole")
        if take("\(d).logSerialConsole")?.boolValue == true { out.append(("serial", .map([("log", .bool(true))]))) }
        // KubeVirt always has the guest agent channel.
        out.append(("guestAgent", .bool(true)))
        if let inputs = value("\(d).inputs")?.arrayValue {
            for (i, input) in inputs.enumerated() where input["type"]?.stringValue == "tablet" && i == 0 {
                read.insert("\(d).inputs[\(i)]")
                out.append(("usbTablet", .bool(true)))
            }
        }
        if take("\(d).autoattachMemBalloon")?.boolValue != false { out.append(("balloon", .bool(true))) }
        if take("\(d).rng") != nil { out.append(("rng", .bool(true))) }
        if let model = value("\(d).sound.model")?.stringValue ?? value("\(d).sound.name").map({ _ in "ich9" }) {
            if model == "ich9" || model == "ac97" {
                read.insert("\(d).sound")
                out.append(("audio", .map([("model", .string(model == "ich9" ? "hda" : "ac97"))])))
            }
        }
        if take("spec.template.spec.domain.clock.timer.rtc.tickPolicy")?.stringValue == "catchup" {
            _ = take("spec.template.spec.domain.clock.utc")
            out.append(("rtc", .map([("driftFix", .string("slew"))])))
        } else if value("spec.template.spec.domain.clock.utc")?.objectValue?.isEmpty == true {
            read.insert("spec.template.spec.domain.clock.utc")
        }
        return out
    }
}
