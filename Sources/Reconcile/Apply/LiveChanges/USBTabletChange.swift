import Manifest
import QemuCtl

/// `spec.usbTablet`: the tablet is hot-plugged onto the USB controller (id ``USB/tabletID``) or
/// unplugged, and read back from QOM; live only with a controller present at launch. A tablet
/// listed in `usb.devices` is that device's business: nothing is plugged for the flag then.
struct USBTabletChange: LiveChange {
    var fields: [String] { ["spec.usbTablet"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let s = vm.record.spec
        guard s.usb.controller != .none, s.usbTablet || !s.usb.devices.isEmpty else {
            return .restart("no USB controller at launch")
        }
        return .live(vm.desired.usbTablet ? "hot-plug a tablet onto the USB controller" : "unplug the tablet")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        let wanted = step.desired.spec.usbTablet
        let instance = step.instance
        let timeout = step.timeout
        let id = USB.tabletID
        // A tablet in usb.devices stands in for the flag's (the launch adds none then).
        if !(wanted ? step.desired.spec : step.stored.launch.spec).usb.devices.contains(where: { $0.type == .tablet }) {
            if wanted {
                let plug: HotplugSteps
                do { plug = try step.desiredConfig.hotplug(usbDeviceID: id) } catch { throw ApplyError("spec.usbTablet: \(error)") }
                try await step.hotplug(plug, at: "usb.0", what: "spec.usbTablet")
            } else {
                step.log.journal("unplug \(id)")
                let wait = step.stopTimeout
                try await step.run("spec.usbTablet") { try await instance.unplug(HotplugSteps(deviceID: id), wait: wait, timeout: timeout) }
            }
            let present = try await step.run("spec.usbTablet") { try await instance.hasDevice(id, timeout: timeout) }
            guard present == wanted else { throw ApplyError("spec.usbTablet: QEMU \(present ? "still lists" : "does not list") \(id)") }
        }
        step.newSpec.usbTablet = wanted
        step.log.say("~ spec.usbTablet \(wanted) (\(wanted ? "hot-plugged" : "unplugged"), read back)")
    }
}
