// MARK: - DecodeContext

/// State shared while decoding one file: its name, its directory and the diagnostics so far.
/// The loader reuses one context from file to file (``start(file:baseDirectory:)``).
final class DecodeContext {
    /// The file as the user named it.
    private(set) var file: String
    /// The absolute directory relative paths are resolved against.
    private(set) var baseDirectory: String
    /// Whether missing host files are reported.
    let hostFiles: ManifestLoader.HostFiles
    /// Everything found so far.
    var diagnostics: [ManifestDiagnostic] = []
    /// The nodes of the file being decoded: valid only while its storage is (set by the loader).
    var tree: YAMLTree = .empty

    /// Where each ``ObjectReader``'s mapping is: the enclosing entry, the key, the list
    /// index (or -1). Emptied for each document.
    private var paths: [(parent: Int32, key: String, index: Int32)] = []
    /// The readers' lookup cursors, one per nesting depth (a hint, never a correctness matter).
    let cursors: UnsafeMutablePointer<Int32>
    static let maxDepth: Int32 = 32

    init(file: String, baseDirectory: String, hostFiles: ManifestLoader.HostFiles = .ignore) {
        self.file = file
        self.baseDirectory = PathUtilities.resolve(baseDirectory, against: "/")
        self.hostFiles = hostFiles
        cursors = .allocate(capacity: Int(Self.maxDepth))
        cursors.initialize(repeating: 0, count: Int(Self.maxDepth))
    }

    deinit { cursors.deallocate() }

    /// Starts on another file: its name and directory; no diagnostics yet.
    func start(file: String, baseDirectory: String) {
        self.file = file
        if baseDirectory != self.baseDirectory {
            self.baseDirectory = PathUtilities.resolve(baseDirectory, against: "/")
        }
        diagnostics.removeAll(keepingCapacity: true)
    }

    /// Forgets the paths of the previous document's readers.
    func resetPaths() { paths.removeAll(keepingCapacity: true) }

    /// Records where a reader's mapping is; its id for ``path(_:)``.
    func addPath(parent: Int32, key: String, index: Int) -> Int32 {
        paths.append((parent, key, Int32(truncatingIfNeeded: index)))
        return Int32(paths.count - 1)
    }

    /// `spec.disks[0]`: the path of a reader's mapping, for messages.
    func path(_ id: Int32) -> String {
        guard id >= 0 else { return "" }
        let e = paths[Int(id)]
        var p = e.key
        if e.parent >= 0 {
            let parent = path(e.parent)
            p = parent.isEmpty ? e.key : "\(parent).\(e.key)"
        }
        if e.index >= 0 { p += "[\(e.index)]" }
        return p
    }

    /// Whether each host path checked so far exists, looked up once per load: manifests of a
    /// fleet name the same kernels, initrds and images again and again (one `access` each
    /// otherwise). The loader keeps one context for all the files of a load.
    private var hostFileExists: [String: Bool] = [:]

    /// Reports `path` (absolute) when it does not exist and the policy asks for it.
    /// `node` is only evaluated when the file is missing.
    func checkHostFile(_ path: String?, _ node: @autoclosure () -> YAMLNode, _ what: String) {
        guard let path, hostFiles != .ignore else { return }
        let exists: Bool
        if let known = hostFileExists[path] {
            exists = known
        } else {
            exists = FileSystem.exists(path)
            hostFileExists[path] = exists
        }
        guard !exists else { return }
        diagnostics.append(ManifestDiagnostic(
            hostFiles == .warn ? .warning : .error, code: .hostFile, at: location(node()),
            "\(what) '\(path)' does not exist", hint: hostFiles == .warn ? "it must exist before 'apply'" : nil))
    }

    /// Checks a base image (`create.from.path`) when host files are looked at: it must exist (a missing
    /// one is reported like other missing host files: a warning for `validate`, as it may still be
    /// fetched before `apply`), and be a regular file when `regular` (an overlay's backing file; always
    /// an error).
    func checkBaseImage(_ path: String, _ node: @autoclosure () -> YAMLNode, regular: Bool) {
        guard hostFiles != .ignore else { return }
        switch FileSystem.info(path) {
        case .failure(let f):
            diagnostics.append(ManifestDiagnostic(hostFiles == .warn ? .warning : .error, code: .hostFile, at: location(node()),
                                                  "base image '\(path)' cannot be used: \(f.message)",
                                                  hint: hostFiles == .warn ? "it must exist before 'apply'" : "create.from.path must name an existing image"))
        case .success(let i) where regular && i.kind != .file:
            diagnostics.append(ManifestDiagnostic(.error, code: .hostFile, at: location(node()),
                                                  "base image '\(path)' is not a regular file",
                                                  hint: "an overlay's base must be an image file; use 'create.mode: copy' to copy a device"))
        case .success:
            break
        }
    }

    func location(_ node: YAMLNode) -> SourceLocation {
        SourceLocation(file: file, line: Int(node.line), column: Int(node.column))
    }

    func error(_ node: YAMLNode, _ message: String, hint: String? = nil) {
        diagnostics.append(ManifestDiagnostic(.error, code: .invalid, at: location(node), message, hint: hint))
    }

    /// Resolves a manifest path against the manifest's directory and removes `.`/`..` segments lexically.
    func resolve(_ path: String) -> String {
        var path = path
        return path.withUTF8 { resolve($0) }
    }

    /// The same for a path given as UTF-8 bytes.
    func resolve(_ path: UnsafeBufferPointer<UInt8>) -> String {
        // `baseDirectory` is always stored normalized (init and start resolve it).
        PathUtilities.resolve(path, againstNormalized: baseDirectory)
    }
}

// MARK: - Helpers for messages

enum Text {
    /// Quotes a value for a message, escaping control characters and shortening long values.
    static func quoted(_ s: String) -> String {
        var out = "'"
        var n = 0
        for scalar in s.unicodeScalars {
            n += 1
            if n > 60 {
                out += "…"
                break
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "'"
    }

    /// A human list: `'a', 'b' or 'c'`.
    static func list(_ items: [String], conjunction: String = "or") -> String {
        let q = items.map { "'\($0)'" }
        guard q.count > 1 else { return q.first ?? "" }
        return q.dropLast().joined(separator: ", ") + " \(conjunction) " + q.last!
    }

    /// The closest candidate within a small edit distance, for "did you mean".
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)? = nil
        for c in candidates {
            if c.lowercased() == lower { return c }
            let d = editDistance(Array(lower.utf8), Array(c.lowercased().utf8))
            if d <= max(1, min(3, c.utf8.count / 3)), best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    cur[j] = min(cur[j], prev2[j - 2] + 1)
                }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}
