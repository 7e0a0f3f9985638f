import Manifest
import QemuCtl

/// `spec.networks`: adding a NIC hot-plugs it into a free root port (its link set down when the
/// manifest says so); removing one plugged after launch unplugs it. Live on q35 only.
struct NICHotplug: LiveChange {
    var fields: [String] { ["spec.networks"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        guard vm.pcie else { return vm.noPCIe }
        if change.operation == .remove {
            return vm.hotplugged.contains(change.path) ? .live("hot-unplug")
                : .restart("plugged at launch on the root bus; cannot be unplugged live")
        }
        return budget.takePort()
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let name = LiveChanges.element(change.path) else { throw ApplyError("\(change.path): not a NIC") }
        if change.operation == .remove {
            let known = step.stored.launch.spec.networks.contains { $0.name == name }
            try await step.unplug(.network(name), known: known, what: "network \(name)") { (c: VMConfig) throws(VMConfigError) in
                try c.unplug(network: name)
            }
            step.newSpec.networks.removeAll { $0.name == name }
            step.log.say("- spec.networks[\(name)] unplugged")
            return
        }
        let instance = step.instance
        let timeout = step.timeout
        guard let port = try await step.run("network \(name)", { try await instance.freeHotplugPorts(timeout: timeout).first }) else {
            throw ApplyError("network \(name): no free hot-plug root port left; use --restart=if-needed")
        }
        let plug: HotplugSteps
        do { plug = try step.desiredConfig.hotplug(network: name, port: port) } catch { throw ApplyError("network \(name): \(error)") }
        try await step.hotplug(plug, at: port, what: "network \(name)")
        if step.desired.spec.networks.first(where: { $0.name == name })?.link == .down {
            try await step.run("network \(name)") { try await instance.setLink(device: plug.deviceID, up: false, timeout: timeout) }
        }
        let onPorts = try await step.run("network \(name)") { try await instance.devicesOnHotplugPorts(timeout: timeout) }
        guard onPorts.contains(plug.deviceID) else {
            throw ApplyError("network \(name): hot-plugged, but query-pci does not show \(plug.deviceID) on a hot-plug port")
        }
        step.adopt(\.networks, name, \.name)
        step.log.say("+ spec.networks[\(name)] hot-plugged (\(port)) and read back")
    }
}
