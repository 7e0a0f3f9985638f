import Manifest
import QemuCtl

/// `spec.disks`: adding a disk hot-plugs it (a free root port for virtio and NVMe, a free id on
/// the SCSI controller for SCSI), creating its image when declared with `create:`; removing one
/// unplugs it (the image is kept). Live on q35 only.
struct DiskHotplug: LiveChange {
    var fields: [String] { ["spec.disks"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        guard vm.pcie else { return vm.noPCIe }
        let name = change.element ?? ""
        if change.operation == .remove {
            if vm.hotplugged.contains(change.path) { return .live("hot-unplug; the image is kept") }
            if vm.actualSpec.disks.first(where: { $0.name == name })?.interface == .scsi {
                return .live("unplug from the SCSI controller; the image is kept")
            }
            return .restart("plugged at launch on the root bus; cannot be unplugged live")
        }
        switch vm.desired.disks.first(where: { $0.name == name })?.interface ?? .virtio {
        case .ide: return .restart("IDE disks cannot be hot-plugged")
        case .scsi:
            let s = vm.record.spec
            return s.disks.contains { $0.interface == .scsi } || s.cdroms.contains { $0.interface == .scsi }
                ? .live("hot-plug onto the SCSI controller") : .restart("no SCSI controller at launch")
        case .virtio, .nvme: return budget.takePort()
        }
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let name = LiveChanges.element(change.path) else { throw ApplyError("\(change.path): not a disk") }
        if change.operation == .remove {
            let known = step.stored.launch.spec.disks.contains { $0.name == name }
            try await step.unplug(.disk(name), known: known, what: "disk \(name)") { (c: VMConfig) throws(VMConfigError) in
                try c.unplug(disk: name)
            }
            step.newSpec.disks.removeAll { $0.name == name }
            step.log.say("- spec.disks[\(name)] unplugged (the image is kept)")
            return
        }
        guard let disk = step.desired.spec.disks.first(where: { $0.name == name }) else { throw ApplyError("no disk \(name) in the manifest") }
        var one = step.desired
        one.spec.disks = [disk]
        try await step.applier.createDisks(one, log: &step.log)
        let config = step.desiredConfig
        // The same image checks as at launch: nothing the image header names beyond the image is opened.
        if let d = config.disks.first(where: { $0.name == name }), case .file(let f) = d.backend,
           let problem = HostFileCheck.imageProblem(path: f.path, format: f.format, backing: f.backing) {
            throw ApplyError("disk \(name): \(problem)")
        }
        let instance = step.instance
        let timeout = step.timeout
        var port: String? = nil
        var scsiID: Int? = nil
        if disk.interface == .scsi {
            scsiID = try await step.run("disk \(name)") { try await instance.freeSCSIID(timeout: timeout) }
        } else {
            port = try await step.run("disk \(name)") { try await instance.freeHotplugPorts(timeout: timeout).first }
            guard port != nil else { throw ApplyError("disk \(name): no free hot-plug root port left; use --restart=if-needed") }
        }
        let plug: HotplugSteps
        do { plug = try config.hotplug(disk: name, port: port, scsiID: scsiID) } catch { throw ApplyError("disk \(name): \(error)") }
        let place = port ?? "scsi0.0 id \(scsiID ?? 0)"
        try await step.hotplug(plug, at: place, what: "disk \(name)")
        let present = try await step.run("disk \(name)") { try await instance.hasBlockDevice(plug.deviceID, timeout: timeout) }
        guard present else { throw ApplyError("disk \(name): hot-plugged, but query-block does not list \(plug.deviceID)") }
        step.adopt(\.disks, name, \.name)
        step.log.say("+ spec.disks[\(name)] hot-plugged (\(port ?? "scsi0, id \(scsiID ?? 0)")) and read back")
    }
}
