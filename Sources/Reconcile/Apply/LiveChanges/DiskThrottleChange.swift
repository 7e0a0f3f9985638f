import Manifest
import QemuCtl

/// `spec.disks[].throttle` and its limits: set where they live (the disk's throttle group, else
/// its block backend), all of one disk at once, and read back.
struct DiskThrottleChange: LiveChange {
    var fields: [String] {
        FieldTable.all.map(\.path).filter { $0 == "spec.disks[].throttle" || $0.hasPrefix("spec.disks[].throttle.") }
    }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        .live("set live (block_set_io_throttle)")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let disk = change.path.hasPrefix("spec.disks[") ? LiveChanges.element(change.path) : nil else {
            throw ApplyError("\(change.path): not a disk's throttle")
        }
        guard step.done.insert("throttle:\(disk)").inserted else { return }
        let wanted = step.desiredConfig.disks.first { $0.name == disk }?.throttle
        let device = step.qemuID(.disk(disk))
        let instance = step.instance
        let timeout = step.timeout
        let group = DiskIDs.throttleGroup(disk: disk)
        let read = try await step.run("disk \(disk)") {
            try await instance.setDiskThrottle(wanted, device: device, group: group, timeout: timeout)
        }
        guard read == wanted else { throw ApplyError("disk \(disk): QEMU reports a different throttle after setting it") }
        if let i = step.newSpec.disks.firstIndex(where: { $0.name == disk }) {
            step.newSpec.disks[i].throttle = step.desired.spec.disks.first { $0.name == disk }?.throttle
        }
        step.log.say("~ spec.disks[\(disk)].throttle set and read back")
    }
}
