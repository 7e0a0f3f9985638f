import Manifest
import Testing

/// A valid manifest to start from; `extra` is appended under `spec:` (2-space indent).
/// Lines: 1 apiVersion, 2 kind, 3 metadata, 4 name, 5 spec, 6… extra.
func manifest(name: String = "vm1", spec extra: String = "  runState: running\n") -> String {
    """
    apiVersion: qemuctl/v1
    kind: VirtualMachine
    metadata:
      name: \(name)
    spec:

    """ + extra
}

/// Loads YAML text from memory as file `t.yaml` in `/base`.
func load(_ yaml: String, file: String = "t.yaml", limits: ManifestLimits = .default) -> ManifestSet {
    ManifestLoader(limits: limits).load(bytes: Array(yaml.utf8), file: file, baseDirectory: "/base")
}

/// The diagnostics as printed lines.
func lines(_ set: ManifestSet) -> [String] { set.diagnostics.map(\.description) }

/// Expects exactly one error, at `line`:`column`, whose message is `message`.
func expectSingleError(
    _ set: ManifestSet, _ line: Int, _ column: Int, _ message: String, hint: String? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    let errors = set.diagnostics.filter { $0.severity == .error }
    #expect(errors.count == 1, "\(lines(set))", sourceLocation: sourceLocation)
    guard let e = errors.first else { return }
    #expect(e.location.line == line && e.location.column == column, "\(e)", sourceLocation: sourceLocation)
    #expect(e.message == message, sourceLocation: sourceLocation)
    if let hint { #expect(e.hint == hint, sourceLocation: sourceLocation) }
}
