package import Manifest

// MARK: - plan

/// Computes what `apply` must do to make the host match the manifests. Pure: no I/O, no clock.
///
/// One ``VMPlan`` per VM, sorted by name:
/// - declared and not running (no observation, or its QEMU is gone) → ``Action/create``
///   (``Action/noOp`` when the manifest says `runState: stopped`); a recorded uuid is kept;
/// - declared and running → field changes between the manifest and the actual state (the
///   launch record with QMP's live values on top), each with the class ``FieldTable`` gives it;
///   ``Action/update`` when all are live or metadata, ``Action/restart`` when one needs a relaunch
///   (``VMPlan/restartPending`` with `--restart=never`), ``Action/noOp`` when there are none;
///   `runState: stopped` is a live stop and nothing else;
/// - managed, running and not declared → ``Action/delete`` with `--prune`, else not listed;
/// - unresponsive → ``Action/unresponsive``; foreign or without a record → ``Action/unmanaged``:
///   nothing is planned for them, and they are never launched a second time.
///
/// A live-declared field is classified for this VM by its handler in ``LiveChanges`` (the one
/// the applier runs): disks and NICs added or removed are live on q35 when a hot-plug root port
/// is free (adds use them in field order) or the device sits on a hot-pluggable bus; `cpu.count`
/// and `memory.size` are live between their boot value and the maximum set at launch (`maxCount`,
/// `max`); else the change needs a restart, with the reason.
///
/// ```swift
/// let p = plan(desired: manifests.vms, actual: observed, options: PlanOptions(restart: .never))
/// print(PlanRenderer().render(p), terminator: "")
/// exit(p.diffExitCode)
/// ```
///
/// Call it as `Reconcile.plan(...)` where a local named `plan` would shadow it.
///
/// - Parameters:
///   - desired: The VMs of the manifests, normalized. Names are unique (the loader checks);
///     were one repeated, the first would win.
///   - actual: What observation found on the host, any order.
///   - options: `--prune`, `--restart` and the secret markers of the manifests.
/// - Returns: The plan, with the fingerprint of `actual` (unless `options` say otherwise).
package func plan(desired: [VirtualMachine], actual: [ObservedVM], options: PlanOptions) -> Plan {
    var desiredByName: [String: VirtualMachine] = [:]
    for vm in desired where desiredByName[vm.name] == nil { desiredByName[vm.name] = vm }
    var actualByName: [String: ObservedVM] = [:]
    for vm in actual where actualByName[vm.name] == nil { actualByName[vm.name] = vm }

    var vms: [VMPlan] = []
    for name in Set(desiredByName.keys).union(actualByName.keys).sorted() {
        if let d = desiredByName[name] {
            vms.append(Planner(options: options).planMembership(Planner(options: options).planDeclared(d, actualByName[name]),
                                                                actualByName[name]))
        } else if let a = actualByName[name], let p = Planner(options: options).planUndeclared(a) {
            vms.append(p)
        }
    }
    var result = Plan(
        prune: options.prune, restart: options.restart, actualFingerprint: options.fingerprint ? StateFingerprint(of: actual) : .none, vms: vms)
    result.applySet = options.applySet?.id
    return result
}

// MARK: - Planner

/// The per-VM rules behind ``plan(desired:actual:options:)``.
struct Planner {
    let options: PlanOptions

    // MARK: VMs without a manifest

    func planUndeclared(_ a: ObservedVM) -> VMPlan? {
        guard options.prune, a.ownership == .managed, isPrunable(a) else { return nil }
        let set = options.applySet.map { " of apply set \($0.id)" } ?? ""
        if a.liveness == .unresponsive {
            var p = VMPlan(
                name: a.name, action: .unresponsive,
                reason: "\(a.detail ?? "QMP does not answer"); not in any manifest\(set), but not deleted",
                uuid: a.record?.uuid)
            p.applySet = a.record?.applySet
            return p
        }
        var p = VMPlan(
            name: a.name, action: .delete,
            reason: a.liveness == .gone ? "not in any manifest\(set); not running, runtime files removed"
                : "not in any manifest\(set); disks are kept",
            uuid: a.record?.uuid)
        p.applySet = a.record?.applySet
        return p
    }

    /// Whether `--prune` may delete `a`, a managed VM no manifest declares: it was applied by the
    /// planned set (a record without a set never is; see ``ApplySet``) and its recorded labels
    /// match the selector.
    func isPrunable(_ a: ObservedVM) -> Bool {
        if let set = options.applySet, a.record?.applySet != set.id { return false }
        if let selector = options.selector, !selector.matches(a.record?.labels ?? [:]) { return false }
        return true
    }

    /// `p`, a declared VM's plan, with the apply set it belongs to afterwards: a VM launched now
    /// (create, relaunch) takes the planned set; a running one joins it with `--prune` (a
    /// record-only change, `metadata.applySet`); otherwise it keeps its recorded set.
    func planMembership(_ p: VMPlan, _ a: ObservedVM?) -> VMPlan {
        var p = p
        let recorded = a?.record?.applySet
        guard let set = options.applySet?.id else {
            p.applySet = recorded
            return p
        }
        switch p.action {
        case .create:
            p.applySet = set
        case .restart where !p.restartPending:
            p.applySet = set
        case .update, .restart, .noOp:
            guard options.prune, a?.record != nil, a?.liveness == .alive, recorded != set else {
                p.applySet = recorded
                return p
            }
            p.applySet = set
            p.changes.append(FieldChange(
                path: "metadata.applySet", operation: recorded == nil ? .add : .modify, old: Render.quoted(recorded),
                new: Render.quoted(set), declaredClass: .metadata,
                reason: recorded == nil ? "joins apply set \(set) (--prune may delete it once no manifest of the set declares it)"
                    : "moves from apply set \(recorded!) to \(set)"))
            if p.action == .noOp {
                p.action = .update
                p.reason = recorded == nil ? "joins apply set \(set) (record only)" : "moves to apply set \(set) (record only)"
            }
        case .delete, .unresponsive, .unmanaged:
            p.applySet = recorded
        }
        return p
    }

    // MARK: VMs with a manifest

    func planDeclared(_ d: VirtualMachine, _ a: ObservedVM?) -> VMPlan {
        guard let a else {
            return d.spec.runState == .stopped
                ? VMPlan(name: d.name, action: .noOp, reason: "runState stopped; not launched", desired: d)
                : VMPlan(name: d.name, action: .create, reason: "not running", changes: creationChanges(d), desired: d)
        }
        if a.ownership == .foreign {
            return VMPlan(
                name: d.name, action: .unmanaged,
                reason: a.detail.map { "\($0); not touched" }
                    ?? "a QEMU of this name runs that qemuctl did not launch; not touched (qemuctl import adopts it)",
                desired: d)
        }
        switch a.liveness {
        case .unresponsive:
            return VMPlan(
                name: d.name, action: .unresponsive,
                reason: "\(a.detail ?? "QMP does not answer"); not planned, never launched twice",
                uuid: a.record?.uuid, desired: d)
        case .gone:
            if d.spec.runState == .stopped {
                return VMPlan(
                    name: d.name, action: .noOp, pendingRestartCleared: a.restartPending,
                    reason: "runState stopped; not running", uuid: a.record?.uuid, desired: d)
            }
            return VMPlan(
                name: d.name, action: .create, pendingRestartCleared: a.restartPending,
                reason: a.record == nil ? "not running" : "not running; relaunched with its recorded uuid",
                uuid: a.record?.uuid, changes: creationChanges(d), desired: d)
        case .alive:
            break
        }
        guard let record = a.record else {
            return VMPlan(
                name: d.name, action: .unmanaged, reason: "running without a readable launch record; not touched",
                desired: d)
        }
        guard let live = a.live else {
            return VMPlan(
                name: d.name, action: .unresponsive, reason: "no state read over QMP; not planned",
                uuid: record.uuid, desired: d)
        }

        if d.spec.runState == .stopped {
            // Stopping is all there is to do: the next start launches the manifest as it is then.
            let change = FieldChange(
                path: "spec.runState", operation: .modify, old: live.runStatus.rawValue, new: RunState.stopped.rawValue,
                declaredClass: Self.declaredClass("spec.runState"), reason: "shut down (graceful stop)",
                drift: !live.runStatus.satisfies(record.spec.runState))
            return VMPlan(
                name: d.name, action: .update, pendingRestartCleared: a.restartPending, reason: "stop",
                uuid: record.uuid, changes: [change], desired: d)
        }

        let changes = Diff(
            desired: d, record: record, live: live,
            desiredSecrets: options.secretMarkers[d.name] ?? [:]
        ).changes()
        if changes.isEmpty {
            return VMPlan(
                name: d.name, action: .noOp, pendingRestartCleared: a.restartPending,
                reason: a.restartPending ? "matches its manifest again; the pending restart is dropped"
                    : "matches its manifest",
                uuid: record.uuid, desired: d)
        }
        let restartCount = changes.count(where: { $0.changeClass == .restart })
        if restartCount == 0 {
            let metadata = changes.count(where: { $0.changeClass == .metadata })
            var parts: [String] = []
            if changes.count > metadata { parts.append(Self.plural(changes.count - metadata, "live change")) }
            if metadata > 0 { parts.append(Self.plural(metadata, "record-only change")) }
            return VMPlan(
                name: d.name, action: .update, pendingRestartCleared: a.restartPending,
                reason: parts.joined(separator: ", "), uuid: record.uuid, changes: changes, desired: d)
        }
        let pending = options.restart == .never
        let what = restartCount == 1 ? "1 change needs" : "\(restartCount) changes need"
        return VMPlan(
            name: d.name, action: .restart, restartPending: pending,
            reason: pending ? "\(what) a relaunch; use --restart=if-needed" : "\(what) a relaunch; disks and uuid kept",
            uuid: record.uuid, changes: changes, desired: d)
    }

    /// `1 live change`, `2 live changes`.
    static func plural(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

    /// What a create sets: the fields the manifest sets to something other than the default.
    func creationChanges(_ d: VirtualMachine) -> [FieldChange] {
        let flat = FlatSpec(labels: d.labels, spec: d.spec, secrets: [:])
        let defaults = FlatSpec(labels: [:], spec: VirtualMachineSpec(), secrets: [:])
        var out: [FieldChange] = []
        func add(_ path: String, _ value: String?, sensitive: Bool = false) {
            out.append(FieldChange(
                path: path, operation: .add, old: nil, new: value, declaredClass: Self.declaredClass(path),
                reason: "new VM", sensitive: sensitive))
        }
        for l in flat.labels { add(l.path, l.value) }
        add("spec.runState", d.spec.runState.rawValue)
        for (item, base) in zip(flat.items, defaults.items) {
            switch (item, base) {
            case (.leaf(let l), .leaf(let b)):
                // A group's children say more than its summary.
                if !l.isGroup, l.value != nil, l.value != b.value { add(l.path, l.value, sensitive: l.secret != nil) }
            case (.collection(let path, let elements), _):
                for e in elements {
                    add("\(path)[\(e.name)]", e.summary)
                    // What the summary leaves out and a reader of a create wants to see: the size a
                    // disk image is created with, its throttle, a NIC's port forwards.
                    for l in e.leaves where l.value != nil && !l.isGroup && Self.shownOnCreate(l.path, l.value) {
                        add(l.path, l.value, sensitive: l.secret != nil)
                    }
                }
            default:
                break
            }
        }
        return out
    }

    /// Whether a create lists this element field (set to `value`) under the element's summary line
    /// (which names the backend, the interface and a NIC's MAC).
    static func shownOnCreate(_ path: String, _ value: String?) -> Bool {
        if path.hasSuffix(".throttle.burstLength") { return value != "1" }  // QEMU's default
        return path.contains(".throttle.") || path.hasSuffix(".create.size") || path.hasSuffix(".user.hostfwd")
    }

    /// The class ``FieldTable`` gives `path`; an element (`spec.disks[data]`, `metadata.labels[k]`)
    /// takes its collection's class. Unknown paths are treated as restart-class, the safe side.
    static func declaredClass(_ path: String) -> ChangeClass {
        if let c = FieldTable.changeClass(at: path) { return c }
        if path.hasSuffix("]"), let open = path.lastIndex(of: "["),
           let c = FieldTable.changeClass(at: String(path[..<open])) {
            return c
        }
        return .restart
    }
}

// MARK: - Diff

/// Field changes between a manifest and a running VM.
struct Diff {
    let desired: VirtualMachine
    let record: LaunchRecord
    let live: LiveState
    let desiredSecrets: [String: SecretMarker]

    /// The actual spec: the record with QMP's values on top.
    private(set) var actualSpec: VirtualMachineSpec
    /// Disks and NICs QMP reports that the record does not know.
    private(set) var unknownDisks: [ObservedDisk] = []
    private(set) var unknownNICs: [ObservedNIC] = []
    private(set) var hotplugged: Set<String> = []

    init(desired: VirtualMachine, record: LaunchRecord, live: LiveState, desiredSecrets: [String: SecretMarker]) {
        self.desired = desired
        self.record = record
        self.live = live
        self.desiredSecrets = desiredSecrets
        var s = record.spec
        if let c = live.cpuCount { s.cpu.count = c }
        if let m = live.memorySize { s.memory.size = m }
        if let disks = live.disks {
            s.disks = record.spec.disks.compactMap { d in
                guard let o = disks.first(where: { $0.name == d.name }) else { return nil }
                var d = d
                d.throttle = o.throttle
                return d
            }
            unknownDisks = disks.filter { o in !record.spec.disks.contains { $0.name == o.name } }
            for o in disks where o.hotplugged { hotplugged.insert("spec.disks[\(o.name)]") }
        }
        if let cdroms = live.cdroms {
            for i in s.cdroms.indices {
                if let o = cdroms.first(where: { $0.name == s.cdroms[i].name }) { s.cdroms[i].path = o.media }
            }
        }
        if let nics = live.nics {
            s.networks = record.spec.networks.compactMap { n in
                guard let o = nics.first(where: { $0.name == n.name }) else { return nil }
                var n = n
                n.link = o.link
                return n
            }
            unknownNICs = nics.filter { o in !record.spec.networks.contains { $0.name == o.name } }
            for o in nics where o.hotplugged { hotplugged.insert("spec.networks[\(o.name)]") }
        }
        actualSpec = s
    }

    func changes() -> [FieldChange] {
        let runState = runStateChange()
        // The common case, a VM that matches its manifest, without flattening three specs: every
        // field below is a function of the labels, the spec and the secret markers, so when those
        // are equal nothing below can differ.
        if desired.labels == record.labels && desired.spec == actualSpec && unknownDisks.isEmpty && unknownNICs.isEmpty
            && desiredSecrets.allSatisfy({ record.secrets[$0.key] == $0.value }) {
            return runState.map { [$0] } ?? []
        }
        var out: [FieldChange] = []
        var budget = HotplugBudget(live)
        let want = FlatSpec(labels: desired.labels, spec: desired.spec, secrets: desiredSecrets)
        let have = FlatSpec(labels: record.labels, spec: actualSpec, secrets: record.secrets)
        let recorded = FlatSpec(labels: record.labels, spec: record.spec, secrets: record.secrets)
        let recordedLeaves = recorded.leavesByPath

        // metadata.labels: the union of keys, sorted.
        let haveLabels = Dictionary(uniqueKeysWithValues: have.labels.map { ($0.path, $0) })
        let wantLabels = Dictionary(uniqueKeysWithValues: want.labels.map { ($0.path, $0) })
        for path in Set(haveLabels.keys).union(wantLabels.keys).sorted() {
            let w = wantLabels[path], h = haveLabels[path]
            if Leaf.differ(desired: w, actual: h) {
                out.append(change(path, w, h, recordedLeaves, &budget))
            }
        }
        if let runState { out.append(runState) }

        var changedGroups: Set<String> = []
        for (w, h) in zip(want.items, have.items) {
            switch (w, h) {
            case (.leaf(let wl), .leaf(let hl)):
                if let g = wl.group, changedGroups.contains(g) { continue }
                guard Leaf.differ(desired: wl, actual: hl) else { continue }
                // When an optional group comes or goes, its children are not listed.
                if wl.isGroup, wl.value == nil || hl.value == nil { changedGroups.insert(wl.path) }
                out.append(change(wl.path, wl, hl, recordedLeaves, &budget))
            case (.collection(let path, let we), .collection(_, let he)):
                out += collectionChanges(path, want: we, have: he, recorded: recorded, budget: &budget)
            default:
                assertionFailure("flattened specs out of step")
            }
        }
        return out
    }

    /// spec.runState, against QMP's status.
    private func runStateChange() -> FieldChange? {
        guard !live.runStatus.satisfies(desired.spec.runState) else { return nil }
        let s = live.runStatus
        let site = LiveChangeSite(path: "spec.runState", operation: .modify, desired: nil, actual: nil)
        var budget = HotplugBudget(live)
        let verdict = LiveChanges.handler(for: site.path)?.classify(site, on: planningVM, budget: &budget)
            ?? .restart("no live handler")
        return FieldChange(
            path: "spec.runState", operation: .modify, old: s.rawValue, new: desired.spec.runState.rawValue,
            declaredClass: Planner.declaredClass("spec.runState"), changeClass: verdict.changeClass, reason: verdict.reason,
            drift: !s.satisfies(record.spec.runState))
    }

    /// What the live-change handlers know of this VM.
    private var planningVM: PlanningVM {
        PlanningVM(desired: desired.spec, record: record, live: live, actualSpec: actualSpec, hotplugged: hotplugged)
    }

    /// How a live-declared change is made on this VM: its handler's verdict (restart, the safe
    /// side, for a path without one: a test keeps that from happening).
    private func verdict(_ site: LiveChangeSite, _ budget: inout HotplugBudget) -> LiveVerdict {
        guard let handler = LiveChanges.handler(for: site.path) else { return .restart("no live handler") }
        return handler.classify(site, on: planningVM, budget: &budget)
    }

    /// A change of one scalar field; a live-declared one is classified by its handler.
    private func change(_ path: String, _ w: Leaf?, _ h: Leaf?, _ recorded: [String: Leaf],
                        _ budget: inout HotplugBudget) -> FieldChange {
        let declared = Planner.declaredClass(path)
        let operation: FieldChange.Operation = w?.value == nil ? .remove : h?.value == nil ? .add : .modify
        let verdict: LiveVerdict = switch declared {
        case .metadata: LiveVerdict(changeClass: .metadata, reason: "record only")
        case .restart: .restart(FieldTable.restartReason(at: path) ?? "needs a relaunch")
        case .live: verdict(LiveChangeSite(path: path, operation: operation, desired: w, actual: h), &budget)
        }
        return FieldChange(
            path: path, operation: operation, old: h?.value, new: w?.value, declaredClass: declared,
            changeClass: verdict.changeClass, reason: verdict.reason, drift: Leaf.differ(desired: recorded[path], actual: h),
            sensitive: w?.secret != nil || h?.secret != nil)
    }

    /// Changes of a named collection: elements in both compared field by field, then elements
    /// only in the manifest (adds), then elements only on the VM (removes).
    private func collectionChanges(
        _ path: String, want: [Element], have: [Element], recorded: FlatSpec, budget: inout HotplugBudget
    ) -> [FieldChange] {
        var have = have
        if path == "spec.disks" {
            have += unknownDisks.map { Element(name: $0.name, summary: "not in the launch record", leaves: []) }
        } else if path == "spec.networks" {
            have += unknownNICs.map { Element(name: $0.name, summary: "not in the launch record", leaves: []) }
        }
        let recordedNames = Set(recorded.elements(path).map(\.name))
        let recordedLeaves = recorded.leavesByPath
        var out: [FieldChange] = []
        for w in want {
            let elementPath = "\(path)[\(w.name)]"
            if let h = have.first(where: { $0.name == w.name }) {
                let byPath = Dictionary(h.leaves.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
                for wl in w.leaves {
                    let hl = byPath[wl.path]
                    if Leaf.differ(desired: wl, actual: hl) { out.append(change(wl.path, wl, hl, recordedLeaves, &budget)) }
                }
            } else {
                let declared = Planner.declaredClass(elementPath)
                let v = declared == .live ? verdict(LiveChangeSite(path: elementPath, operation: .add), &budget)
                    : LiveVerdict(changeClass: declared, reason: declared == .restart ? "needs a relaunch" : "record only")
                out.append(FieldChange(
                    path: elementPath, operation: .add, old: nil, new: w.summary, declaredClass: declared,
                    changeClass: v.changeClass, reason: v.reason, drift: recordedNames.contains(w.name)))
            }
        }
        for h in have where !want.contains(where: { $0.name == h.name }) {
            let elementPath = "\(path)[\(h.name)]"
            let declared = Planner.declaredClass(elementPath)
            let v = declared == .live ? verdict(LiveChangeSite(path: elementPath, operation: .remove), &budget)
                : LiveVerdict(changeClass: declared, reason: declared == .restart ? "needs a relaunch" : "record only")
            out.append(FieldChange(
                path: elementPath, operation: .remove, old: h.summary, new: nil, declaredClass: declared,
                changeClass: v.changeClass, reason: v.reason, drift: !recordedNames.contains(h.name)))
        }
        return out
    }
}
