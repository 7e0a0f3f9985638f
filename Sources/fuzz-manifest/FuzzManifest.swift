// libFuzzer target: bytes → ManifestLoader → diagnostics or VMs.
//
// Built two ways (see `make fuzz`): with `-DFUZZING -sanitize=fuzzer,address` libFuzzer
// supplies `main` and calls `LLVMFuzzerTestOneInput` with generated inputs; in the normal
// build `main` runs the files named on the command line through it once.
internal import FuzzSupport
internal import Manifest

/// Loads `bytes` as one manifest file and checks what every load must satisfy; a broken
/// invariant traps, which libFuzzer reports as a crash with the input saved.
func fuzzOne(_ bytes: [UInt8]) {
    let loader = ManifestLoader()
    let set = loader.load(bytes: bytes, file: "fuzz.yaml", baseDirectory: "/fuzz")

    // Every diagnostic points into the input (or just past its end), at a real line and column.
    let lines = utf8Lines(bytes)
    for d in set.diagnostics {
        precondition(d.location.file == "fuzz.yaml", "diagnostic names another file: \(d)")
        precondition(d.location.line >= 1 && d.location.column >= 1, "diagnostic before the input: \(d)")
        if let lines {
            precondition(d.location.line <= lines.count, "diagnostic below the last line (\(lines.count)): \(d)")
            precondition(d.location.column <= lines[d.location.line - 1] + 1,
                         "diagnostic right of the end of its line (\(lines[d.location.line - 1]) bytes): \(d)")
        }
        precondition(!d.message.isEmpty, "diagnostic without a message")
    }
    // Errors and VMs agree: get() throws exactly when there are errors.
    switch Result(catching: { () throws(ManifestError) in try set.get() }) {
    case .success(let vms):
        precondition(!set.hasErrors)
        for vm in vms {
            precondition(!vm.name.isEmpty, "a valid VM without a name")
            precondition(!vm.summary.isEmpty)
        }
    case .failure(let error):
        precondition(set.hasErrors && error.diagnostics == set.diagnostics)
    }
    let report = set.jsonReport()
    precondition(report.hasPrefix("{") && report.hasSuffix("}\n") && report.contains("\"valid\": \(!set.hasErrors)"),
                 "the JSON report does not say whether the set is valid: \(report)")

    // The YAML-to-JSON conversion for schema validators reads with the same reader: it
    // reports nothing the loader did not, and each document becomes some JSON text.
    let (documents, syntax) = ManifestSchema.jsonDocuments(ofYAML: bytes, file: "fuzz.yaml")
    for d in syntax { precondition(set.diagnostics.contains(d), "the JSON conversion reported what the loader did not: \(d)") }
    for text in documents { precondition(!text.isEmpty) }

    // Loading is pure: the same bytes give the same result.
    let again = loader.load(bytes: bytes, file: "fuzz.yaml", baseDirectory: "/fuzz")
    precondition(again.diagnostics == set.diagnostics && again.virtualMachines == set.virtualMachines,
                 "loading the same bytes twice gave different results")
}

/// The length in bytes of each line of `bytes` (the last one possibly empty), lines ending
/// as YAML 1.1 and libyaml end them (LF, CR, CR LF, NEL, LS, PS); nil for UTF-16 input.
func utf8Lines(_ bytes: [UInt8]) -> [Int]? {
    if bytes.count >= 2, (bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF) { return nil }
    var lines: [Int] = []
    var start = 0
    var i = 0
    while i < bytes.count {
        var breakWidth = 0
        switch bytes[i] {
        case 0x0A: breakWidth = 1
        case 0x0D: breakWidth = i + 1 < bytes.count && bytes[i + 1] == 0x0A ? 2 : 1
        case 0xC2 where i + 1 < bytes.count && bytes[i + 1] == 0x85: breakWidth = 2
        case 0xE2 where i + 2 < bytes.count && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9):
            breakWidth = 3
        default: break
        }
        if breakWidth > 0 {
            lines.append(i - start)
            i += breakWidth
            start = i
        } else {
            i += 1
        }
    }
    lines.append(bytes.count - start)
    return lines
}

#if FUZZING
/// The libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
/// Runs the corpus files named on the command line through ``fuzzOne(_:)`` once.
@main
enum FuzzManifestMain {
    static func main() {
        CorpusRunner.run(arguments: Array(CommandLine.arguments.dropFirst()), body: fuzzOne)
    }
}
#endif
