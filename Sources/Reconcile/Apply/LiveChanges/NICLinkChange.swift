import Manifest
import QemuCtl

/// `spec.networks[].link`: the NIC's carrier is set up or down live. QMP cannot report link
/// state, so the record keeps it (``ObservedNIC/link``).
struct NICLinkChange: LiveChange {
    var fields: [String] { ["spec.networks[].link"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        .live("link set live (set_link)")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let nic = LiveChanges.element(change.path) else { throw ApplyError("\(change.path): not a NIC") }
        let up = step.desired.spec.networks.first { $0.name == nic }?.link != .down
        let device = step.qemuID(.network(nic))
        let instance = step.instance
        let timeout = step.timeout
        try await step.run("setting the link of \(nic)") { try await instance.setLink(device: device, up: up, timeout: timeout) }
        if let i = step.newSpec.networks.firstIndex(where: { $0.name == nic }) { step.newSpec.networks[i].link = up ? .up : .down }
        step.log.say("~ \(change.path) \(up ? "up" : "down")")
    }
}
