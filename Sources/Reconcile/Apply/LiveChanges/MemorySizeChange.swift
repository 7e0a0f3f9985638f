import Manifest
import QemuCtl

/// `spec.memory.size`: live within `memory.max` (set at launch) and not below the boot size; a
/// shrink is live only when the difference is whole hot-plugged DIMMs (``MemoryDIMMs/toRemove(sizes:shrinkBy:)``,
/// the rule ``Instance/setMemorySize(_:wait:timeout:)`` enforces); restart otherwise. A growth is then
/// confirmed online in the guest through its agent when it has one (``GuestConfirmation/memory(_:_:)``).
struct MemorySizeChange: LiveChange {
    var fields: [String] { ["spec.memory.size"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let new = vm.desired.memory.size
        let launched = vm.record.spec.memory
        let boot = vm.record.bootMemorySize ?? launched.size
        guard let max = launched.max, max > boot else { return .restart("no memory.max above the boot size set at launch") }
        if new > max { return .restart("beyond max \(ByteSize.format(max)) set at launch") }
        if new < boot { return .restart("below the boot value \(ByteSize.format(boot))") }
        let current = vm.live.memorySize ?? vm.actualSpec.memory.size
        if new < current {
            guard let dimms = vm.live.dimmSizes else { return .restart("the hot-plugged DIMMs are unknown") }
            guard MemoryDIMMs.toRemove(sizes: dimms, shrinkBy: current - new) != nil else {
                return .restart("RAM shrinks live only by whole hot-plugged DIMMs (\(dimms.map(ByteSize.format).joined(separator: ", ")))")
            }
            return .live("hot-plugged DIMMs unplugged")
        }
        return .live("memory hot-plugged")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        let size = step.desired.spec.memory.size
        let instance = step.instance
        let (wait, timeout) = (step.stopTimeout, step.timeout)
        let read = try await step.run("spec.memory.size") {
            try await instance.setMemorySize(size, wait: wait, timeout: timeout)
            return try await instance.memorySize(timeout: timeout)
        }
        guard read == size else {
            throw ApplyError("spec.memory.size: \(ByteSize.format(size)) asked, QEMU reports \(ByteSize.format(read))")
        }
        let grown = size > step.newSpec.memory.size
        step.newSpec.memory.size = size
        // A growth is confirmed in the guest (a shrink removes DIMMs the guest already gave up).
        let guest = grown ? "; " + (await GuestConfirmation.memory(size, step)) : ""
        step.log.say("~ spec.memory.size \(ByteSize.format(size)) (memory hot-plugged, read back\(guest))")
    }
}
