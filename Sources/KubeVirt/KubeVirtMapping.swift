import Manifest
package import Reconcile

// MARK: - KubeVirtMapping

/// What ``KubeVirtExport`` does with each manifest field, as data: the table of
/// `docs/kubevirt.md` (``markdown()``), and a test checks that every field of
/// ``FieldTable`` has a row (its own, or an ancestor's that covers its children).
///
/// A new manifest field (`spec.restartPolicy`, `spec.cloudInit`, `spec.readiness`,
/// `disks[].create.from`) is one more row here and one more rule in the exporter.
package enum KubeVirtMapping {
    /// One row: a manifest field and what becomes of it.
    package struct Row: Sendable, Hashable {
        /// The manifest field, as ``FieldTable`` names it (`spec.disks[].throttle`). Covers
        /// the fields below it unless they have rows of their own.
        package var field: String
        /// The KubeVirt field it becomes (under `spec.template.spec` unless the path says
        /// otherwise), or nil when it is dropped.
        package var kubevirt: String?
        /// How the value maps, or why it is dropped.
        package var note: String

        /// Creates a row.
        package init(_ field: String, _ kubevirt: String?, _ note: String) {
            self.field = field
            self.kubevirt = kubevirt
            self.note = note
        }
    }

    /// Every row, in manifest order.
    package static let table: [Row] = [
        Row("apiVersion", "apiVersion", "always `kubevirt.io/v1`"),
        Row("kind", "kind", "always `VirtualMachine`"),
        Row("metadata", "metadata", "`namespace` from `--namespace`"),
        Row("metadata.name", "metadata.name", "unchanged (already a DNS label); also names generated DataVolumes and claims (`VM-DRIVE`)"),
        Row("metadata.labels", "metadata.labels, spec.template.metadata.labels", "unchanged (already Kubernetes label syntax), plus `app.kubernetes.io/managed-by: qemuctl`"),
        Row("spec", "spec.template.spec", "the rows below"),
        Row("spec.runState", "spec.runStrategy", "running → `Always`; paused → `Always` with `startStrategy: Paused`; stopped → `Halted`"),
        Row("spec.arch", "architecture", "only when written: amd64, arm64, s390x, ppc64le; other architectures dropped: KubeVirt does not run them"),
        Row("spec.emulator", nil, "KubeVirt runs its own QEMU inside the virt-launcher pod"),
        Row("spec.machine", "domain.machine", "the rows below"),
        Row("spec.machine.type", "domain.machine.type", "q35, pc-q35-*, virt*, s390-ccw-virtio*, pseries*; others dropped (KubeVirt's default emulatedMachines refuse them)"),
        Row("spec.machine.accel", nil, "kvm and auto need nothing (KubeVirt uses KVM); tcg dropped: software emulation is a cluster setting (useEmulation)"),
        Row("spec.machine.hotplugPorts", nil, "KubeVirt sizes the hot-plug ports itself (reported when not the default)"),
        Row("spec.machine.dumpGuestCore", nil, "no KubeVirt field (reported when true)"),
        Row("spec.cpu", "domain.cpu", "the rows below"),
        Row("spec.cpu.model", "domain.cpu.model", "host → `host-passthrough`; named models unchanged; `max` dropped (QEMU only)"),
        Row("spec.cpu.count", "domain.cpu.sockets", "vCPUs as sockets of 1 core, 1 thread: KubeVirt hot-plugs whole sockets"),
        Row("spec.cpu.maxCount", "domain.cpu.maxSockets", "when larger than count"),
        Row("spec.cpu.sockets", "domain.cpu.sockets", "a topology whose cores × threads divides count and maxCount carries over (sockets = count / (cores × threads)); otherwise cores/threads are dropped and vCPUs exported as sockets"),
        Row("spec.cpu.cores", "domain.cpu.cores", "see sockets"),
        Row("spec.cpu.threads", "domain.cpu.threads", "see sockets"),
        Row("spec.cpu.features", "domain.cpu.features", "`+name`/`name` → `{name, policy: require}`, `-name` → `{name, policy: disable}`"),
        Row("spec.memory", "domain.memory", "the rows below"),
        Row("spec.memory.size", "domain.memory.guest", "a binary quantity (`2Gi`)"),
        Row("spec.memory.max", "domain.memory.maxGuest", "when larger than size, for amd64 guests of at least 1Gi with both sizes in 2Mi blocks (KubeVirt's webhook refuses others: then dropped)"),
        Row("spec.memory.slots", nil, "KubeVirt chooses the slots (reported when not the default)"),
        Row("spec.memory.backend", nil, "KubeVirt chooses the RAM backing (hugepages are domain.memory.hugepages); reported when not ram"),
        Row("spec.memory.path", nil, "a host path does not exist in the cluster"),
        Row("spec.memory.share", nil, "KubeVirt shares RAM itself when a device needs it"),
        Row("spec.memory.prealloc", nil, "no KubeVirt field"),
        Row("spec.memory.lock", nil, "no KubeVirt field"),
        Row("spec.firmware", "domain.firmware.bootloader", "the rows below"),
        Row("spec.firmware.type", "domain.firmware.bootloader.bios / .efi", "bios → `bios: {}`; efi → `efi: {secureBoot}` (with `features.smm` when secure)"),
        Row("spec.firmware.code", "domain.firmware.bootloader.efi.secureBoot", "the path is dropped (KubeVirt ships its own images); secureBoot is true when the image's name says secboot"),
        Row("spec.firmware.vars", nil, "a host path; KubeVirt keeps EFI variables only with efi.persistent (VMPersistentState feature gate)"),
        Row("spec.boot", nil, "the rows below"),
        Row("spec.boot.kernel", nil, "KubeVirt boots kernels only from container images (firmware.kernelBoot.container)"),
        Row("spec.boot.initrd", nil, "as kernel"),
        Row("spec.boot.cmdline", nil, "kernelArgs need firmware.kernelBoot with a container image"),
        Row("spec.boot.order", nil, "KubeVirt orders boot per device: use bootIndex"),
        Row("spec.boot.menu", nil, "no KubeVirt field (reported when true)"),
        Row("spec.boot.strict", nil, "no KubeVirt field (reported when true)"),
        Row("spec.disks", "domain.devices.disks, volumes, spec.dataVolumeTemplates", "one disk, one volume of the same name each"),
        Row("spec.disks[].name", "domain.devices.disks[].name, volumes[].name", "unchanged"),
        Row("spec.disks[].file", "volumes[].dataVolume / .persistentVolumeClaim", "with create.size: a blank DataVolume `VM-DISK` of that size (the host image's content does not move: reported); with `--pvc DISK=CLAIM`: that claim (not reported; a non-raw format is); otherwise claim `VM-DISK` (reported); file.backing is dropped (the claim must hold the merged image: reported)"),
        Row("spec.disks[].nbd", "volumes[].persistentVolumeClaim", "KubeVirt has no NBD: claim `VM-DISK` or `--pvc` (reported without --pvc)"),
        Row("spec.disks[].rbd", "volumes[].persistentVolumeClaim", "Ceph RBD through a Ceph CSI claim: `VM-DISK` or `--pvc` (reported without --pvc)"),
        Row("spec.disks[].iscsi", "volumes[].persistentVolumeClaim", "iSCSI through a claim: `VM-DISK` or `--pvc` (reported without --pvc)"),
        Row("spec.disks[].interface", "domain.devices.disks[].disk.bus", "virtio → virtio, scsi → scsi, ide → sata (KubeVirt has no IDE); nvme → virtio, reported"),
        Row("spec.disks[].serial", "domain.devices.disks[].serial", "unchanged"),
        Row("spec.disks[].readOnly", "domain.devices.disks[].disk.readonly", "unchanged"),
        Row("spec.disks[].cache", "domain.devices.disks[].cache", "none, writethrough unchanged; writeback is left to KubeVirt; directsync and unsafe dropped"),
        Row("spec.disks[].discard", nil, "no per-disk KubeVirt field (reported when true)"),
        Row("spec.disks[].bootIndex", "domain.devices.disks[].bootOrder", "bootIndex + 1 (KubeVirt counts from 1)"),
        Row("spec.disks[].pciAddress", "domain.devices.disks[].disk.pciAddress", "0xHH → 0000:00:HH.0"),
        Row("spec.disks[].create", "spec.dataVolumeTemplates[].spec.storage.resources.requests.storage", "create.size as a quantity, `source: {blank: {}}`; with create.from: claim `VM-DISK` (the base does not move: reported)"),
        Row("spec.disks[].throttle", nil, "KubeVirt has no per-disk I/O limits (a storage class's QoS is the cluster's way)"),
        Row("spec.cdroms", "domain.devices.disks[].cdrom, volumes", "a cdrom disk (readonly) and a volume each"),
        Row("spec.cdroms[].name", "domain.devices.disks[].name, volumes[].name", "unchanged"),
        Row("spec.cdroms[].path", "volumes[].persistentVolumeClaim", "claim from `--pvc CD=CLAIM`, else claim `VM-CD` (path reported); an empty drive is dropped (KubeVirt needs a volume behind every drive)"),
        Row("spec.cdroms[].interface", "domain.devices.disks[].cdrom.bus", "ide → sata, scsi → scsi"),
        Row("spec.cdroms[].bootIndex", "domain.devices.disks[].bootOrder", "bootIndex + 1"),
        Row("spec.networks", "domain.devices.interfaces, networks", "one interface, one network of the same name each"),
        Row("spec.networks[].name", "domain.devices.interfaces[].name, networks[].name", "unchanged"),
        Row("spec.networks[].user", "networks[].pod, interfaces[].masquerade", "the pod network with masquerade; a second user NIC is dropped (one pod network per VM)"),
        Row("spec.networks[].user.net", "networks[].pod.vmNetworkCIDR", "when not the default 10.0.2.0/24"),
        Row("spec.networks[].user.host", nil, "masquerade fixes the gateway address"),
        Row("spec.networks[].user.dns", nil, "masquerade hands out the pod's DNS servers"),
        Row("spec.networks[].user.dhcpStart", nil, "masquerade gives the guest one fixed address"),
        Row("spec.networks[].user.restrict", nil, "isolation is a Kubernetes NetworkPolicy"),
        Row("spec.networks[].user.hostname", "hostname", "the first one"),
        Row("spec.networks[].user.domain", "dnsConfig.searches", "one search domain"),
        Row("spec.networks[].user.hostfwd", nil, "port forwards become a Service (virtctl expose); each rule reported"),
        Row("spec.networks[].tap", "networks[].multus, interfaces[].bridge", "host taps do not exist in the cluster: a Multus network named after tap.bridge (or the NIC) with bridge binding; reported"),
        Row("spec.networks[].bridge", "networks[].multus, interfaces[].bridge", "a Multus network named after the host bridge, bridge binding; reported (create the NetworkAttachmentDefinition)"),
        Row("spec.networks[].socket", "networks[].multus, interfaces[].bridge", "no KubeVirt equivalent: a Multus network named after the NIC; reported"),
        Row("spec.networks[].stream", "networks[].multus, interfaces[].bridge", "as socket"),
        Row("spec.networks[].vde", "networks[].multus, interfaces[].bridge", "as socket"),
        Row("spec.networks[].model", "domain.devices.interfaces[].model", "virtio-net-pci → virtio; e1000, e1000e, igb, rtl8139, ne2k_pci, pcnet unchanged; others → virtio, reported"),
        Row("spec.networks[].mac", "domain.devices.interfaces[].macAddress", "always, derived ones included (the guest keeps its address)"),
        Row("spec.networks[].link", "domain.devices.interfaces[].state", "down → `down`"),
        Row("spec.networks[].bootIndex", "domain.devices.interfaces[].bootOrder", "bootIndex + 1"),
        Row("spec.networks[].pciAddress", "domain.devices.interfaces[].pciAddress", "0xHH → 0000:00:HH.0"),
        Row("spec.display", "domain.devices.autoattachGraphicsDevice", "KubeVirt always has a VNC display (virtctl vnc); without vnc and spice it is turned off"),
        Row("spec.display.vnc", nil, "KubeVirt's VNC is reached through its API (virtctl vnc)"),
        Row("spec.display.vnc.listen", nil, "reported when not none: KubeVirt serves VNC through its API only"),
        Row("spec.display.vnc.passwordFrom", nil, "virtctl vnc is authorized by RBAC; no VNC password"),
        Row("spec.display.spice", nil, "KubeVirt has no SPICE"),
        Row("spec.display.video", nil, "std and none need nothing; others reported (KubeVirt picks VGA or bochs unless its VideoConfig feature gate is on)"),
        Row("spec.serial", nil, "KubeVirt always has a serial console (virtctl console)"),
        Row("spec.serial.log", "domain.devices.logSerialConsole", "true → true"),
        Row("spec.guestAgent", nil, "KubeVirt always adds the guest agent channel (nothing to write)"),
        Row("spec.cloudInit", "volumes[].cloudInitNoCloud, domain.devices.disks[]", "a volume and a virtio disk named `cloudinitdisk`"),
        Row("spec.cloudInit.userData", "volumes[].cloudInitNoCloud.userData", "inline text inline (with the keys merged, as qemuctl's seed has them); a file or variable → `secretRef: {name: VM-userdata}`, reported (the Secret is to be made by hand; its value is never written)"),
        Row("spec.cloudInit.sshAuthorizedKeys", "volumes[].cloudInitNoCloud.userData", "merged into inline user-data (ssh_authorized_keys); reported with user-data in a Secret"),
        Row("spec.cloudInit.networkConfig", "volumes[].cloudInitNoCloud.networkData", "inline text inline; a file or variable → `networkDataSecretRef: {name: VM-networkdata}`, reported"),
        Row("spec.cloudInit.metaData", nil, "cloudInitNoCloud has no meta-data field"),
        Row("spec.cloudInit.instanceID", nil, "KubeVirt sets the instance-id itself"),
        Row("spec.readiness", "readinessProbe", "the rows below; 10 s initial delay and period"),
        Row("spec.readiness.guestAgent", "readinessProbe.guestAgentPing", "`{}`"),
        Row("spec.readiness.tcpPort", "readinessProbe.tcpSocket.port", "the guest port (KubeVirt probes the VMI's address)"),
        Row("spec.readiness.serialMatch", nil, "no KubeVirt probe reads the serial console"),
        Row("spec.spiceAgent", nil, "no SPICE in KubeVirt (reported when true)"),
        Row("spec.usbTablet", "domain.devices.inputs", "`{name: tablet, type: tablet, bus: usb}`"),
        Row("spec.usb", nil, "the rows below"),
        Row("spec.usb.controller", nil, "KubeVirt adds the controller its devices need (reported when not the default)"),
        Row("spec.usb.devices", "domain.devices.inputs", "a tablet → an input (one per VM); keyboard and mouse dropped (KubeVirt's only input is a tablet); host dropped (hostDevices need the cluster's permittedHostDevices)"),
        Row("spec.balloon", "domain.devices.autoattachMemBalloon", "always written: KubeVirt adds a balloon by default, qemuctl does not"),
        Row("spec.rng", "domain.devices.rng", "true → `rng: {}`"),
        Row("spec.rtc", "domain.clock", "the rows below"),
        Row("spec.rtc.base", nil, "utc is KubeVirt's default; localtime dropped (the host's zone is unknown to the cluster)"),
        Row("spec.rtc.clock", nil, "host needs nothing; rt and vm dropped"),
        Row("spec.rtc.driftFix", "domain.clock.timer.rtc.tickPolicy", "slew → `catchup` (libvirt's name for the same QEMU setting)"),
        Row("spec.audio", "domain.devices.sound", "name `audio`"),
        Row("spec.audio.backend", nil, "KubeVirt has no host audio (reported when not none)"),
        Row("spec.audio.model", "domain.devices.sound.model", "hda → ich9, ac97 → ac97; sb16 dropped"),
    ]

    /// The row that decides `path` (a ``FieldTable`` path): its own, or its closest ancestor's.
    package static func row(for path: String) -> Row? {
        var p = Substring(path)
        while true {
            if let r = byField[String(p)] { return r }
            guard let cut = p.lastIndex(where: { $0 == "." }) else { return nil }
            p = p[..<cut]
            if p.hasSuffix("[]") { p = p.dropLast(2) }
        }
    }

    private static let byField: [String: Row] = Dictionary(table.map { ($0.field, $0) }, uniquingKeysWith: { a, _ in a })

    /// `docs/kubevirt.md`'s mapping table (Markdown), generated from ``table``.
    package static func markdown() -> String {
        var out = "| qemuctl field | KubeVirt field | how |\n|---|---|---|\n"
        for row in table {
            let target = row.kubevirt.map { "`\($0)`" } ?? "dropped"
            out += "| `\(row.field)` | \(target) | \(row.note.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")) |\n"
        }
        return out
    }
}
