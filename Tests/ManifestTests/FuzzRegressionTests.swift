import Manifest
import Testing

/// Flaws the fuzz-manifest fuzzer found (its reproducers are in fuzz/corpus/manifest/regress-*).
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    /// libyaml ends a stream whose last line has no line break with a break of its own, so
    /// errors at the end of such a file pointed one line below the file's last line.
    /// (fuzz/corpus/manifest/regress-position-past-end.yaml)
    @Test func errorsAtTheEndOfAFileWithoutFinalNewlinePointAtItsEnd() {
        expectSingleError(load("a: [1"), 1, 6, "invalid YAML: did not find expected ',' or ']'",
                          hint: "while parsing a flow sequence started at line 1, column 4")
        let found = "apiVersion: qemuctl/v1\nki  labels: |+\n    keep\n\n52:54:00:ab:cd:ef"
        expectSingleError(load(found), 5, 18, "invalid YAML: could not find expected ':'",
                          hint: "while scanning a simple key started at line 5, column 1")
        // With the final newline, the end is the start of the (empty) line after it.
        expectSingleError(load("a: [1\n"), 2, 1, "invalid YAML: did not find expected ',' or ']'")
    }

    /// The end is found with libyaml's rules: CR, CR LF, NEL and LS end lines; a column is a
    /// character, in UTF-8 or in UTF-16.
    @Test func theEndOfTheInputCountsLinesAndColumnsAsLibYAMLDoes() {
        let cases: [([UInt8], Int, Int)] = [
            (Array("x: 1\r\na: [1,\r\n  2".utf8), 3, 4),
            (Array("x: 1\ra: [".utf8), 2, 5),
            (Array("x: 1".utf8) + [0xC2, 0x85] + Array("a: [".utf8), 2, 5),
            (Array("x: 1".utf8) + [0xE2, 0x80, 0xA8] + Array("a: [é".utf8), 2, 6),
            ([0xFF, 0xFE] + utf16LE("x: 1\na: [1, 2"), 2, 9),
            ([0xFE, 0xFF] + utf16BE("x: 1\na: [1, \u{1F600}"), 2, 9),
        ]
        for (bytes, line, column) in cases {
            let set = ManifestLoader().load(bytes: bytes, file: "t.yaml", baseDirectory: "/")
            let e = set.diagnostics.first
            #expect(set.diagnostics.count == 1 && e?.location.line == line && e?.location.column == column,
                    "\(bytes): \(lines(set))")
        }
    }

    /// Encoding errors are placed with the same rules (a CR-only file used to be one line).
    @Test func encodingErrorsCountCRLineBreaks() {
        let bytes = Array("x: 1\ra: ".utf8) + [0xFF] + Array("\r".utf8)
        let set = ManifestLoader().load(bytes: bytes, file: "t.yaml", baseDirectory: "/")
        expectSingleError(set, 2, 4, "not valid UTF-8: invalid leading UTF-8 octet at byte offset 8 (0xff)")
    }

    private func utf16LE(_ s: String) -> [UInt8] { s.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
    private func utf16BE(_ s: String) -> [UInt8] { s.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
}
