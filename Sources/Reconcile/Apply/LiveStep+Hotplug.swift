import Manifest
import QemuCtl

// MARK: - Hot-plug and unplug

extension LiveStep {
    /// The manifest of what the record says runs.
    var recordedVM: VirtualMachine {
        VirtualMachine(name: desired.name, labels: stored.launch.labels, spec: stored.launch.spec,
                       source: SourceLocation(file: stored.source ?? "record", line: 1, column: 1))
    }

    /// Runs `plug` and journals it.
    mutating func hotplug(_ plug: HotplugSteps, at place: String, what: String) async throws(ApplyError) {
        log.journal("hotplug \(plug.deviceID) \(place)")
        let instance = self.instance
        let timeout = self.timeout
        try await run(what) { try await instance.hotplug(plug, timeout: timeout) }
    }

    /// Unplugs a device (the guest must release a PCI device) and removes its backends, as
    /// `steps` of the recorded configuration say; a device the record does not know (plugged by
    /// hand) is unplugged by `id` without backend clean-up. A disk's image is never touched.
    mutating func unplug(_ id: DeviceID, known: Bool, what: String,
                         steps: (VMConfig) throws(VMConfigError) -> HotplugSteps) async throws(ApplyError) {
        var plug = HotplugSteps(deviceID: qemuID(id))
        if known {
            do {
                let config = try applier.config(for: recordedVM, uuid: stored.launch.uuid)
                plug = try steps(config)
                plug.deviceID = qemuID(id)
            } catch let e as ApplyError {
                throw e
            } catch {
                throw ApplyError("\(what): \(error)")
            }
        }
        log.journal("unplug \(plug.deviceID)")
        let instance = self.instance
        let (wait, timeout) = (stopTimeout, self.timeout)
        do { try await instance.unplug(plug, wait: wait, timeout: timeout) } catch {
            throw ApplyError(error.message + "; retry, or use --restart=if-needed")
        }
    }

    /// Puts element `name` of the manifest into ``newSpec``'s collection at `keyPath`.
    mutating func adopt<E>(_ keyPath: WritableKeyPath<VirtualMachineSpec, [E]>, _ name: String, _ named: (E) -> String) {
        newSpec[keyPath: keyPath].removeAll { named($0) == name }
        if let e = desired.spec[keyPath: keyPath].first(where: { named($0) == name }) { newSpec[keyPath: keyPath].append(e) }
    }
}
