import Manifest
import QemuCtl

/// `spec.cpu.count`: live within `cpu.maxCount` (set at launch) and not below the boot count;
/// restart otherwise. vCPUs are hot-plugged or unplugged and counted back, then confirmed online in the
/// guest through its agent when it has one (``GuestConfirmation/vcpus(_:_:)``).
struct VCPUCountChange: LiveChange {
    var fields: [String] { ["spec.cpu.count"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let new = vm.desired.cpu.count
        let launched = vm.record.spec.cpu
        let boot = vm.record.bootCPUCount ?? launched.count
        if launched.maxCount <= boot { return .restart("no cpu.maxCount above the boot count set at launch") }
        if new > launched.maxCount { return .restart("beyond maxCount \(launched.maxCount) set at launch") }
        if new < boot { return .restart("below the boot value \(boot)") }
        return .live("vCPUs hot-plugged")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        let count = step.desired.spec.cpu.count
        let instance = step.instance
        let (wait, timeout) = (step.stopTimeout, step.timeout)
        let read = try await step.run("spec.cpu.count") {
            try await instance.setCPUCount(count, wait: wait, timeout: timeout)
            return try await instance.vcpuCount(timeout: timeout)
        }
        guard read == count else { throw ApplyError("spec.cpu.count: \(count) asked, QEMU reports \(read) vCPUs") }
        step.newSpec.cpu.count = count
        let guest = await GuestConfirmation.vcpus(count, step)
        step.log.say("~ spec.cpu.count \(count) (vCPUs hot-plugged, read back; \(guest))")
    }
}
