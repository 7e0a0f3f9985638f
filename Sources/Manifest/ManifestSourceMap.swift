// MARK: - ManifestSourceMap

/// Where each field of one manifest document is written, for messages about a field of an
/// already decoded ``VirtualMachine`` (the normalized value keeps only the VM's own position).
///
/// Paths are the planner's, with concrete indices: `spec.disks[1].throttle`,
/// `spec.networks[0].user.hostfwd[1]`. A mapping key's path points at the key; a sequence
/// item's path at the item.
///
/// ```swift
/// let maps = ManifestSourceMap.documents(ofYAML: bytes, file: "vms/web.yaml")
/// maps[0].nearest("spec.disks[1].throttle.bps")   // vms/web.yaml:31:9
/// ```
package struct ManifestSourceMap: Sendable, Hashable {
    /// The file as named in diagnostics.
    package var file: String
    /// Where the document starts.
    package var start: SourceLocation
    /// Where the value of `metadata.name` is: the same place as ``VirtualMachine/source``.
    package var nameValue: SourceLocation?
    /// Each written path and where it is.
    package var locations: [String: SourceLocation]

    /// Creates a map.
    package init(file: String, start: SourceLocation, nameValue: SourceLocation? = nil,
                 locations: [String: SourceLocation] = [:]) {
        self.file = file
        self.start = start
        self.nameValue = nameValue
        self.locations = locations
    }

    /// Whether the document writes `path` (a default the manifest leaves out is not written).
    package func writes(_ path: String) -> Bool { locations[path] != nil }

    /// Where `path` is written, or else its closest written ancestor (`spec.disks[1].throttle.bps`,
    /// then `spec.disks[1].throttle`, …), or else the document's start.
    package func nearest(_ path: String) -> SourceLocation {
        var p = Substring(path)
        while !p.isEmpty {
            if let l = locations[String(p)] { return l }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            p = p[..<cut]
        }
        return start
    }

    /// One map per non-empty document of `bytes`, in document order. Syntax errors yield fewer
    /// documents (``ManifestLoader`` reports them); this function reports nothing.
    package static func documents(ofYAML bytes: [UInt8], file: String, limits: ManifestLimits = .default)
        -> [ManifestSourceMap]
    {
        var diagnostics: [ManifestDiagnostic] = []
        let reader = LibYAMLReader(file: file, limits: limits)
        let storage = YAMLStorage()
        let documents = bytes.withUnsafeBytes { reader.read($0, into: storage, diagnostics: &diagnostics) }
        var out: [ManifestSourceMap] = []
        storage.withTree { tree in
            for d in documents {
                guard let root = d.root else { continue }
                var map = ManifestSourceMap(
                    file: file, start: SourceLocation(file: file, line: Int(d.line), column: Int(d.column)))
                map.walk(root, path: "", tree: tree)
                out.append(map)
            }
        }
        return out
    }

    /// The map of each VM of `set`, by VM name, from the source text the loader kept
    /// (``ManifestLoader/keepsSourceText``); a VM whose document is not found has none.
    package static func byVirtualMachine(in set: ManifestSet) -> [String: ManifestSourceMap] {
        var maps: [SourceLocation: ManifestSourceMap] = [:]
        for (file, bytes) in set.sourceTexts {
            for map in documents(ofYAML: bytes, file: file) {
                if let at = map.nameValue { maps[at] = map }
            }
        }
        var out: [String: ManifestSourceMap] = [:]
        for vm in set.virtualMachines {
            if let map = maps[vm.source] { out[vm.name] = map }
        }
        return out
    }

    private mutating func walk(_ node: YAMLNode, path: String, tree: YAMLTree) {
        switch node.type {
        case .scalar:
            if path == "metadata.name" { nameValue = location(node) }
        case .mapping:
            let items = tree.items(node)
            var i = 0
            while i + 1 < items.count {
                defer { i += 2 }
                guard items[i].isScalar else { continue }
                let key = tree.string(items[i])
                let child = path.isEmpty ? key : "\(path).\(key)"
                if locations[child] == nil { locations[child] = location(items[i]) }
                walk(items[i + 1], path: child, tree: tree)
            }
        case .sequence:
            for (n, item) in tree.items(node).enumerated() {
                let child = "\(path)[\(n)]"
                locations[child] = location(item)
                walk(item, path: child, tree: tree)
            }
        }
    }

    private func location(_ node: YAMLNode) -> SourceLocation {
        SourceLocation(file: file, line: Int(node.line), column: Int(node.column))
    }
}
