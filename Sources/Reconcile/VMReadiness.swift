package import Manifest
package import QemuCtl

extension VirtualMachineSpec.Readiness {
    /// The library probe this `spec.readiness` names.
    package var probe: ReadinessProbe {
        switch self {
        case .guestAgent: .guestAgent
        case .tcpPort(let port): .tcpPort(port)
        case .serialMatch(let pattern): .serialMatch(pattern)
        }
    }
}

/// Readiness of managed VMs as `wait --for ready`, `apply --wait-ready` and `get` see it: the probe the
/// VM's record declares (`spec.readiness`, as last applied) run against the VM's runtime files and its
/// QEMU's host forwards.
package enum VMReadiness {
    /// What `get` shows for one VM.
    package enum Status: String, Sendable {
        /// The probe passed.
        case yes
        /// The probe did not pass within the deadline, or QEMU does not run.
        case no
        /// No `spec.readiness` is recorded.
        case undeclared = "-"
    }

    /// The deadline of `get`'s one probe per VM: short, so `get` stays fast. A probe that needs more
    /// (an agent that takes longer than this to answer) reads as not ready.
    package static let quickDeadline: Duration = .milliseconds(1500)

    /// The probe VM `name`'s record declares, or `nil` (no record, or no `spec.readiness`).
    package static func declaredProbe(_ name: String, store: StateStore) -> ReadinessProbe? {
        guard let stored = try? store.loadRecord(StoredRecord.self, name: name) else { return nil }
        return stored.launch.spec.readiness?.probe
    }

    /// What the probes of running VM `name` reach, or `nil` when no QEMU runs for it.
    package static func target(_ name: String, store: StateStore) -> ReadinessTarget? {
        guard let pid = store.runningPID(name) else { return nil }
        return ReadinessTarget(layout: store.layout(name), commandLine: Posix.commandLine(of: pid) ?? [])
    }

    /// One check of VM `name` against its declared probe within `deadline`, for `get`.
    ///
    /// A TCP probe waits up to ``ReadinessCheck/tcpSettleTime`` for the guest's first bytes whatever the
    /// deadline, so a `tcpPort` VM can take that long to read.
    package static func quickStatus(_ name: String, store: StateStore, deadline: Duration = quickDeadline) async -> Status {
        guard let probe = declaredProbe(name, store: store) else { return .undeclared }
        guard let target = target(name, store: store) else { return .no }
        do {
            try await ReadinessCheck.wait(for: probe, target: target, timeout: deadline)
            return .yes
        } catch {
            return .no
        }
    }

    /// Checks several VMs at once (each within `deadline`), by name.
    package static func quickStatuses(_ names: [String], store: StateStore,
                                      deadline: Duration = quickDeadline) async -> [String: Status] {
        await withTaskGroup(of: (String, Status).self) { group in
            for name in names { group.addTask { (name, await quickStatus(name, store: store, deadline: deadline)) } }
            var out: [String: Status] = [:]
            for await (name, status) in group { out[name] = status }
            return out
        }
    }
}
