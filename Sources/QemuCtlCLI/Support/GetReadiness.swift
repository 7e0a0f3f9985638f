import Reconcile

/// `get`'s READY column: each VM's `spec.readiness` probe (as last applied), tried once with a short
/// deadline (``VMReadiness/quickDeadline``) for all VMs at once, so `get` stays fast.
enum GetReadiness {
    /// The help text of the column.
    static let help = """
        READY (json/yaml: ready) is yes when the VM passes the readiness probe its manifest declares \
        (spec.readiness), no when it does not within about a second and a half (or QEMU does not \
        run), - (null) when it declares none. `qemuctl wait NAME --for ready` waits for it.
        """

    /// Sets ``VMSummary/ready`` of each row from a quick probe of its VM.
    static func fill(_ rows: inout [VMSummary], _ vms: [ObservedVM], store: StateStore) async {
        let alive = Set(vms.filter { $0.liveness == .alive && $0.ownership != .foreign }.map(\.name))
        let statuses = await VMReadiness.quickStatuses(rows.map(\.name).filter(alive.contains), store: store)
        for i in rows.indices {
            let status = statuses[rows[i].name]
                ?? (VMReadiness.declaredProbe(rows[i].name, store: store) == nil ? .undeclared : .no)
            rows[i].ready = switch status {
            case .yes: true
            case .no: false
            case .undeclared: nil
            }
        }
    }
}
