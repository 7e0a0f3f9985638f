import Manifest

// MARK: - PlanRenderer

/// Renders a ``Plan`` as the text of `qemuctl diff` and `qemuctl plan`, Terraform-style. Pure.
///
/// ```text
/// + hello: create (not running)
///     + spec.runState: running (live)
/// ~ web-1: update (1 live change)
///     ~ spec.disks[root].throttle.bps: 50MiB -> 100MiB (live) # set live (block_set_io_throttle); drift (changed outside qemuctl)
/// ~ db-1: update, restart pending (1 change needs a relaunch; use --restart=if-needed)
///     ~ spec.runState: running -> paused (live) # pause
///     ~ spec.machine.type: "pc" -> "q35" (restart, pending) # needs a relaunch
/// -/+ app: restart (1 change needs a relaunch; disks and uuid kept)
///     ~ spec.cpu.model: "host" -> "max" (restart) # needs a relaunch
/// - old: delete (not in any manifest; disks are kept)
/// ! wedged: unresponsive (QMP did not answer within 2s; not planned, never launched twice)
///
/// Plan: 1 to create, 1 to update, 1 to restart, 1 to delete. 1 restart pending (use --restart=if-needed). 1 VM not planned.
/// ```
///
/// Symbols: `+` create, `~` update (and a pending restart, which only updates now), `-/+`
/// restart, `-` delete, `!` not planned. Per change: `~ path: old -> new`, `+ path: new` for
/// an added element or label, `- path: old` for a removed one; then the class, `pending` for a
/// restart-class change left for later, and the reason.
///
/// Secrets never appear: the plan holds none, and their values render as `(sensitive)`.
package struct PlanRenderer: Sendable {
    /// Whether to colour symbols with ANSI escapes (the CLI turns it on for a TTY only).
    package var color: Bool
    /// Whether to append each change's reason as a `# …` comment.
    package var reasons: Bool
    /// Whether to list no-op VMs too (`-v`).
    package var showUnchanged: Bool

    /// Creates a renderer; plain text, reasons on, unchanged VMs hidden.
    package init(color: Bool = false, reasons: Bool = true, showUnchanged: Bool = false) {
        self.color = color
        self.reasons = reasons
        self.showUnchanged = showUnchanged
    }

    /// What is printed when nothing would change.
    package static let noChangesMessage = "No changes. The VMs match their manifests."

    /// The whole text, ending in a newline: one block per VM that changes (or cannot be
    /// planned), a blank line, and the summary line; or ``noChangesMessage``.
    package func render(_ plan: Plan) -> String {
        var out = ""
        for vm in plan.vms where vm.action != .noOp || showUnchanged || vm.pendingRestartCleared {
            out += render(vm)
        }
        if plan.hasChanges || plan.hasBlockedVMs {
            if !out.isEmpty { out += "\n" }
            out += summaryLine(plan) + "\n"
            if plan.prune, let set = plan.applySet { out += "--prune deletes only VMs of apply set \(set).\n" }
        } else {
            if !out.isEmpty { out += "\n" }
            out += Self.noChangesMessage + "\n"
        }
        return out
    }

    /// One VM's block: a header line, then one line per change.
    package func render(_ vm: VMPlan) -> String {
        let (symbol, paint) = Self.symbol(vm)
        var label: String
        switch vm.action {
        case .restart where vm.restartPending: label = "update, restart pending"
        case .noOp where vm.pendingRestartCleared: label = "no-op, restart no longer pending"
        default: label = vm.action.rawValue
        }
        var out = "\(colored(symbol, paint)) \(vm.name): \(label) (\(vm.reason))\n"
        for c in vm.changes {
            out += "    " + render(c, in: vm) + "\n"
        }
        return out
    }

    /// One change: `~ path: old -> new (live)`, `+ path: new (live)`, `- path: old (restart)`.
    package func render(_ c: FieldChange, in vm: VMPlan) -> String {
        let old = c.sensitive && c.old != nil ? Render.sensitive : (c.old ?? "null")
        let new = c.sensitive && c.new != nil ? Render.sensitive : (c.new ?? "null")
        var line: String
        var paint: Paint
        switch c.operation {
        case .add where vm.action == .create || c.old == nil && c.path.hasSuffix("]"):
            line = "+ \(c.path): \(new)"
            paint = .green
        case .remove where c.path.hasSuffix("]"):
            line = "- \(c.path): \(old)"
            paint = .red
        default:
            line = "~ \(c.path): \(old) -> \(new)"
            paint = .yellow
        }
        line = colored(String(line.prefix(1)), paint) + line.dropFirst()
        var tag = c.changeClass.rawValue
        if vm.action == .restart, vm.restartPending, c.changeClass == .restart { tag += ", pending" }
        line += " (\(tag))"
        if reasons, vm.action != .create {
            line += " # " + c.reason + (c.drift ? "; drift (changed outside qemuctl)" : "")
        }
        return line
    }

    /// `Plan: 1 to create, 2 to update, 1 to restart, 0 to delete.`, then the pending restarts
    /// and the VMs that could not be planned, when there are any.
    package func summaryLine(_ plan: Plan) -> String {
        let s = plan.summary
        var line = "Plan: \(s.create) to create, \(s.update) to update, \(s.restart) to restart, \(s.delete) to delete."
        if s.restartPending > 0 {
            line += " \(s.restartPending) restart\(s.restartPending == 1 ? "" : "s") pending"
                + " (use --restart=if-needed)."
        }
        if s.blocked > 0 { line += " \(s.blocked) VM\(s.blocked == 1 ? "" : "s") not planned." }
        return line
    }

    // MARK: Symbols and colour

    /// ANSI colours used.
    enum Paint: String {
        case green = "32", yellow = "33", red = "31", magenta = "35", plain = "0"
    }

    /// The header symbol of a VM: `+` create, `~` update (and pending restart), `-/+` restart,
    /// `-` delete, `!` not planned, ` ` no-op.
    static func symbol(_ vm: VMPlan) -> (String, Paint) {
        switch vm.action {
        case .create: ("+", .green)
        case .update: ("~", .yellow)
        case .restart: vm.restartPending ? ("~", .yellow) : ("-/+", .magenta)
        case .delete: ("-", .red)
        case .noOp: (" ", .plain)
        case .unresponsive, .unmanaged: ("!", .red)
        }
    }

    func colored(_ text: String, _ paint: Paint) -> String {
        guard color, paint != .plain else { return text }
        return "\u{1B}[\(paint.rawValue)m\(text)\u{1B}[0m"
    }
}

// MARK: - Exit codes

extension Plan {
    /// `qemuctl diff`'s status for an error before a plan exists (bad manifest, no state dir).
    package static let diffErrorExitCode: Int32 = 2
    /// `qemuctl plan --detailed-exitcode`'s status for an error.
    package static let planErrorExitCode: Int32 = 1

    /// `qemuctl diff`'s exit status, kubectl's rule: 0 no differences, 1 differences,
    /// 2 when a VM could not be compared (unresponsive or unmanaged).
    package var diffExitCode: Int32 {
        if hasBlockedVMs { return Plan.diffErrorExitCode }
        return hasChanges ? 1 : 0
    }

    /// `qemuctl plan --detailed-exitcode`'s status, Terraform's rule: 0 no changes, 1 error
    /// (a VM could not be planned), 2 changes.
    package var detailedExitCode: Int32 {
        if hasBlockedVMs { return Plan.planErrorExitCode }
        return hasChanges ? 2 : 0
    }
}
