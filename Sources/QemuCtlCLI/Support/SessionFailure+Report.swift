import Manifest
import Reconcile

extension Session.Failure {
    /// Prints every problem on standard error.
    func report() {
        switch self {
        case .manifests(let set):
            for d in set.diagnostics { Terminal.error(d.description) }
            let errors = set.diagnostics.filter { $0.severity == .error }.count
            Terminal.fail("\(errors) problem\(errors == 1 ? "" : "s") in the manifests; nothing was changed",
                          hint: "`qemuctl validate -f PATH` checks manifests without touching the host")
        case .invalid(let problems):
            for p in problems { Terminal.error(p) }
            Terminal.fail("the manifests cannot be applied as they are; nothing was changed")
        }
    }
}
