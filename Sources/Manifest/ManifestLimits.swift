// MARK: - ManifestLimits

/// Resource bounds applied while reading YAML, so hostile input is refused quickly.
///
/// The defaults suit hand-written manifests by a wide margin: a typical VM manifest
/// is 1–3 KB, nests 5 levels deep and uses no aliases.
///
/// | limit | default | refused input |
/// |---|---|---|
/// | ``maxFileBytes`` | 4 MiB | a 100 MB file, before it is read |
/// | ``maxDepth`` | 64 | `[[[[…` ten thousand deep |
/// | ``maxAliasNodes`` | 10,000 | a "billion laughs" alias bomb |
/// | ``maxNodes`` | 1,000,000 | a document too large to decode quickly |
package struct ManifestLimits: Sendable, Hashable {
    /// The largest file (or standard input) accepted, in bytes.
    package var maxFileBytes: Int
    /// The deepest nesting of mappings and sequences accepted.
    package var maxDepth: Int
    /// How many nodes aliases may add to one document in total, counting each
    /// node of an aliased subtree once per use.
    package var maxAliasNodes: Int
    /// How many nodes one document may have, aliases expanded.
    package var maxNodes: Int

    /// Creates limits; omitted values take the defaults.
    package init(
        maxFileBytes: Int = 4 << 20, maxDepth: Int = 64, maxAliasNodes: Int = 10_000,
        maxNodes: Int = 1_000_000
    ) {
        self.maxFileBytes = maxFileBytes
        self.maxDepth = maxDepth
        self.maxAliasNodes = maxAliasNodes
        self.maxNodes = maxNodes
    }

    /// The documented defaults.
    package static let `default` = ManifestLimits()
}
