// MARK: - YAMLNode

/// One node of a parsed YAML document: a scalar, a mapping or a sequence, with the
/// 1-based line and column where it starts.
///
/// Mappings keep their entries as one flat array, key then value, in document order,
/// which keeps the tree small and cheap to build.
struct YAMLNode: Sendable {
    /// What a scalar's tag and style say about its type (YAML 1.2 core schema).
    enum ScalarTag: UInt8, Sendable {
        /// A plain, untagged scalar: resolved by the core schema (`null`, `true`, `12`, `1.5`, else a string).
        case plain
        /// Quoted, or tagged `!` or `!!str`: always a string.
        case string
        /// Explicitly tagged `!!int`.
        case int
        /// Explicitly tagged `!!float`.
        case float
        /// Explicitly tagged `!!bool`.
        case bool
        /// Explicitly tagged `!!null`.
        case null
    }

    /// The node's content.
    enum Kind: Sendable {
        /// A scalar's text and how it was written.
        case scalar(String, ScalarTag)
        /// A mapping's entries, flattened: `[key0, value0, key1, value1, …]`.
        case mapping([YAMLNode])
        /// A sequence's items.
        case sequence([YAMLNode])
    }

    /// The content.
    var kind: Kind
    /// 1-based line of the node's first character.
    var line: Int32
    /// 1-based column of the node's first character.
    var column: Int32
}

// MARK: - Core schema resolution

extension YAMLNode {
    /// The type a scalar has under the YAML 1.2 core schema.
    enum Resolved: Equatable {
        case null
        case bool(Bool)
        case int(Int64)
        case float(Double)
        case string
        /// Tagged as a number or boolean but not one (`!!int abc`), or an integer out of range.
        case invalid
    }

    /// Resolves a scalar's text and tag under the YAML 1.2 core schema, not YAML 1.1:
    /// `on`, `yes`, `no` and `off` are strings.
    static func resolve(_ text: String, _ tag: ScalarTag) -> Resolved {
        switch tag {
        case .string:
            return .string
        case .null:
            return isNull(text) ? .null : .invalid
        case .bool:
            return bool(text).map(Resolved.bool) ?? .invalid
        case .int:
            return int(text).map(Resolved.int) ?? .invalid
        case .float:
            if let i = int(text) { return .float(Double(i)) }
            return float(text).map(Resolved.float) ?? .invalid
        case .plain:
            guard let first = text.utf8.first else { return .null }
            // Fast exit for the common case: a word that starts with a letter other than
            // the first letters of null/true/false (n, N, t, T, f, F) is a string.
            switch first {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"),
                UInt8(ascii: "."):
                if let i = int(text) { return .int(i) }
                if looksLikeInt(text) { return .invalid }
                if let f = float(text) { return .float(f) }
                return .string
            case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"):
                return isNull(text) ? .null : .string
            case UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
                return bool(text).map(Resolved.bool) ?? .string
            default:
                return .string
            }
        }
    }

    static func isNull(_ text: String) -> Bool {
        switch text.utf8.count {
        case 0: return true
        case 1: return text == "~"
        case 4: return text == "null" || text == "Null" || text == "NULL"
        default: return false
        }
    }

    static func bool(_ text: String) -> Bool? {
        let n = text.utf8.count
        guard n == 4 || n == 5 else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`, as the core schema defines them.
    static func int(_ text: String) -> Int64? {
        var utf8 = Substring(text).utf8
        if utf8.starts(with: "0x".utf8) {
            utf8 = utf8.dropFirst(2)
            return utf8.isEmpty ? nil : Int64(Substring(utf8), radix: 16)
        }
        if utf8.starts(with: "0o".utf8) {
            utf8 = utf8.dropFirst(2)
            return utf8.isEmpty ? nil : Int64(Substring(utf8), radix: 8)
        }
        return Int64(text, radix: 10)
    }

    /// True for decimal digit strings too long for 64 bits: those are out of range, not strings.
    static func looksLikeInt(_ text: String) -> Bool {
        var utf8 = Substring(text).utf8
        if let f = utf8.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { utf8 = utf8.dropFirst() }
        return !utf8.isEmpty && utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// The core schema's float forms, including `.inf` and `.nan`.
    static func float(_ text: String) -> Double? {
        let n = text.utf8.count
        if n == 4 || n == 5 {
            switch text {
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
            case "-.inf", "-.Inf", "-.INF": return -.infinity
            case ".nan", ".NaN", ".NAN": return .nan
            default: break
            }
        }
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        let matches = text.utf8.withContiguousStorageIfAvailable(isFloatSyntax) ?? isFloatSyntax(Array(text.utf8))
        return matches ? Double(text) : nil
    }

    private static func isFloatSyntax<C: RandomAccessCollection<UInt8>>(_ b: C) -> Bool where C.Index == Int {
        var i = b.startIndex
        func digits() -> Int {
            let s = i
            while i < b.endIndex, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            return i - s
        }
        if i < b.endIndex, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") { i += 1 }
        let whole = digits()
        var fraction = 0
        if i < b.endIndex, b[i] == UInt8(ascii: ".") {
            i += 1
            fraction = digits()
        }
        guard whole > 0 || fraction > 0 else { return false }
        if i < b.endIndex, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.endIndex, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == b.endIndex
    }
}

// MARK: - YAMLDocument

/// One document of a YAML stream; `root` is nil for an empty document.
struct YAMLDocument: Sendable {
    /// The document's content, or nil when it is empty (only `---`, or only comments).
    var root: YAMLNode?
    /// 1-based line where the document starts.
    var line: Int32
    /// 1-based column where the document starts.
    var column: Int32
}
