// MARK: - ManifestDiagnostic

/// One problem found in a set of manifests, with the place it was found.
///
/// Loading never stops at the first problem: every diagnostic of every file is
/// collected, then reported sorted by ``SourceLocation``. A diagnostic is not a
/// thrown error; ``ManifestError`` wraps a list of them when a caller wants one.
package struct ManifestDiagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How bad a diagnostic is.
    package enum Severity: String, Sendable, Hashable, Codable {
        /// The manifest set is invalid; nothing may be applied.
        case error
        /// Worth a look, but the manifest set is valid (a kernel that does not exist yet).
        case warning
    }

    /// What kind of problem this is, for callers that map problems to exit codes.
    package enum Code: String, Sendable, Hashable, Codable {
        /// YAML syntax, encoding or resource limits (libyaml's position).
        case syntax
        /// A manifest that is well-formed YAML but not a valid qemuctl manifest.
        case invalid
        /// A path the user named could not be read, or holds no manifests (a usage problem).
        case unreadable
        /// A host file referenced by a manifest is missing (only a warning for `validate`).
        case hostFile
    }

    /// Error or warning.
    package var severity: Severity
    /// The problem's category.
    package var code: Code
    /// Where the problem is.
    package var location: SourceLocation
    /// One sentence, lower-case start, no trailing period: `unknown key 'memroy'`.
    package var message: String
    /// An optional suggestion: `did you mean 'memory'?`.
    package var hint: String?

    /// Creates a diagnostic.
    package init(
        _ severity: Severity = .error, code: Code = .invalid, at location: SourceLocation,
        _ message: String, hint: String? = nil
    ) {
        self.severity = severity
        self.code = code
        self.location = location
        self.message = message
        self.hint = hint
    }

    /// `path:line:col: error: message (hint)`, the line `qemuctl validate` prints.
    package var description: String {
        // Usage problems (an unreadable path) have no position.
        let place = location.line > 0 ? location.description : location.file
        var text = "\(place): \(severity.rawValue): \(message)"
        if let hint { text += " (\(hint))" }
        return text
    }

    /// The order diagnostics are reported in: by location, then message.
    package static func reportOrder(_ a: ManifestDiagnostic, _ b: ManifestDiagnostic) -> Bool {
        if a.location != b.location { return a.location < b.location }
        return a.message < b.message
    }
}

// MARK: - ManifestError

/// Thrown by the convenience loaders when any diagnostic is an error.
package struct ManifestError: Error, Sendable, CustomStringConvertible {
    /// Every diagnostic, errors and warnings, in report order.
    package var diagnostics: [ManifestDiagnostic]

    /// Creates the error from collected diagnostics.
    package init(diagnostics: [ManifestDiagnostic]) {
        self.diagnostics = diagnostics
    }

    /// One diagnostic per line.
    package var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
