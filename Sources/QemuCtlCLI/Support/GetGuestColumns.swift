import Manifest
import Reconcile

/// `get`'s IP and OS columns (`-o wide`; `ip` and `os` in `-o json|yaml`): what the guest agent of
/// each running VM with `spec.guestAgent: true` tells (``VMDescription/askGuest(_:deadline:)``),
/// asked of all VMs at once within ``VMReadiness/quickDeadline``, so `get` stays fast.
enum GetGuestColumns {
    /// The help text of the columns.
    static let help = """
        -o wide adds IP (the first guest address that is not loopback) and OS, asked of the guest \
        agent of each running VM with spec.guestAgent: true, all at once within a second and a \
        half; - when there is no agent or it does not answer in time. -o json and -o yaml always \
        carry them as ip and os (null for -).
        """

    /// One VM's answer: its address and OS name, each nil when unknown.
    typealias Answer = (ip: String?, os: String?)

    /// Asks the agents of the running, managed VMs of `vms` that enable one, concurrently.
    static func ask(_ vms: [ObservedVM], store: StateStore) async -> [String: Answer] {
        let names = vms.filter { $0.liveness == .alive && $0.ownership != .foreign && $0.record?.spec.guestAgent == true }.map(\.name)
        guard !names.isEmpty else { return [:] }
        Verbosity.say("asking the guest agents of \(names.joined(separator: ", ")) for the address and OS (within \(VMReadiness.quickDeadline))")
        return await withTaskGroup(of: (String, Answer).self) { group in
            for name in names {
                group.addTask {
                    let info = await VMDescription.askGuest(store.layout(name), deadline: VMReadiness.quickDeadline)
                    if !info.answered { Verbosity.say("\(name): \(info.problem ?? "the guest agent did not answer")") }
                    return (name, (info.primaryAddress, info.os))
                }
            }
            var out: [String: Answer] = [:]
            for await (name, answer) in group { out[name] = answer }
            return out
        }
    }

    /// Sets ``VMSummary/ip`` and ``VMSummary/os`` of each row that has an answer.
    static func fill(_ rows: inout [VMSummary], _ answers: [String: Answer]) {
        for i in rows.indices {
            guard let answer = answers[rows[i].name] else { continue }
            rows[i].ip = answer.ip
            rows[i].os = answer.os
        }
    }
}
