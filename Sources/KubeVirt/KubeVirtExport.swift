package import Manifest
package import Reconcile

// MARK: - KubeVirtExport

/// Turns a manifest VM into a KubeVirt `kubevirt.io/v1` `VirtualMachine`, and names every
/// field that has no KubeVirt equivalent (``Dropped``) instead of losing it silently.
///
/// Pure: no QEMU, no host files, no cluster. The field-by-field decisions are listed in
/// ``KubeVirtMapping/table`` (and `docs/kubevirt.md`, generated from it).
///
/// ```swift
/// let out = KubeVirtExport.export(vm, sourceMap: maps[vm.name], options: .init(namespace: "vms"))
/// for d in out.dropped { print(d) }   // vms/web.yaml:31:7: spec.disks[1].throttle: KubeVirt has no …
/// print(out.document.yaml())
/// ```
package enum KubeVirtExport {
    /// The label every exported object carries, so that `kubectl get vm -l` finds them.
    package static let ownershipLabel = (key: "app.kubernetes.io/managed-by", value: "qemuctl")

    /// What the command line adds to the manifests.
    package struct Options: Sendable, Hashable {
        /// `metadata.namespace` of every object; nil leaves it to kubectl's context.
        package var namespace: String?
        /// PersistentVolumeClaims that hold drives' data, by drive name (`root`) or by
        /// `VM/drive` (`web-1/root`, which wins).
        package var claims: [String: String]

        /// Creates options.
        package init(namespace: String? = nil, claims: [String: String] = [:]) {
            self.namespace = namespace
            self.claims = claims
        }
    }

    /// A manifest field that KubeVirt cannot express, with where it is written and why.
    package struct Dropped: Sendable, Hashable, CustomStringConvertible {
        /// The VM's name.
        package var vm: String
        /// The field, with concrete indices: `spec.disks[1].throttle`.
        package var path: String
        /// Where the field is written (or its closest written ancestor).
        package var location: SourceLocation
        /// One line: why it does not carry over, and what happens instead.
        package var reason: String

        /// Creates a report.
        package init(vm: String, path: String, location: SourceLocation, reason: String) {
            self.vm = vm
            self.path = path
            self.location = location
            self.reason = reason
        }

        /// `file:line:col: spec.disks[1].throttle (web-1): reason`.
        package var description: String { "\(location): \(path) (\(vm)): \(reason)" }
    }

    /// One exported VM.
    package struct Result: Sendable {
        /// The VM's name.
        package var name: String
        /// The `VirtualMachine` object.
        package var document: ManifestDocument
        /// What did not carry over, in manifest order.
        package var dropped: [Dropped]
        /// The keys of ``Options/claims`` this VM used.
        package var usedClaims: Set<String>
        /// The DataVolume and claim names made up for this VM's drives (`VM-DRIVE`), which must
        /// not collide with another VM's in the same namespace.
        package var generatedNames: [String]
    }

    /// Exports one VM.
    ///
    /// - Parameters:
    ///   - vm: the loaded, normalized VM.
    ///   - sourceMap: where its fields are written; without one, reports point at
    ///     ``VirtualMachine/source`` and fields that only matter when written (`arch`) are left out.
    ///   - options: namespace and claims.
    package static func export(_ vm: VirtualMachine, sourceMap: ManifestSourceMap?, options: Options = .init()) -> Result {
        var b = Builder(vm: vm, map: sourceMap, options: options)
        let document = b.build()
        return Result(name: vm.name, document: document, dropped: b.dropped, usedClaims: b.usedClaims,
                      generatedNames: b.generatedNames)
    }

    /// `bytes` as a Kubernetes quantity: the largest binary unit that divides it (`2Gi`, `512Mi`).
    package static func quantity(_ bytes: UInt64) -> String {
        for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] where bytes >= 1 << shift {
            if bytes % (1 << UInt64(shift)) == 0 { return "\(bytes >> UInt64(shift))\(unit)" }
        }
        return String(bytes)
    }

    /// The name of the DataVolume or claim made for a drive without `--pvc`: `VM-DRIVE`.
    package static func volumeName(vm: String, drive: String) -> String { "\(vm)-\(drive)" }

    /// A root-bus slot as KubeVirt writes a guest PCI address: `0000:00:06.0`.
    static func pciAddress(_ slot: Int) -> String {
        let hex = String(slot, radix: 16)
        return "0000:00:" + (hex.count < 2 ? "0" + hex : hex) + ".0"
    }

    /// KubeVirt's NIC model for a QEMU device model, or nil when KubeVirt has none.
    package static func nicModel(_ qemu: String) -> String? {
        switch qemu {
        case "virtio", "virtio-net", "virtio-net-pci", "virtio-net-pci-non-transitional", "virtio-net-device": "virtio"
        case "e1000", "e1000-82540em": "e1000"
        case "e1000e": "e1000e"
        case "igb": "igb"
        case "rtl8139": "rtl8139"
        case "ne2k_pci": "ne2k_pci"
        case "pcnet": "pcnet"
        default: nil
        }
    }
}

// MARK: - Builder

/// Builds one VirtualMachine object, collecting what is dropped on the way.
private struct Builder {
    typealias Doc = ManifestDocument
    let vm: VirtualMachine
    let map: ManifestSourceMap?
    let options: KubeVirtExport.Options
    var dropped: [KubeVirtExport.Dropped] = []
    var usedClaims: Set<String> = []
    var generatedNames: [String] = []

    // Pieces of the object, filled by the rules.
    var dataVolumeTemplates: [Doc] = []
    var disks: [Doc] = []
    var volumes: [Doc] = []
    var interfaces: [Doc] = []
    var networks: [Doc] = []
    var domain: [(String, Doc)] = []
    var devices: [(String, Doc)] = []
    var instance: [(String, Doc)] = []
    var features: [(String, Doc)] = []

    init(vm: VirtualMachine, map: ManifestSourceMap?, options: KubeVirtExport.Options) {
        self.vm = vm
        self.map = map
        self.options = options
    }

    var spec: VirtualMachineSpec { vm.spec }

    /// Reports `path` as dropped.
    mutating func drop(_ path: String, _ reason: String) {
        let at = map?.nearest(path) ?? vm.source
        dropped.append(.init(vm: vm.name, path: path, location: at, reason: reason))
    }

    /// Whether the manifest writes `path` (false without a source map).
    func writes(_ path: String) -> Bool { map?.writes(path) ?? false }

    mutating func build() -> Doc {
        // Each rule maps one part of the spec; a new manifest field is one more rule
        // (and one more row of KubeVirtMapping.table).
        runState()
        architecture()
        emulatorAndMachine()
        cpu()
        memory()
        firmwareAndBoot()
        for (i, d) in spec.disks.enumerated() { disk(d, index: i) }
        for (i, c) in spec.cdroms.enumerated() { cdrom(c, index: i) }
        for (i, n) in spec.networks.enumerated() { network(n, index: i) }
        displayAndConsole()
        devicesAndClock()
        cloudInitAndReadiness()

        var labels = vm.labels
        labels[KubeVirtExport.ownershipLabel.key] = KubeVirtExport.ownershipLabel.value
        let labelDoc = Doc.map(labels.keys.sorted().map { ($0, .string(labels[$0]!)) })

        var metadata: [(String, Doc)] = [("name", .string(vm.name))]
        if let ns = options.namespace { metadata.append(("namespace", .string(ns))) }
        metadata.append(("labels", labelDoc))

        var devicesDoc = devices
        if !disks.isEmpty { devicesDoc.insert(("disks", .list(disks)), at: 0) }
        if !interfaces.isEmpty { devicesDoc.insert(("interfaces", .list(interfaces)), at: disks.isEmpty ? 0 : 1) }
        var domainDoc = domain
        if !features.isEmpty { domainDoc.append(("features", .map(features))) }
        domainDoc.append(("devices", .map(devicesDoc)))

        var instanceSpec = instance
        instanceSpec.append(("domain", .map(domainDoc)))
        if !networks.isEmpty { instanceSpec.append(("networks", .list(networks))) }
        if !volumes.isEmpty { instanceSpec.append(("volumes", .list(volumes))) }

        var vmSpec: [(String, Doc)] = [("runStrategy", .string(runStrategy))]
        if !dataVolumeTemplates.isEmpty { vmSpec.append(("dataVolumeTemplates", .list(dataVolumeTemplates))) }
        vmSpec.append(("template", .map([
            ("metadata", .map([("labels", labelDoc)])),
            ("spec", .map(instanceSpec)),
        ])))
        return .map([
            ("apiVersion", .string("kubevirt.io/v1")),
            ("kind", .string("VirtualMachine")),
            ("metadata", .map(metadata)),
            ("spec", .map(vmSpec)),
        ])
    }

    // MARK: Run state

    var runStrategy = "Always"

    /// running → Always; paused → Always, started paused; stopped → Halted.
    /// (When `spec.restartPolicy` exists: Always/RerunOnFailure/Manual from it while running.)
    mutating func runState() {
        switch spec.runState {
        case .running: runStrategy = "Always"
        case .paused:
            runStrategy = "Always"
            instance.append(("startStrategy", .string("Paused")))
        case .stopped: runStrategy = "Halted"
        }
    }

    // MARK: Architecture, emulator, machine

    mutating func architecture() {
        guard writes("spec.arch") else { return }
        switch spec.arch {
        case .amd64, .arm64, .s390x, .ppc64le:
            instance.append(("architecture", .string(spec.arch.rawValue)))
        default:
            drop("spec.arch", "KubeVirt runs amd64, arm64, s390x and ppc64le guests; \(spec.arch.rawValue) is not exported")
        }
    }

    mutating func emulatorAndMachine() {
        if spec.emulator != nil {
            drop("spec.emulator", "KubeVirt runs its own QEMU inside the virt-launcher pod")
        }
        let m = spec.machine
        if let type = m.type {
            if type == "q35" || type.hasPrefix("pc-q35") || type == "virt" || type.hasPrefix("virt-")
                || type.hasPrefix("s390-ccw-virtio") || type.hasPrefix("pseries") {
                domain.append(("machine", .map([("type", .string(type))])))
            } else {
                drop("spec.machine.type", "KubeVirt accepts q35 (x86), virt (arm64) and the cluster's emulatedMachines, not '\(type)'; the cluster's default is used")
            }
        }
        if m.accel == .tcg {
            drop("spec.machine.accel", "software emulation is a cluster-wide setting in KubeVirt (useEmulation), not a VM field")
        }
        if m.hotplugPorts != VirtualMachineSpec.Machine().hotplugPorts {
            drop("spec.machine.hotplugPorts", "KubeVirt sizes the PCIe hot-plug ports itself")
        }
        if m.dumpGuestCore {
            drop("spec.machine.dumpGuestCore", "KubeVirt has no field for guest memory in QEMU core dumps")
        }
    }

    // MARK: CPU and memory

    mutating func cpu() {
        let c = spec.cpu
        var out: [(String, Doc)] = []
        let cores = c.cores ?? 1, threads = c.threads ?? 1
        let perSocket = cores * threads
        var sockets = c.count, maxSockets = c.maxCount
        if perSocket > 1, c.count % perSocket == 0, c.maxCount % perSocket == 0 {
            // KubeVirt hot-plugs whole sockets: the topology carries over when counts are whole sockets.
            sockets = c.count / perSocket
            maxSockets = c.maxCount / perSocket
            out = [("sockets", .int(sockets)), ("cores", .int(cores)), ("threads", .int(threads))]
        } else {
            if perSocket > 1 {
                let path = c.cores.map { _ in "spec.cpu.cores" } ?? "spec.cpu.threads"
                drop(path, "KubeVirt hot-plugs whole sockets, and count \(c.count) and maxCount \(c.maxCount) are not both multiples of cores × threads = \(perSocket); exported as \(c.count) sockets of 1 core (at most \(c.maxCount))")
            }
            out = [("sockets", .int(sockets)), ("cores", .int(1)), ("threads", .int(1))]
        }
        if maxSockets > sockets { out.append(("maxSockets", .int(maxSockets))) }
        if let model = c.model {
            switch model {
            case "host": out.append(("model", .string("host-passthrough")))
            case "max":
                drop("spec.cpu.model", "'max' is QEMU's; KubeVirt's models are host-passthrough, host-model and libvirt's named models (default host-model)")
            default: out.append(("model", .string(model)))
            }
        }
        if !c.features.isEmpty {
            let list: [Doc] = c.features.map { f in
                let disable = f.hasPrefix("-")
                let name = f.hasPrefix("-") || f.hasPrefix("+") ? String(f.dropFirst()) : f
                return .map([("name", .string(name)), ("policy", .string(disable ? "disable" : "require"))])
            }
            out.append(("features", .list(list)))
        }
        domain.append(("cpu", .map(out)))
    }

    mutating func memory() {
        let m = spec.memory
        var out: [(String, Doc)] = [("guest", .string(KubeVirtExport.quantity(m.size)))]
        if let max = m.max, max > m.size {
            // KubeVirt's webhook (memory.ValidateLiveUpdateMemory) takes maxGuest only for amd64
            // guests of at least 1Gi, with both sizes in whole 2Mi blocks.
            let block: UInt64 = 2 << 20
            if spec.arch == .amd64, m.size >= 1 << 30, m.size % block == 0, max % block == 0 {
                out.append(("maxGuest", .string(KubeVirtExport.quantity(max))))
            } else {
                drop("spec.memory.max", "KubeVirt hot-plugs memory only for amd64 guests with at least 1Gi, in 2Mi blocks; exported without hot-plug")
            }
        }
        domain.append(("memory", .map(out)))
        let defaults = VirtualMachineSpec.Memory()
        if m.max != nil, m.slots != defaults.slots {
            drop("spec.memory.slots", "KubeVirt chooses the memory hot-plug slots")
        }
        if m.backend != .ram {
            drop("spec.memory.backend", "KubeVirt chooses the RAM backing (hugepages through domain.memory.hugepages)")
        }
        if m.path != nil { drop("spec.memory.path", "a host path does not exist in the cluster") }
        if m.share { drop("spec.memory.share", "KubeVirt shares guest RAM itself when a device needs it (virtiofs)") }
        if m.prealloc { drop("spec.memory.prealloc", "KubeVirt has no field to preallocate guest RAM") }
        if m.lock { drop("spec.memory.lock", "KubeVirt has no field to lock guest RAM in host memory") }
    }

    // MARK: Firmware and boot

    mutating func firmwareAndBoot() {
        let f = spec.firmware
        switch f.type {
        case .bios:
            domain.append(("firmware", .map([("bootloader", .map([("bios", .map([]))]))])))
        case .efi:
            // Secure boot when the code image is a secure-boot build (OVMF_CODE.secboot.fd, …).
            let secure = f.code.map { $0.lowercased().contains("secboot") || $0.lowercased().contains(".ms.") } ?? false
            domain.append(("firmware", .map([("bootloader", .map([("efi", .map([("secureBoot", .bool(secure))]))]))])))
            if secure { features.append(("smm", .map([("enabled", .bool(true))]))) }
        }
        if f.code != nil {
            drop("spec.firmware.code", "KubeVirt ships its own firmware images; only secure boot carries over (read from the image's name: *secboot*)")
        }
        if f.vars != nil {
            drop("spec.firmware.vars", "a host path does not exist in the cluster; KubeVirt keeps EFI variables only with efi.persistent and its VMPersistentState feature")
        }
        let b = spec.boot
        let kernelReason = "KubeVirt boots a kernel only from a container image (firmware.kernelBoot.container); a host path does not carry over"
        if b.kernel != nil { drop("spec.boot.kernel", kernelReason) }
        if b.initrd != nil { drop("spec.boot.initrd", kernelReason) }
        if b.cmdline != nil { drop("spec.boot.cmdline", "kernel arguments need firmware.kernelBoot with a container image") }
        if b.order != nil {
            drop("spec.boot.order", "KubeVirt orders boot per device: set bootIndex on disks, CD-ROMs and NICs instead")
        }
        if b.menu { drop("spec.boot.menu", "KubeVirt has no field for the firmware boot menu") }
        if b.strict { drop("spec.boot.strict", "KubeVirt has no field for strict boot") }
    }

    // MARK: Disks and CD-ROMs

    /// The claim `--pvc` gives for a drive, recorded as used.
    mutating func claim(for drive: String) -> String? {
        let scoped = "\(vm.name)/\(drive)"
        if let c = options.claims[scoped] {
            usedClaims.insert(scoped)
            return c
        }
        if let c = options.claims[drive] {
            usedClaims.insert(drive)
            return c
        }
        return nil
    }

    /// A volume on claim `VM-DRIVE`, made up for a drive that has none.
    mutating func generatedClaimVolume(_ name: String) -> String {
        let claim = KubeVirtExport.volumeName(vm: vm.name, drive: name)
        generatedNames.append(claim)
        pvcVolume(name, claim: claim)
        return claim
    }

    mutating func pvcVolume(_ name: String, claim: String, readOnly: Bool = false) {
        var source: [(String, Doc)] = [("claimName", .string(claim))]
        if readOnly { source.append(("readOnly", .bool(true))) }
        volumes.append(.map([("name", .string(name)), ("persistentVolumeClaim", .map(source))]))
    }

    mutating func disk(_ d: VirtualMachineSpec.Disk, index i: Int) {
        let at = "spec.disks[\(i)]"
        var target: [(String, Doc)] = []
        switch d.interface {
        case .virtio: target.append(("bus", .string("virtio")))
        case .scsi: target.append(("bus", .string("scsi")))
        case .ide: target.append(("bus", .string("sata")))
        case .nvme:
            target.append(("bus", .string("virtio")))
            drop("\(at).interface", "KubeVirt has no NVMe bus; exported as virtio (the guest needs virtio drivers)")
        }
        if d.readOnly { target.append(("readonly", .bool(true))) }
        if let slot = d.pciSlot { target.append(("pciAddress", .string(KubeVirtExport.pciAddress(slot)))) }
        var entry: [(String, Doc)] = [("name", .string(d.name)), ("disk", .map(target))]
        if let boot = d.bootIndex { entry.append(("bootOrder", .int(boot + 1))) }
        if let serial = d.serial { entry.append(("serial", .string(serial))) }
        switch d.cache {
        case .writeback: break
        case .none, .writethrough: entry.append(("cache", .string(d.cache.rawValue)))
        case .directsync, .unsafe:
            drop("\(at).cache", "KubeVirt's cache modes are none, writethrough and writeback; '\(d.cache.rawValue)' becomes KubeVirt's default")
        }
        disks.append(.map(entry))
        if d.discard { drop("\(at).discard", "KubeVirt has no per-disk discard field") }
        if let b = d.backing { drop("\(at).file.backing", "a host backing chain does not move to the cluster: the claim must hold the image with \(b.path) merged in (qemu-img convert)") }
        if d.throttle != nil { drop("\(at).throttle", "KubeVirt has no per-disk I/O limits (use the storage class's QoS)") }

        let generated = KubeVirtExport.volumeName(vm: vm.name, drive: d.name)
        if let claim = claim(for: d.name) {
            pvcVolume(d.name, claim: claim)
            if case .file(_, let format) = d.backend, format != .raw {
                drop("\(at).file.format", "KubeVirt reads raw images from a claim; claim \(claim) must hold the image converted to raw (CDI converts \(format.rawValue) on import)")
            }
            return
        }
        switch d.backend {
        case .file:
            if let base = d.createFrom {
                _ = generatedClaimVolume(d.name)
                drop("\(at).create.from", "the base image \(base.path) does not move to the cluster: the disk refers to claim \(generated), which must hold the image as raw (import the base with CDI; or --pvc \(d.name)=CLAIM)")
            } else if let size = d.createSize {
                dataVolumeTemplates.append(.map([
                    ("metadata", .map([("name", .string(generated))])),
                    ("spec", .map([
                        ("source", .map([("blank", .map([]))])),
                        ("storage", .map([("resources", .map([("requests", .map([
                            ("storage", .string(KubeVirtExport.quantity(size))),
                        ]))]))])),
                    ])),
                ]))
                volumes.append(.map([("name", .string(d.name)), ("dataVolume", .map([("name", .string(generated))]))]))
                generatedNames.append(generated)
                drop("\(at).file.path", "the host image's content does not move: a blank \(KubeVirtExport.quantity(size)) DataVolume \(generated) is created (give --pvc \(d.name)=CLAIM for an imported image)")
            } else {
                _ = generatedClaimVolume(d.name)
                drop("\(at).file.path", "a host path does not exist in the cluster: the disk refers to claim \(generated), which must hold the image as raw (virtctl image-upload; or --pvc \(d.name)=CLAIM)")
            }
        case .nbd:
            _ = generatedClaimVolume(d.name)
            drop("\(at).nbd", "KubeVirt has no NBD volumes: the disk refers to claim \(generated) (or --pvc \(d.name)=CLAIM)")
        case .rbd:
            _ = generatedClaimVolume(d.name)
            drop("\(at).rbd", "KubeVirt reaches Ceph RBD through a claim of a Ceph CSI storage class: the disk refers to claim \(generated) (or --pvc \(d.name)=CLAIM)")
        case .iscsi:
            _ = generatedClaimVolume(d.name)
            drop("\(at).iscsi", "KubeVirt reaches iSCSI LUNs through a claim (an iSCSI persistent volume): the disk refers to claim \(generated) (or --pvc \(d.name)=CLAIM)")
        }
    }

    mutating func cdrom(_ c: VirtualMachineSpec.CDROM, index i: Int) {
        let at = "spec.cdroms[\(i)]"
        let claim = claim(for: c.name)
        guard claim != nil || c.path != nil else {
            drop(at, "an empty drive: KubeVirt needs a volume behind every drive (give --pvc \(c.name)=CLAIM for one holding an ISO)")
            return
        }
        let bus = c.interface == .scsi ? "scsi" : "sata"
        var entry: [(String, Doc)] = [
            ("name", .string(c.name)), ("cdrom", .map([("bus", .string(bus)), ("readonly", .bool(true))])),
        ]
        if let boot = c.bootIndex { entry.append(("bootOrder", .int(boot + 1))) }
        disks.append(.map(entry))
        if let claim {
            pvcVolume(c.name, claim: claim)
        } else {
            let generated = generatedClaimVolume(c.name)
            drop("\(at).path", "a host path does not exist in the cluster: the drive refers to claim \(generated), which must hold the ISO (virtctl image-upload; or --pvc \(c.name)=CLAIM)")
        }
    }

    // MARK: Networks

    mutating func network(_ n: VirtualMachineSpec.Network, index i: Int) {
        let at = "spec.networks[\(i)]"
        var entry: [(String, Doc)] = [("name", .string(n.name))]
        var net: [(String, Doc)] = [("name", .string(n.name))]
        switch n.backend {
        case .user(let u):
            if networks.contains(where: { if case .map(let m) = $0 { m.contains { $0.0 == "pod" } } else { false } }) {
                drop("\(at).user", "KubeVirt gives a VM one pod network; this second user-mode NIC is not exported")
                return
            }
            entry.append(("masquerade", .map([])))
            var pod: [(String, Doc)] = []
            if u.net != VirtualMachineSpec.Network.User().net { pod.append(("vmNetworkCIDR", .string(u.net))) }
            net.append(("pod", .map(pod)))
            if u.host != nil { drop("\(at).user.host", "masquerade fixes the gateway address (the first of the VM network)") }
            if u.dns != nil { drop("\(at).user.dns", "masquerade hands out the pod's DNS servers") }
            if u.dhcpStart != nil { drop("\(at).user.dhcpStart", "masquerade gives the guest one fixed address") }
            if u.restrict { drop("\(at).user.restrict", "isolating a VM is a Kubernetes NetworkPolicy, not a VM field") }
            if let h = u.hostname, !StringFormat.name.accepts(h) {
                drop("\(at).user.hostname", "KubeVirt's hostname must be a DNS label (lower-case letters, digits, '-'); '\(h)' is not")
            } else if let h = u.hostname {
                if instance.contains(where: { $0.0 == "hostname" }) {
                    drop("\(at).user.hostname", "KubeVirt has one hostname per VM; the first NIC's is kept")
                } else {
                    instance.append(("hostname", .string(h)))
                }
            }
            if let d = u.domain {
                instance.append(("dnsConfig", .map([("searches", .list([.string(d)]))])))
            }
            for (k, _) in u.hostfwd.enumerated() {
                drop("\(at).user.hostfwd[\(k)]", "port forwards from the host become a Kubernetes Service: virtctl expose vm \(vm.name) --port=…")
            }
        case .tap(let t):
            let name = t.bridge.flatMap { StringFormat.name.accepts($0) ? $0 : nil } ?? n.name
            entry.append(("bridge", .map([])))
            net.append(("multus", .map([("networkName", .string(name))])))
            drop("\(at).tap", "host tap devices do not exist in the cluster: exported as Multus network '\(name)' with bridge binding (create that NetworkAttachmentDefinition)")
        case .bridge(let hostBridge, _):
            // A NetworkAttachmentDefinition's name is a DNS name: the NIC's when the bridge's is not.
            let bridge = StringFormat.name.accepts(hostBridge) ? hostBridge : n.name
            entry.append(("bridge", .map([])))
            net.append(("multus", .map([("networkName", .string(bridge))])))
            drop("\(at).bridge", "host bridges do not exist in the cluster: exported as Multus network '\(bridge)' with bridge binding (create that NetworkAttachmentDefinition)")
        case .socket, .stream, .vde:
            let kind = switch n.backend { case .socket: "socket"; case .stream: "stream"; default: "vde" }
            entry.append(("bridge", .map([])))
            net.append(("multus", .map([("networkName", .string(n.name))])))
            drop("\(at).\(kind)", "KubeVirt has no \(kind) networking: exported as Multus network '\(n.name)' with bridge binding (create that NetworkAttachmentDefinition)")
        }
        if let model = KubeVirtExport.nicModel(n.model) {
            entry.append(("model", .string(model)))
        } else {
            entry.append(("model", .string("virtio")))
            drop("\(at).model", "KubeVirt's NIC models are virtio, e1000, e1000e, igb, rtl8139, ne2k_pci and pcnet; '\(n.model)' is exported as virtio")
        }
        entry.append(("macAddress", .string(n.mac)))
        if n.link == .down { entry.append(("state", .string("down"))) }
        if let boot = n.bootIndex { entry.append(("bootOrder", .int(boot + 1))) }
        if let slot = n.pciSlot { entry.append(("pciAddress", .string(KubeVirtExport.pciAddress(slot)))) }
        interfaces.append(.map(entry))
        networks.append(.map(net))
    }

    // MARK: Display, serial, devices, clock

    mutating func displayAndConsole() {
        let d = spec.display
        if let vnc = d.vnc {
            if vnc.listen != VirtualMachineSpec.Display.VNC().listen {
                drop("spec.display.vnc.listen", "KubeVirt serves VNC through its API only (virtctl vnc \(vm.name))")
            }
            if vnc.passwordFrom != nil {
                drop("spec.display.vnc.passwordFrom", "virtctl vnc is authorized by Kubernetes RBAC; KubeVirt has no VNC password")
            }
        }
        if d.spice != nil { drop("spec.display.spice", "KubeVirt has no SPICE server; its display is VNC (virtctl vnc)") }
        if d.vnc == nil, d.spice == nil {
            // No display in the manifest: none in the cluster either (KubeVirt adds one by default).
            devices.append(("autoattachGraphicsDevice", .bool(false)))
        }
        if writes("spec.display.video"), d.video != .std, d.video != .none {
            drop("spec.display.video", "KubeVirt picks the video device (VGA, or bochs with EFI) unless its VideoConfig feature gate is on")
        }
        if spec.networks.isEmpty {
            // No NIC in the manifest: none in the cluster either (KubeVirt adds a pod NIC by default).
            devices.append(("autoattachPodInterface", .bool(false)))
        }
        // The serial console is always there in KubeVirt (virtctl console); the log is a field.
        if spec.serial.log { devices.append(("logSerialConsole", .bool(true))) }
        if spec.spiceAgent { drop("spec.spiceAgent", "KubeVirt has no SPICE, so no SPICE agent channel") }
    }

    mutating func devicesAndClock() {
        // The guest agent channel is always there in KubeVirt: spec.guestAgent needs no field.
        var inputs: [Doc] = []
        func tablet(_ name: String) -> Doc {
            .map([("name", .string(name)), ("type", .string("tablet")), ("bus", .string("usb"))])
        }
        if spec.usbTablet { inputs.append(tablet("tablet")) }
        let u = spec.usb
        if u.controller != VirtualMachineSpec.USB().controller {
            drop("spec.usb.controller", "KubeVirt adds the USB controller its devices need")
        }
        for (i, dev) in u.devices.enumerated() {
            switch dev.type {
            case .tablet:
                if spec.usbTablet || inputs.count > 0 {
                    drop("spec.usb.devices[\(i)]", "KubeVirt takes one tablet per VM; this one is not exported")
                } else {
                    inputs.append(tablet(dev.name))
                }
            case .keyboard, .mouse:
                drop("spec.usb.devices[\(i)]", "KubeVirt's only input device is a tablet; a USB \(dev.type.rawValue) is not exported")
            case .host:
                drop("spec.usb.devices[\(i)]", "USB pass-through is KubeVirt's hostDevices, which the cluster must permit by resource name (permittedHostDevices); not exported")
            }
        }
        if !inputs.isEmpty { devices.append(("inputs", .list(inputs))) }
        devices.append(("autoattachMemBalloon", .bool(spec.balloon)))
        if spec.rng { devices.append(("rng", .map([]))) }
        if let audio = spec.audio {
            switch audio.model {
            case .hda: devices.append(("sound", .map([("name", .string("audio")), ("model", .string("ich9"))])))
            case .ac97: devices.append(("sound", .map([("name", .string("audio")), ("model", .string("ac97"))])))
            case .sb16: drop("spec.audio.model", "KubeVirt's sound cards are ich9 (HDA) and ac97")
            }
            if audio.backend != .none {
                drop("spec.audio.backend", "KubeVirt has no host audio backend; the card is there without sound output on the node")
            }
        }
        let r = spec.rtc, defaults = VirtualMachineSpec.RTC()
        if r.base == .localtime {
            drop("spec.rtc.base", "the host's local time zone is not known to the cluster; set domain.clock.timezone by hand")
        }
        if r.clock != defaults.clock {
            drop("spec.rtc.clock", "KubeVirt's guest clock follows the host clock; '\(r.clock.rawValue)' has no field")
        }
        if r.driftFix == .slew {
            domain.append(("clock", .map([
                ("utc", .map([])), ("timer", .map([("rtc", .map([("tickPolicy", .string("catchup"))]))])),
            ])))
        }
    }

    // MARK: cloud-init, readiness

    /// `spec.cloudInit` → a `cloudInitNoCloud` volume on a virtio disk (inline texts inline, the keys merged
    /// into inline user-data; a file or variable becomes a Secret reference, never its value);
    /// `spec.readiness` → the VMI's `readinessProbe` (guest agent ping or TCP socket).
    mutating func cloudInitAndReadiness() {
        if let c = spec.cloudInit {
            let name = "cloudinitdisk"
            var source: [(String, Doc)] = []
            switch c.inlineMergedUserData() {
            case .success(let text)?: source.append(("userData", .string(text)))
            case .failure(let error)?: drop("spec.cloudInit.sshAuthorizedKeys", "\(error)")
            case nil:
                let secret = "\(vm.name)-userdata"
                source.append(("secretRef", .map([("name", .string(secret))])))
                drop("spec.cloudInit.userData", "a file or variable is a secret: create Secret \(secret) with key userdata holding it (kubectl create secret generic \(secret) --from-file=userdata=FILE)")
                if !c.sshAuthorizedKeys.isEmpty {
                    drop("spec.cloudInit.sshAuthorizedKeys", "the keys cannot be merged into user-data kept in a Secret: put them in its ssh_authorized_keys")
                }
            }
            switch c.networkConfig {
            case .inline(let text)?: source.append(("networkData", .string(text)))
            case .secret?:
                let secret = "\(vm.name)-networkdata"
                source.append(("networkDataSecretRef", .map([("name", .string(secret))])))
                drop("spec.cloudInit.networkConfig", "a file or variable is a secret: create Secret \(secret) with key networkdata holding it")
            case nil: break
            }
            if !c.metaData.isEmpty {
                drop("spec.cloudInit.metaData", "KubeVirt's cloudInitNoCloud has no meta-data field (it writes instance-id itself)")
            }
            if c.instanceID != nil {
                drop("spec.cloudInit.instanceID", "KubeVirt sets the instance-id itself (the VMI's uid)")
            }
            disks.append(.map([("name", .string(name)), ("disk", .map([("bus", .string("virtio"))]))]))
            volumes.append(.map([("name", .string(name)), ("cloudInitNoCloud", .map(source))]))
        }
        switch spec.readiness {
        case .guestAgent?:
            instance.append(("readinessProbe", .map([("guestAgentPing", .map([])), ("initialDelaySeconds", .int(10)), ("periodSeconds", .int(10))])))
        case .tcpPort(let port)?:
            instance.append(("readinessProbe", .map([("tcpSocket", .map([("port", .int(port))])), ("initialDelaySeconds", .int(10)), ("periodSeconds", .int(10))])))
        case .serialMatch?:
            drop("spec.readiness.serialMatch", "KubeVirt's probes are HTTP, TCP, exec and guest agent ones; none reads the serial console")
        case nil: break
        }
    }
}
