import Manifest
import QemuCtl

/// `spec.display.vnc.passwordFrom` and `spec.display.spice.passwordFrom`.
///
/// What QEMU 7.2 does, checked on the real thing: `set_password` changes a VNC password only when
/// the VNC server was launched with password auth (else "Could not set password"), and an empty
/// password keeps the auth type (security type 2), so VNC password auth can be neither switched
/// on nor off live. A SPICE ticket can be set at any time, and expiring it (`expire_password now`)
/// leaves SPICE as a launch without a password does: ticketing on, no password that logs in.
struct DisplayPasswordChange: LiveChange {
    var fields: [String] {
        ["vnc", "spice"].flatMap { d in ["", ".file", ".env"].map { "spec.display.\(d).passwordFrom\($0)" } }
    }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let vnc = change.path.hasPrefix("spec.display.vnc.")
        switch (vnc, change.operation) {
        case (true, .add) where vm.record.spec.display.vnc?.passwordFrom == nil:
            return .restart("VNC was launched without password auth; QEMU cannot switch it on live")
        case (true, .remove):
            return .restart("QEMU cannot switch VNC password auth off live")
        case (false, .remove):
            return .live("SPICE ticket expired live (no password logs in, as at a launch without one)")
        default:
            return .live("password set live")
        }
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        let vnc = change.path.hasPrefix("spec.display.vnc.")
        let path = vnc ? "spec.display.vnc.passwordFrom" : "spec.display.spice.passwordFrom"
        guard step.done.insert(path).inserted else { return }
        let display = step.desired.spec.display
        let instance = step.instance
        let timeout = step.timeout
        guard let reference = vnc ? display.vnc?.passwordFrom : display.spice?.passwordFrom else {
            guard !vnc else { throw ApplyError("\(path): removing the VNC password needs a restart") }
            try await step.run(path) { try await instance.expirePassword(.spice, time: "now", timeout: timeout) }
            step.stored.launch.secrets[path] = nil
            step.newSpec.display.spice?.passwordFrom = nil
            step.log.say("- \(path) removed (the SPICE ticket is expired)")
            return
        }
        let value: String
        do { value = try SecretMarkers.read(reference, path: path) } catch { throw ApplyError(error.message) }
        try await step.run(path) {
            try await instance.setPassword(vnc ? .vnc : .spice, .value(value), timeout: timeout)
            if !vnc { try await instance.expirePassword(.spice, time: "never", timeout: timeout) }
        }
        step.stored.launch.secrets[path] = step.markers.marker(for: value)
        if vnc { step.newSpec.display.vnc?.passwordFrom = reference } else { step.newSpec.display.spice?.passwordFrom = reference }
        step.log.say("~ \(path) set (sensitive)")
    }
}
