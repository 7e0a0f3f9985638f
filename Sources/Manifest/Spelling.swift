/// "Did you mean" for words typed by a user: the one spelling rule of manifests and the command line.
package enum Spelling {
    /// The candidate closest to `word` within a small edit distance (case-insensitive;
    /// adjacent transpositions count as one edit), or `nil` when none is close.
    package static func nearest(to word: String, among candidates: [String]) -> String? {
        Text.suggestion(for: word, among: candidates)
    }
}
