import Manifest
import QemuCtl

/// `spec.usb.devices`: adding a device hot-plugs it onto the USB controller (id `usb-NAME`), which
/// exists only when the VM was launched with a USB device; removing one unplugs it (USB devices
/// go at once, the guest need not agree). Both are read back from QOM.
struct USBHotplug: LiveChange {
    var fields: [String] { ["spec.usb.devices"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let s = vm.record.spec
        guard s.usb.controller != .none, s.usbTablet || !s.usb.devices.isEmpty else {
            return .restart("no USB controller at launch")
        }
        return change.operation == .remove ? .live("unplug from the USB controller") : .live("hot-plug onto the USB controller")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let name = LiveChanges.element(change.path) else { throw ApplyError("\(change.path): not a USB device") }
        let id = step.qemuID(.usb(name))
        let instance = step.instance
        let timeout = step.timeout
        if change.operation == .remove {
            try await step.unplug(.usb(name), known: false, what: "USB device \(name)") { (c: VMConfig) throws(VMConfigError) in
                HotplugSteps(deviceID: id)
            }
            let present = try await step.run("USB device \(name)") { try await instance.hasDevice(id, timeout: timeout) }
            guard !present else { throw ApplyError("USB device \(name): unplugged, but QEMU still lists \(id)") }
            step.newSpec.usb.devices.removeAll { $0.name == name }
            step.log.say("- spec.usb.devices[\(name)] unplugged and read back")
            return
        }
        let plug: HotplugSteps
        do { plug = try step.desiredConfig.hotplug(usb: name) } catch { throw ApplyError("USB device \(name): \(error)") }
        try await step.hotplug(plug, at: "usb.0", what: "USB device \(name)")
        let present = try await step.run("USB device \(name)") { try await instance.hasDevice(id, timeout: timeout) }
        guard present else { throw ApplyError("USB device \(name): hot-plugged, but QEMU does not list \(id)") }
        step.adopt(\.usb.devices, name, \.name)
        step.log.say("+ spec.usb.devices[\(name)] hot-plugged (usb.0) and read back")
    }
}
