import ArgumentParser
import Reconcile

/// `-l/--selector` as an option value: a ``LabelSelector``, or a usage error naming the part
/// that is not a requirement.
enum SelectorArgument {
    /// Parses one `-l` value.
    static func parse(_ text: String) throws -> LabelSelector {
        do { return try LabelSelector(text) } catch { throw ValidationError(error.message) }
    }
}

/// What `--prune` may delete, for `apply`, `plan` and `diff`: the VMs of one apply set
/// (``ApplySet``) whose labels match `-l`.
struct PruneScope: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The name of the manifest set: recorded on the VMs launched, and with --prune the only set pruned (default: an id made from the -f paths).",
        valueName: "name"))
    var pruneSet: String?

    @Option(name: [.customShort("l"), .customLong("selector")],
            help: ArgumentHelp("With --prune: delete only VMs whose labels match (key=value, key!=value, key, !key; comma-separated).",
                               valueName: "selector"),
            transform: SelectorArgument.parse)
    var selector: LabelSelector?

    /// Refuses a `--prune-set` that cannot be a set name.
    func validate() throws {
        if let pruneSet {
            do { _ = try ApplySet(named: pruneSet) } catch { throw ValidationError(error.message) }
        }
    }

    /// The set named by `--prune-set`; nil: the one the paths make.
    var applySet: ApplySet? { pruneSet.flatMap { try? ApplySet(named: $0) } }
}
