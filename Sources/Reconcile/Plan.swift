package import Manifest

// MARK: - PlanOptions

/// What the user asked for on the command line, plus the secret markers of the manifests.
package struct PlanOptions: Sendable, Hashable {
    /// `--restart=never|if-needed`.
    package enum RestartPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// Leave running VMs running; report restart-class changes as a pending restart (default).
        case never
        /// Relaunch VMs that need it (graceful stop with timeout, then launch; disks and uuid kept).
        case ifNeeded = "if-needed"
    }

    /// `--prune`: delete managed VMs that no manifest declares (within ``applySet`` and ``selector``).
    package var prune: Bool
    /// The set of manifests planned (``ApplySet``); nil: none (every managed VM is in scope, as
    /// before sets existed: only tests and library callers plan so).
    package var applySet: ApplySet? = nil
    /// `-l`: `--prune` deletes only VMs whose recorded labels match.
    package var selector: LabelSelector? = nil
    /// `--restart`.
    package var restart: RestartPolicy
    /// Markers of the secrets the manifests reference, by VM name, then field path
    /// (`spec.display.vnc.passwordFrom`); derived by the caller the same way ``LaunchRecord/secrets``
    /// were. A missing marker means "unknown": only the references are compared then.
    package var secretMarkers: [String: [String: SecretMarker]]
    /// Whether the plan carries the fingerprint of the observed state (``Plan/actualFingerprint``),
    /// which a plan needs to be saved or printed as JSON. It costs a canonical encoding of every
    /// observed VM, so `diff`'s text output and `apply -f` go without (``StateFingerprint/none``).
    package var fingerprint: Bool

    /// Creates options; the defaults are `apply`'s.
    package init(
        prune: Bool = false, restart: RestartPolicy = .never, secretMarkers: [String: [String: SecretMarker]] = [:],
        fingerprint: Bool = true
    ) {
        self.prune = prune
        self.restart = restart
        self.secretMarkers = secretMarkers
        self.fingerprint = fingerprint
    }
}

// MARK: - Plan

/// What `apply` would do, as data: one ``VMPlan`` per VM, sorted by name.
///
/// `Codable` for `plan --json` and `plan --out plan.json`; `apply plan.json` re-observes, compares
/// ``StateFingerprint/init(of:)`` of what it sees with ``actualFingerprint`` and refuses the plan
/// when they differ. A plan holds no secret: values are rendered with secrets redacted, and the
/// desired specs hold only references.
package struct Plan: Sendable, Hashable, Codable {
    /// The version of this encoding; bumped when a field changes meaning.
    package static let currentFormatVersion = 1

    /// The version of this encoding (``currentFormatVersion`` when made by this build).
    package var formatVersion: Int
    /// `--prune` as planned.
    package var prune: Bool
    /// The id of the manifest set planned (``ApplySet``); nil when planned without one.
    package var applySet: String? = nil
    /// `--restart` as planned.
    package var restart: PlanOptions.RestartPolicy
    /// The fingerprint of the observed state the plan was computed from; ``StateFingerprint/none``
    /// when it was planned without (``PlanOptions/fingerprint``): such a plan is never current.
    package var actualFingerprint: StateFingerprint
    /// One entry per VM, sorted by name. Managed VMs absent from the manifests appear only
    /// when pruning (as deletes).
    package var vms: [VMPlan]
    /// Counts by action.
    package var summary: Summary

    /// Creates a plan; ``summary`` is computed from `vms`.
    package init(
        prune: Bool, restart: PlanOptions.RestartPolicy, actualFingerprint: StateFingerprint, vms: [VMPlan]
    ) {
        self.formatVersion = Plan.currentFormatVersion
        self.prune = prune
        self.restart = restart
        self.actualFingerprint = actualFingerprint
        self.vms = vms
        self.summary = Summary(vms)
    }

    /// Whether applying the plan would change anything, a pending restart included.
    package var hasChanges: Bool { vms.contains { $0.action.isChange } }

    /// Whether some VM could not be planned (``Action/unresponsive`` or ``Action/unmanaged``).
    package var hasBlockedVMs: Bool { vms.contains { $0.action.isBlocked } }

    /// The entry for `name`.
    package subscript(name: String) -> VMPlan? { vms.first { $0.name == name } }

    /// Whether this plan may still be applied to `actual`, freshly observed: same encoding
    /// version, and the same fingerprint as the state the plan was computed from. `apply plan.json`
    /// refuses a plan for which this is false ("the VMs changed since the plan was made").
    package func isCurrent(for actual: [ObservedVM]) -> Bool {
        formatVersion == Plan.currentFormatVersion && actualFingerprint != .none
            && actualFingerprint == StateFingerprint(of: actual)
    }

    /// Counts by action; each VM is counted once.
    package struct Summary: Sendable, Hashable, Codable {
        /// VMs to launch.
        package var create = 0
        /// VMs changed live or in their record only.
        package var update = 0
        /// VMs to relaunch now.
        package var restart = 0
        /// VMs whose restart is left pending (their live changes are applied).
        package var restartPending = 0
        /// VMs to delete.
        package var delete = 0
        /// VMs that already match.
        package var noOp = 0
        /// VMs that could not be planned.
        package var blocked = 0

        /// Counts `vms`.
        package init(_ vms: [VMPlan]) {
            for vm in vms {
                switch vm.action {
                case .create: create += 1
                case .update: update += 1
                case .restart: if vm.restartPending { restartPending += 1 } else { restart += 1 }
                case .delete: delete += 1
                case .noOp: noOp += 1
                case .unresponsive, .unmanaged: blocked += 1
                }
            }
        }
    }
}

// MARK: - VMPlan

/// The planned action for one VM and the field changes behind it.
///
/// A restart that `--restart=never` does not perform is action ``Action/restart`` with
/// ``restartPending`` set: `apply` then performs only ``executedChanges`` (the live and
/// metadata ones, possibly none), leaves the VM running and records "restart pending".
/// With `--restart=if-needed`, ``restartPending`` is false and `apply` relaunches the VM
/// with ``desired`` (same uuid, same disks); the live changes are part of the relaunch.
package struct VMPlan: Sendable, Hashable, Codable {
    /// The VM's name.
    package var name: String
    /// What happens to it.
    package var action: Action
    /// Whether a needed restart is left pending (only with action ``Action/restart``).
    package var restartPending: Bool
    /// Whether the record says a restart is pending and the manifest no longer needs one
    /// (it was reverted): `apply` clears the flag; nothing else changes.
    package var pendingRestartCleared: Bool
    /// Why, in a few words: "not running", "not in any manifest (--prune)".
    package var reason: String
    /// The uuid to keep: the recorded one for a relaunch, a restart or a delete; nil for a VM never launched.
    package var uuid: String?
    /// The apply set the VM belongs to once the plan is applied (``ApplySet``): the planned set
    /// for a VM launched or joining it, the recorded one otherwise; nil for none.
    package var applySet: String? = nil
    /// Field by field, in field-table order. For a create: the fields the manifest sets
    /// (old values absent); empty for delete, no-op, unresponsive and unmanaged.
    package var changes: [FieldChange]
    /// The VM as the manifest declares it; nil for a delete and for a VM without a manifest.
    package var desired: VirtualMachine?

    /// Creates an entry.
    package init(
        name: String, action: Action, restartPending: Bool = false, pendingRestartCleared: Bool = false,
        reason: String, uuid: String? = nil, changes: [FieldChange] = [], desired: VirtualMachine? = nil
    ) {
        self.name = name
        self.action = action
        self.restartPending = restartPending
        self.pendingRestartCleared = pendingRestartCleared
        self.reason = reason
        self.uuid = uuid
        self.changes = changes
        self.desired = desired
    }

    /// The changes `apply` performs on the running VM now: all of them for an update, the
    /// live and metadata ones for a pending restart, none otherwise.
    package var executedChanges: [FieldChange] {
        switch action {
        case .update: changes
        case .restart where restartPending: changes.filter { $0.changeClass != .restart }
        default: []
        }
    }

    /// The changes that wait for a relaunch (a pending restart's restart-class changes).
    package var deferredChanges: [FieldChange] {
        action == .restart && restartPending ? changes.filter { $0.changeClass == .restart } : []
    }

    /// Whether `apply` relaunches this VM now.
    package var relaunches: Bool { action == .restart && !restartPending }
}

// MARK: - Action

/// What happens to one VM.
package enum Action: String, Sendable, Hashable, Codable, CaseIterable {
    /// Launch it: it is not running (no record, or its QEMU is gone). A recorded uuid is reused.
    case create
    /// Change it live over QMP and/or in its record; no relaunch.
    case update
    /// Relaunch it (disks and uuid kept); see ``VMPlan/restartPending`` for `--restart=never`.
    case restart
    /// Stop it and remove its runtime files; disks are kept. Only with `--prune`, only managed VMs.
    case delete
    /// Nothing to do.
    case noOp = "no-op"
    /// Its QEMU does not answer: nothing is planned, and it is never launched a second time.
    case unresponsive
    /// A QEMU of that name runs that qemuctl does not manage (or has no readable record):
    /// never touched; `qemuctl import` adopts it.
    case unmanaged

    /// Whether the action changes something.
    package var isChange: Bool {
        switch self {
        case .create, .update, .restart, .delete: true
        case .noOp, .unresponsive, .unmanaged: false
        }
    }

    /// Whether the VM could not be planned.
    package var isBlocked: Bool { self == .unresponsive || self == .unmanaged }
}

// MARK: - FieldChange

/// One field whose desired value differs from the actual one.
///
/// Values are rendered as they would be written in a manifest (`100MiB`, `"/images/a.qcow2"`,
/// `running`), absent values as nil; a secret is always `(sensitive)`. Encoded, `old` and `new`
/// are JSON values (a string, a number, a list; see FieldChange+Coding.swift) and
/// `oldText`/`newText` keep the rendered form.
package struct FieldChange: Sendable, Hashable {
    /// The kind of difference.
    package enum Operation: String, Sendable, Hashable, Codable, CaseIterable {
        /// A field or collection element (disk, NIC) that the VM does not have.
        case add
        /// A field or element the VM has and the manifest does not.
        case remove
        /// A value that differs.
        case modify
    }

    /// Where: `spec.disks[root].throttle.bps`, `spec.networks[net1]`, `metadata.labels[role]`.
    package var path: String
    /// Add, remove or modify.
    package var operation: Operation
    /// The actual value; nil when absent.
    package var old: String?
    /// The desired value; nil when absent.
    package var new: String?
    /// The class ``FieldTable`` gives the field.
    package var declaredClass: ChangeClass
    /// What applying it takes here: the declared class, or ``ChangeClass/restart`` when the
    /// live route is closed (no free root port, beyond `maxCount`, …; ``reason`` says why).
    package var changeClass: ChangeClass
    /// Why, in a few words.
    package var reason: String
    /// Whether the actual value differs from the record: someone changed the VM outside qemuctl.
    package var drift: Bool
    /// Whether the values are secrets (rendered `(sensitive)`).
    package var sensitive: Bool

    /// Creates a change.
    package init(
        path: String, operation: Operation, old: String?, new: String?, declaredClass: ChangeClass,
        changeClass: ChangeClass? = nil, reason: String, drift: Bool = false, sensitive: Bool = false
    ) {
        self.path = path
        self.operation = operation
        self.old = old
        self.new = new
        self.declaredClass = declaredClass
        self.changeClass = changeClass ?? declaredClass
        self.reason = reason
        self.drift = drift
        self.sensitive = sensitive
    }
}
