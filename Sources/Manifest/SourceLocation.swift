// MARK: - SourceLocation

/// A position in a manifest file, as a user would look it up in an editor.
///
/// Lines and columns are 1-based; columns count Unicode scalars, as libyaml does.
package struct SourceLocation: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    /// The file as the user named it (`vms/web.yaml`), or `-` for standard input.
    package var file: String
    /// The 1-based line.
    package var line: Int
    /// The 1-based column.
    package var column: Int

    /// Creates a location.
    package init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:col`, the prefix of every diagnostic.
    package var description: String { "\(file):\(line):\(column)" }

    /// Orders by file, then line, then column.
    package static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        if a.file != b.file { return a.file < b.file }
        if a.line != b.line { return a.line < b.line }
        return a.column < b.column
    }
}
