// The only file of the Manifest module that talks to libyaml.
internal import CYAML

// MARK: - LibYAMLReader

/// Turns bytes into ``YAMLDocument``s with libyaml's event API.
///
/// Every problem becomes a ``ManifestDiagnostic`` in `diagnostics`; the documents read
/// before a syntax error are still returned, so their problems can be reported too.
/// Applies the YAML 1.2 core schema's tag rules and the bounds of ``ManifestLimits``.
struct LibYAMLReader {
    /// The file name used in diagnostics.
    let file: String
    /// Bounds on depth and alias expansion.
    let limits: ManifestLimits

    /// A mapping or sequence being built.
    private struct Frame {
        var isMapping: Bool
        /// Where this collection's items begin on the node stack.
        var start: Int
        var line: Int32
        var column: Int32
        var anchor: String?
        /// Nodes in this subtree so far, aliases expanded.
        var nodeCount: Int
    }

    /// Why reading stopped early: the diagnostic to report.
    private struct Stop: Error {
        var diagnostic: ManifestDiagnostic
    }

    /// Reads every document in `bytes` into `storage` (emptied first).
    ///
    /// - Parameters:
    ///   - bytes: the file's content, any encoding libyaml accepts (UTF-8, UTF-16 with BOM).
    ///   - storage: receives the nodes' text and items; reused from file to file.
    ///   - diagnostics: receives syntax errors and limit violations.
    /// - Returns: the documents read, in order, empty ones included (with a nil root).
    func read(
        _ bytes: UnsafeRawBufferPointer, into storage: YAMLStorage, diagnostics: inout [ManifestDiagnostic]
    ) -> [YAMLDocument] {
        storage.reset()
        // The buffers are worked on as locals (a class's stored properties would be checked
        // for exclusive access at every append) and handed back on every way out.
        var text = storage.text, items = storage.items, pending = storage.pending, hashes = storage.hashes
        defer { (storage.text, storage.items, storage.pending, storage.hashes) = (text, items, pending, hashes) }
        // Heap-allocated: libyaml keeps a pointer to the parser inside it (input handler data).
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            diagnostics.append(.init(code: .syntax, at: location(1, 1), "out of memory while reading YAML"))
            return []
        }
        defer { yaml_parser_delete(parser) }
        // libyaml wants a non-null pointer even for an empty input.
        let empty: [UInt8] = [0]
        if bytes.isEmpty {
            empty.withUnsafeBufferPointer { yaml_parser_set_input_string(parser, $0.baseAddress, 0) }
        } else {
            yaml_parser_set_input_string(
                parser, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        text.reserve(bytes.count)

        var documents: [YAMLDocument] = []
        var stack: [Frame] = []
        stack.reserveCapacity(16)
        var anchors: [String: (node: YAMLNode, count: Int)] = [:]
        var aliasNodes = 0
        var root: YAMLNode? = nil
        var docLine: Int32 = 1
        var docColumn: Int32 = 1
        /// Whether the last document ended with '...' (only then may directives follow).
        var previousEndedExplicitly = false
        var event = yaml_event_t()
        let maxNodes = limits.maxNodes
        let endsWithBreak = Self.endsWithLineBreak(bytes)
        /// Where the input ends; computed only for input without a final line break.
        var end: (Int, Int)? = nil

        /// Adds a finished node to its parent, or makes it the document's root.
        func attach(_ node: YAMLNode, count: Int) throws(Stop) {
            if stack.isEmpty {
                root = node
            } else {
                let top = stack.count - 1
                pending.append(node)
                stack[top].nodeCount += count
                if stack[top].nodeCount > maxNodes {
                    throw fail(node.line, node.column, "document has more than \(maxNodes) nodes",
                               hint: "split it into several documents or files")
                }
            }
        }

        do throws(Stop) {
            while true {
                guard yaml_parser_parse(parser, &event) == 1 else {
                    throw parserError(parser, bytes)
                }
                defer { yaml_event_delete(&event) }
                var line = Int32(truncatingIfNeeded: event.start_mark.line) + 1
                var column = Int32(truncatingIfNeeded: event.start_mark.column) + 1
                if column == 1, line > 1, !endsWithBreak {
                    // Perhaps on the line libyaml adds after a last line without a break.
                    if end == nil { end = Self.lineAndColumn(ofByte: bytes.count, in: bytes) }
                    if Int(line) > end!.0 { (line, column) = (Int32(end!.0), Int32(end!.1)) }
                }

                switch event.type {
                case YAML_SCALAR_EVENT:
                    let s = event.data.scalar
                    let start = text.count
                    if s.length > 0 { text.append(s.value, count: Int(s.length)) }
                    var tag: YAMLNode.ScalarTag =
                        s.style == YAML_PLAIN_SCALAR_STYLE || s.style == YAML_ANY_SCALAR_STYLE ? .plain : .string
                    if let t = s.tag {
                        tag = try scalarTag(String(cString: t), line, column)
                    }
                    let node = YAMLNode(
                        type: .scalar, tag: tag, line: line, column: column,
                        start: UInt32(truncatingIfNeeded: start), count: UInt32(truncatingIfNeeded: s.length))
                    if let a = s.anchor { anchors[String(cString: a)] = (node, 1) }
                    try attach(node, count: 1)

                case YAML_MAPPING_START_EVENT, YAML_SEQUENCE_START_EVENT:
                    let isMapping = event.type == YAML_MAPPING_START_EVENT
                    let (tagPtr, anchorPtr) = isMapping
                        ? (event.data.mapping_start.tag, event.data.mapping_start.anchor)
                        : (event.data.sequence_start.tag, event.data.sequence_start.anchor)
                    if let t = tagPtr {
                        try collectionTag(String(cString: t), isMapping: isMapping, line, column)
                    }
                    if stack.count >= limits.maxDepth {
                        throw fail(line, column, "nesting deeper than \(limits.maxDepth) levels")
                    }
                    stack.append(Frame(
                        isMapping: isMapping, start: pending.count, line: line, column: column,
                        anchor: anchorPtr.map { String(cString: $0) }, nodeCount: 0))

                case YAML_MAPPING_END_EVENT, YAML_SEQUENCE_END_EVENT:
                    let frame = stack.removeLast()
                    if frame.isMapping {
                        removeDuplicateKeys(from: frame.start, in: &pending, text: text.buffer, hashes: &hashes, into: &diagnostics)
                    }
                    let start = items.count
                    let n = pending.count - frame.start
                    if n > 0 {
                        items.append(pending.base! + frame.start, count: n)
                        pending.count = frame.start
                    }
                    let node = YAMLNode(
                        type: frame.isMapping ? .mapping : .sequence, tag: .plain,
                        line: frame.line, column: frame.column,
                        start: UInt32(truncatingIfNeeded: start), count: UInt32(truncatingIfNeeded: n))
                    if let a = frame.anchor { anchors[a] = (node, frame.nodeCount + 1) }
                    try attach(node, count: frame.nodeCount + 1)

                case YAML_ALIAS_EVENT:
                    let name = String(cString: event.data.alias.anchor)
                    guard let target = anchors[name] else {
                        throw fail(line, column, "alias '*\(name)' refers to no anchor defined before it")
                    }
                    aliasNodes += target.count
                    if aliasNodes > limits.maxAliasNodes {
                        throw fail(line, column,
                                   "aliases expand to more than \(limits.maxAliasNodes) nodes",
                                   hint: "an alias bomb? nested aliases multiply; write the values out instead")
                    }
                    // The copy shares the target's text and items: only its position differs.
                    var copy = target.node
                    copy.line = line
                    copy.column = column
                    try attach(copy, count: target.count)

                case YAML_DOCUMENT_START_EVENT:
                    let start = event.data.document_start
                    let hasDirectives = start.version_directive != nil || start.tag_directives.start != start.tag_directives.end
                    if hasDirectives {
                        // libyaml lets two directive edge cases through (yaml-test-suite MUS6/00, MUS6/01).
                        if documents.count > 0 && !previousEndedExplicitly {
                            throw fail(line, column, "invalid YAML: a directive may only follow a document end marker ('...')",
                                       hint: "end the previous document with '...' on a line of its own, or remove the directive")
                        }
                        let endLine = Int(event.end_mark.line) + 1
                        if let (l, c) = Self.commentWithoutSpace(in: bytes, lines: Int(line)..<endLine) {
                            throw fail(Int32(l), Int32(c), "invalid YAML: a comment in a directive needs a space before '#'")
                        }
                    }
                    if let v = start.version_directive, v.pointee.major != 1 || v.pointee.minor != 2 {
                        let directive = "%YAML \(v.pointee.major).\(v.pointee.minor)"
                        throw fail(line, column, "the '\(directive)' directive is not supported: qemuctl reads manifests as YAML 1.2",
                                   hint: "remove the directive (or write '%YAML 1.2'); YAML 1.1 reads yes/no/on/off as booleans and 0755 as octal, YAML 1.2 does not")
                    }
                    root = nil
                    anchors.removeAll(keepingCapacity: true)
                    aliasNodes = 0
                    docLine = line
                    docColumn = column

                case YAML_DOCUMENT_END_EVENT:
                    previousEndedExplicitly = event.data.document_end.implicit == 0
                    if let r = root, r.isScalar, r.tag == .plain, r.count == 0 { root = nil }
                    documents.append(YAMLDocument(root: root, line: docLine, column: docColumn))
                    root = nil

                case YAML_STREAM_END_EVENT:
                    return documents

                default:  // stream start, no event
                    break
                }
            }
        } catch {
            diagnostics.append(error.diagnostic)
            return documents
        }
    }

    // MARK: - Directives

    /// The line and column of the first `#` that directly follows a non-blank character on a
    /// directive line (a line starting with `%`) among `lines` (1-based), if any: YAML needs
    /// white space before a comment, and libyaml does not check it after a directive.
    static func commentWithoutSpace(in bytes: UnsafeRawBufferPointer, lines: Range<Int>) -> (Int, Int)? {
        // UTF-16 input (after a byte-order mark) is left to libyaml.
        if bytes.count >= 2, (bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF) { return nil }
        var line = 1
        var i = 0
        while i < bytes.count, line < lines.upperBound {
            var end = i
            while end < bytes.count, bytes[end] != 0x0A, bytes[end] != 0x0D { end += 1 }
            if line >= lines.lowerBound, i < end, bytes[i] == UInt8(ascii: "%") {
                var k = i + 1
                while k < end {
                    if bytes[k] == UInt8(ascii: "#"), bytes[k - 1] != 0x20, bytes[k - 1] != 0x09 { return (line, k - i + 1) }
                    k += 1
                }
            }
            // CR LF is one line break.
            if end < bytes.count, bytes[end] == 0x0D, end + 1 < bytes.count, bytes[end + 1] == 0x0A { end += 1 }
            i = end + 1
            line += 1
        }
        return nil
    }

    // MARK: - Tags

    /// Core-schema scalar tags; anything else is refused.
    private func scalarTag(_ tag: String, _ line: Int32, _ column: Int32) throws(Stop) -> YAMLNode.ScalarTag {
        switch tag {
        case "!", "tag:yaml.org,2002:str": return .string
        case "tag:yaml.org,2002:int": return .int
        case "tag:yaml.org,2002:float": return .float
        case "tag:yaml.org,2002:bool": return .bool
        case "tag:yaml.org,2002:null": return .null
        default: throw unsupportedTag(tag, line, column)
        }
    }

    private func collectionTag(_ tag: String, isMapping: Bool, _ line: Int32, _ column: Int32) throws(Stop) {
        if tag == "!" || tag == (isMapping ? "tag:yaml.org,2002:map" : "tag:yaml.org,2002:seq") { return }
        throw unsupportedTag(tag, line, column)
    }

    private func unsupportedTag(_ tag: String, _ line: Int32, _ column: Int32) -> Stop {
        fail(line, column, "tag '\(shortTag(tag))' is not allowed",
             hint: "only the YAML 1.2 core tags !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are")
    }

    private func shortTag(_ tag: String) -> String {
        let prefix = "tag:yaml.org,2002:"
        return tag.hasPrefix(prefix) ? "!!" + tag.dropFirst(prefix.count) : tag
    }

    // MARK: - Duplicate keys

    /// Reports the second occurrence of a key in the mapping whose items are
    /// `storage.pending[start...]` and drops it, so reading (and reporting) goes on with the first.
    /// The length and up to eight first bytes of a key, mixed into one word.
    @inline(__always)
    private static func fingerprint(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var prefix: UInt64 = 0
        for i in 0..<min(8, bytes.count) { prefix |= UInt64(bytes[i]) << UInt64(8 * i) }
        return prefix ^ (UInt64(truncatingIfNeeded: bytes.count) &* 0x9E37_79B9_7F4A_7C15)
    }

    private func removeDuplicateKeys(
        from start: Int, in storage: inout GrowableBuffer<YAMLNode>, text: UnsafeBufferPointer<UInt8>,
        hashes: inout GrowableBuffer<UInt64>, into diagnostics: inout [ManifestDiagnostic]
    ) {
        let n = (storage.count - start) / 2
        guard n > 1 else { return }
        var drop: [Int] = []  // allocated only when there is a duplicate
        hashes.count = 0
        hashes.reserve(n)
        do {
            let tree = YAMLTree(text: text, items: UnsafeBufferPointer(start: nil, count: 0))
            do {
                let pending = UnsafeBufferPointer(rebasing: storage.buffer[start...])
                // Compare a cheap fingerprint first (length and first eight bytes): most keys
                // differ there, and equal keys always have equal fingerprints.
                for i in 0..<n {
                    let key = pending[2 * i]
                    hashes.append(key.isScalar ? Self.fingerprint(tree.bytes(key)) : UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
                }
                for i in 1..<n {
                    let key = pending[2 * i]
                    guard key.isScalar else { continue }
                    let h = hashes[i]
                    for j in 0..<i where hashes[j] == h {
                        let first = pending[2 * j]
                        guard first.isScalar, YAMLNode.equal(tree.bytes(first), tree.bytes(key)) else { continue }
                        diagnostics.append(fail(key.line, key.column, "duplicate key '\(tree.string(key))'",
                                                hint: "first defined at line \(first.line), column \(first.column)").diagnostic)
                        drop.append(i)
                        break
                    }
                }
            }
        }
        guard !drop.isEmpty else { return }
        for i in drop.reversed() { storage.remove((start + 2 * i)..<(start + 2 * i + 2)) }
    }

    // MARK: - Errors

    private func location(_ line: Int, _ column: Int) -> SourceLocation {
        SourceLocation(file: file, line: line, column: column)
    }

    private func fail(_ line: Int32, _ column: Int32, _ message: String, hint: String? = nil) -> Stop {
        Stop(diagnostic: .init(code: .syntax, at: location(Int(line), Int(column)), message, hint: hint))
    }

    /// Turns libyaml's error state into a diagnostic at libyaml's position.
    private func parserError(
        _ parser: UnsafeMutablePointer<yaml_parser_t>, _ bytes: UnsafeRawBufferPointer
    ) -> Stop {
        let p = parser.pointee
        let problem = p.problem.map { String(cString: $0) } ?? "unknown error"
        var line: Int
        var column: Int
        var message: String
        var hint: String? = nil
        switch p.error {
        case YAML_READER_ERROR:
            // Encoding problems carry a byte offset, not a mark.
            // A bad trailing octet is reported at the character it belongs to.
            var offset = min(p.problem_offset, bytes.count)
            if problem.contains("trailing") {
                var k = offset - 1
                while k > 0, bytes[k] & 0xC0 == 0x80 { k -= 1 }
                if k >= 0, bytes[k] & 0xC0 == 0xC0 { offset = k }
            }
            (line, column) = Self.lineAndColumn(ofByte: offset, in: bytes)
            message = "not valid UTF-8: \(problem) at byte offset \(offset)"
            if p.problem_value != -1 {
                // An octet for the octet problems; otherwise the character (a surrogate,
                // a control character, one beyond U+10FFFF), which may not fit in a byte.
                if problem.contains("octet") {
                    message += " (0x\(String(UInt8(truncatingIfNeeded: p.problem_value), radix: 16)))"
                } else {
                    let hex = String(UInt32(truncatingIfNeeded: p.problem_value), radix: 16, uppercase: true)
                    message += " (U+\(String(repeating: "0", count: max(0, 4 - hex.count)) + hex))"
                }
            }
            hint = "manifests must be UTF-8, or UTF-16 with a byte-order mark"
        case YAML_MEMORY_ERROR:
            (line, column) = (1, 1)
            message = "out of memory while reading YAML"
        default:
            (line, column) = Self.clamp((Int(p.problem_mark.line) + 1, Int(p.problem_mark.column) + 1), to: bytes)
            message = "invalid YAML: \(problem)"
            if let context = p.context {
                let at = Self.clamp((Int(p.context_mark.line) + 1, Int(p.context_mark.column) + 1), to: bytes)
                hint = "\(String(cString: context)) started at line \(at.line), column \(at.column)"
            }
        }
        return Stop(diagnostic: .init(code: .syntax, at: location(line, column), message, hint: hint))
    }

    /// The 1-based line and column of the character at byte `offset`, or of the end of the
    /// input when `offset` is `bytes.count`, counted as libyaml counts its marks: a column is
    /// a character (UTF-8, or UTF-16 after its byte-order mark); a leading byte-order mark
    /// takes none; LF, CR, CR LF, NEL, LS and PS each end a line.
    static func lineAndColumn(ofByte offset: Int, in bytes: UnsafeRawBufferPointer) -> (Int, Int) {
        let end = min(offset, bytes.count)
        var line = 1
        var column = 1
        var i = 0
        var utf16BigEndian: Bool? = nil
        if bytes.count >= 2, bytes[0] == 0xFF, bytes[1] == 0xFE {
            utf16BigEndian = false
            i = 2
        } else if bytes.count >= 2, bytes[0] == 0xFE, bytes[1] == 0xFF {
            utf16BigEndian = true
            i = 2
        } else if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            i = 3
        }
        var afterCR = false
        while i < end {
            // The character at i and its width in bytes.
            var scalar: UInt32
            var width: Int
            if let bigEndian = utf16BigEndian {
                guard i + 1 < bytes.count else { break }
                scalar = bigEndian ? UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]) : UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i])
                width = (0xD800..<0xDC00).contains(scalar) ? 4 : 2
            } else {
                let b = bytes[i]
                scalar = UInt32(b)
                width = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
                if b == 0xC2, i + 1 < bytes.count, bytes[i + 1] == 0x85 {
                    scalar = 0x85
                } else if b == 0xE2, i + 2 < bytes.count, bytes[i + 1] == 0x80, bytes[i + 2] & 0xFE == 0xA8 {
                    scalar = 0x2028
                }
            }
            switch scalar {
            case 0x0A where afterCR:  // the LF of CR LF: the CR ended the line
                afterCR = false
            case 0x0A, 0x0D, 0x85, 0x2028, 0x2029:
                line += 1
                column = 1
                afterCR = scalar == 0x0D
            default:
                column += 1
                afterCR = false
            }
            i += width
        }
        return (line, column)
    }

    /// Whether the input's last character is a line break. When it is not, libyaml ends the
    /// stream with a line break of its own, and marks at the end of the stream (where an
    /// unclosed `[` is reported, say) point at a line the file does not have.
    static func endsWithLineBreak(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        guard n > 0 else { return true }
        if n >= 2, (bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF) {
            guard n >= 4 else { return n == 2 }
            let unit = bytes[0] == 0xFE ? UInt16(bytes[n - 2]) << 8 | UInt16(bytes[n - 1]) : UInt16(bytes[n - 1]) << 8 | UInt16(bytes[n - 2])
            return [0x0A, 0x0D, 0x85, 0x2028, 0x2029].contains(unit)
        }
        switch bytes[n - 1] {
        case 0x0A, 0x0D: return true
        case 0x85: return n >= 2 && bytes[n - 2] == 0xC2
        case 0xA8, 0xA9: return n >= 3 && bytes[n - 3] == 0xE2 && bytes[n - 2] == 0x80
        default: return false
        }
    }

    /// `position`, or the end of the input when `position` lies on the line libyaml adds
    /// below a last line without a line break.
    static func clamp(
        _ position: (line: Int, column: Int), to bytes: UnsafeRawBufferPointer
    ) -> (line: Int, column: Int) {
        guard position.column == 1, position.line > 1, !endsWithLineBreak(bytes) else { return position }
        let end = lineAndColumn(ofByte: bytes.count, in: bytes)
        return position.line > end.0 ? end : position
    }
}
