// MARK: - YAMLNode

/// One node of a parsed YAML document: a scalar, a mapping or a sequence, with the
/// 1-based line and column where it starts.
///
/// A plain value (no references, no reference counting): a scalar's text and a
/// collection's items live in the ``YAMLStorage`` of its file, and the node names them
/// by offset and count. Mappings keep their entries flat, key then value, in document
/// order. Read nodes through a ``YAMLTree`` view of that storage.
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

    /// The three kinds of node.
    enum NodeType: UInt8, Sendable {
        case scalar, mapping, sequence
    }

    /// Scalar, mapping or sequence.
    var type: NodeType
    /// A scalar's tag (`.plain` for collections).
    var tag: ScalarTag
    /// 1-based line of the node's first character.
    var line: Int32
    /// 1-based column of the node's first character.
    var column: Int32
    /// A scalar's first byte in ``YAMLStorage/text``; a collection's first item in ``YAMLStorage/items``.
    var start: UInt32
    /// A scalar's length in bytes; a collection's number of items (twice the entries of a mapping).
    var count: UInt32

    var isScalar: Bool { type == .scalar }
    var isMapping: Bool { type == .mapping }
    var isSequence: Bool { type == .sequence }
}

// MARK: - YAMLStorage

/// The contents of one file's nodes, in contiguous buffers that are reused from file to
/// file: every scalar's bytes, and every collection's items.
final class YAMLStorage {
    /// The bytes of every scalar, back to back.
    var text = GrowableBuffer<UInt8>()
    /// The items of every collection; each collection's items are contiguous.
    var items = GrowableBuffer<YAMLNode>()
    /// Scratch space of the reader: items of collections still open.
    var pending = GrowableBuffer<YAMLNode>()
    /// Scratch space of the reader: key hashes of the mapping being closed.
    var hashes = GrowableBuffer<UInt64>()

    init() {}

    deinit {
        text.free()
        items.free()
        pending.free()
        hashes.free()
    }

    /// Empties the buffers, keeping their capacity.
    func reset() {
        text.count = 0
        items.count = 0
        pending.count = 0
    }

    /// Calls `body` with a view of the nodes; the view must not escape `body`.
    func withTree<R>(_ body: (YAMLTree) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(YAMLTree(text: text.buffer, items: items.buffer)) }
    }
}

/// A growable array of plain values in memory it manages itself: appending is a bounds
/// check and a copy, with no uniqueness check or reference counting. Freed by its owner.
struct GrowableBuffer<Element: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<Element>? = nil
    var count = 0
    private(set) var capacity = 0

    /// The elements, as a buffer valid until the next append or `free()`.
    var buffer: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }
    var mutableBuffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }

    mutating func reserve(_ n: Int) {
        guard n > capacity else { return }
        let newCapacity = max(n, capacity * 2, 64)
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        if let base {
            bigger.update(from: base, count: count)
            base.deallocate()
        }
        base = bigger
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ e: Element) {
        if count == capacity { reserve(count + 1) }
        (base! + count).initialize(to: e)
        count += 1
    }

    @inline(__always)
    mutating func append(_ p: UnsafePointer<Element>, count n: Int) {
        guard n > 0 else { return }
        if count + n > capacity { reserve(count + n) }
        (base! + count).update(from: p, count: n)
        count += n
    }

    subscript(i: Int) -> Element {
        get { base![i] }
        set { base![i] = newValue }
    }

    /// Removes elements `range`, moving the later ones down.
    mutating func remove(_ range: Range<Int>) {
        let tail = count - range.upperBound
        if tail > 0 { (base! + range.lowerBound).update(from: base! + range.upperBound, count: tail) }
        count -= range.count
    }

    mutating func free() {
        base?.deallocate()
        base = nil
        count = 0
        capacity = 0
    }
}

// MARK: - YAMLTree

/// A read-only view of a ``YAMLStorage``: the text and items of its nodes, without
/// copies or reference counting. Valid only while the storage is alive and unchanged.
struct YAMLTree {
    let text: UnsafeBufferPointer<UInt8>
    let items: UnsafeBufferPointer<YAMLNode>

    /// A view of nothing.
    static var empty: YAMLTree {
        YAMLTree(text: UnsafeBufferPointer(start: nil, count: 0), items: UnsafeBufferPointer(start: nil, count: 0))
    }

    /// A scalar's bytes.
    @inline(__always)
    func bytes(_ node: YAMLNode) -> UnsafeBufferPointer<UInt8> {
        guard node.count > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: text.baseAddress! + Int(node.start), count: Int(node.count))
    }

    /// A scalar's text.
    @inline(__always)
    func string(_ node: YAMLNode) -> String {
        String(decoding: bytes(node), as: UTF8.self)
    }

    /// A collection's items (key, value, key, value… for a mapping).
    @inline(__always)
    func items(_ node: YAMLNode) -> UnsafeBufferPointer<YAMLNode> {
        guard node.count > 0, !node.isScalar else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: items.baseAddress! + Int(node.start), count: Int(node.count))
    }

    /// Whether `node` is a scalar whose text is exactly `s`.
    @inline(__always)
    func isScalar(_ node: YAMLNode, equalTo s: String) -> Bool {
        node.isScalar && YAMLNode.equal(bytes(node), s)
    }

    /// A plain scalar that the core schema reads as null (an absent value).
    @inline(__always)
    func isNull(_ node: YAMLNode) -> Bool {
        node.isScalar && node.tag == .plain && YAMLNode.isNull(bytes(node))
    }

    /// Whether a scalar is written as an integer (plain, or tagged `!!int`) that does not fit in 64 bits.
    func isOutOfRangeInteger(_ node: YAMLNode) -> Bool {
        node.isScalar && (node.tag == .plain || node.tag == .int) && YAMLNode.looksLikeInt(bytes(node))
            && YAMLNode.int(bytes(node)) == nil
    }

    /// The core-schema type of a scalar.
    func resolve(_ node: YAMLNode) -> YAMLNode.Resolved {
        YAMLNode.resolve(bytes(node), node.tag)
    }
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
        var text = text
        return text.withUTF8 { resolve($0, tag) }
    }

    /// Resolves a scalar's bytes and tag under the YAML 1.2 core schema.
    static func resolve(_ text: UnsafeBufferPointer<UInt8>, _ tag: ScalarTag) -> Resolved {
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
            guard let first = text.first else { return .null }
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

    /// Whether `bytes` are exactly the UTF-8 of `s`.
    @inline(__always)
    static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ s: String) -> Bool {
        let u = s.utf8
        guard bytes.count == u.count else { return false }
        guard !bytes.isEmpty else { return true }
        return u.withContiguousStorageIfAvailable { equal(bytes, $0) } ?? u.elementsEqual(bytes)
    }

    /// Whether two byte buffers hold the same bytes.
    @inline(__always)
    static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i < a.count {
            guard a[i] == b[i] else { return false }
            i += 1
        }
        return true
    }

    static func isNull(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        switch text.count {
        case 0: return true
        case 1: return text[0] == UInt8(ascii: "~")
        case 4: return equal(text, "null") || equal(text, "Null") || equal(text, "NULL")
        default: return false
        }
    }

    static func bool(_ text: UnsafeBufferPointer<UInt8>) -> Bool? {
        switch text.count {
        case 4: return equal(text, "true") || equal(text, "True") || equal(text, "TRUE") ? true : nil
        case 5: return equal(text, "false") || equal(text, "False") || equal(text, "FALSE") ? false : nil
        default: return nil
        }
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`, as the core schema defines them
    /// (after the prefix, a sign is accepted, as `Int64(_:radix:)` does).
    static func int(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        if text.count >= 2, text[0] == UInt8(ascii: "0") {
            if text[1] == UInt8(ascii: "x") {
                return text.count == 2 ? nil : parseInt(UnsafeBufferPointer(rebasing: text[2...]), radix: 16)
            }
            if text[1] == UInt8(ascii: "o") {
                return text.count == 2 ? nil : parseInt(UnsafeBufferPointer(rebasing: text[2...]), radix: 8)
            }
        }
        return parseInt(text, radix: 10)
    }

    /// What `Int64(String, radix:)` accepts: an optional sign, then at least one digit; nil on overflow.
    private static func parseInt(_ text: UnsafeBufferPointer<UInt8>, radix: UInt64) -> Int64? {
        var i = 0
        var negative = false
        if let f = text.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") {
            negative = f == UInt8(ascii: "-")
            i = 1
        }
        guard i < text.count else { return nil }
        var magnitude: UInt64 = 0
        while i < text.count {
            let b = text[i]
            let d: UInt64
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): d = UInt64(b - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): d = UInt64(b - UInt8(ascii: "A")) + 10
            default: return nil
            }
            guard d < radix else { return nil }
            let (m, o1) = magnitude.multipliedReportingOverflow(by: radix)
            let (s, o2) = m.addingReportingOverflow(d)
            guard !o1, !o2 else { return nil }
            magnitude = s
            i += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// True for decimal digit strings too long for 64 bits: those are out of range, not strings.
    static func looksLikeInt(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        if let f = text.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { i = 1 }
        guard i < text.count else { return false }
        while i < text.count {
            guard text[i] >= UInt8(ascii: "0"), text[i] <= UInt8(ascii: "9") else { return false }
            i += 1
        }
        return true
    }

    /// The core schema's float forms, including `.inf` and `.nan`.
    static func float(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        let n = text.count
        if n == 4 || n == 5 {
            for s in [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"] where equal(text, s) { return .infinity }
            for s in ["-.inf", "-.Inf", "-.INF"] where equal(text, s) { return -.infinity }
            for s in [".nan", ".NaN", ".NAN"] where equal(text, s) { return .nan }
        }
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        return isFloatSyntax(text) ? Double(String(decoding: text, as: UTF8.self)) : nil
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

// MARK: - CoreSchema

/// How a plain scalar's text resolves under the YAML 1.2 core schema, for tests.
package enum CoreSchema {
    /// The integer a plain scalar is, if it is one.
    package static func integer(_ text: String) -> Int64? {
        if case .int(let i) = YAMLNode.resolve(text, .plain) { return i }
        return nil
    }

    /// "null", "bool", "int", "float", "string" or "invalid".
    package static func kind(_ text: String) -> String {
        switch YAMLNode.resolve(text, .plain) {
        case .null: "null"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "string"
        case .invalid: "invalid"
        }
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
