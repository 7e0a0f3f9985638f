// MARK: - ObjectReader

/// Reads one YAML mapping against an object ``Field`` of the ``FieldTable``.
///
/// Creating a reader checks the keys (unknown keys with "did you mean", inline secrets,
/// missing required keys, exactly-one-of groups). The typed accessors then check each
/// value's type, format, enum values and bounds, apply the table's default when the
/// key is absent, and report problems to the context. An accessor returns nil when
/// the key is absent without default, or its value is invalid (already reported).
///
/// A plain value, cheap to create and copy: no allocation, no reference counting. It
/// refers to the context and the (immortal) field table without retaining them, and to
/// its nodes by pointer into the file's storage: readers live only while
/// ``SpecDecoder/decode(_:)`` runs, which the context and the storage outlive.
struct ObjectReader {
    unowned(unsafe) let ctx: DecodeContext
    /// The mapping node.
    let node: YAMLNode
    /// Flattened key/value pairs of the mapping (in the file's ``YAMLStorage``).
    let items: UnsafeBufferPointer<YAMLNode>
    /// The object field, from the table.
    unowned(unsafe) let field: Field
    /// The field's children, from the table.
    var fields: UnsafeBufferPointer<Field> { field.childBuffer }
    /// For each of `fields`, the index of its value in `items`, or -1.
    /// Stored inline (no allocation): `index + 1`, 0 for absent. The table has at most
    /// 32 fields per object (checked by a test).
    private var slots = SIMD32<UInt16>()
    /// Where this mapping is, in the context's path table: `path` is built from it only
    /// when a message needs it.
    let pathID: Int32
    /// Nesting depth of readers, which selects this reader's lookup cursor in the context.
    let depth: Int32

    /// Where the mapping is in the manifest (`spec.disks[0]`), for messages.
    var path: String { ctx.path(pathID) }

    /// Checks `node` against `field`; nil (and a diagnostic) when `node` is not a mapping.
    init?(_ node: YAMLNode, _ field: Field, _ ctx: DecodeContext, parent: ObjectReader?, key: String, index: Int = -1) {
        let fields = field.childBuffer
        let pathID = ctx.addPath(parent: parent?.pathID ?? -1, key: key, index: index)
        guard node.isMapping else {
            let path = ctx.path(pathID)
            ctx.error(node, "'\(path)' must be a mapping, not \(Values.describe(node, ctx))",
                      hint: "allowed keys: \(fields.map(\.name).joined(separator: ", "))")
            return nil
        }
        self.ctx = ctx
        self.node = node
        let items = ctx.tree.items(node)
        self.items = items
        self.field = field
        self.pathID = pathID
        let depth = (parent?.depth ?? -1) + 1
        self.depth = depth
        ctx.cursors[Int(min(depth, DecodeContext.maxDepth - 1))] = 0

        var i = 0
        var hint = 0  // keys are mostly written in table order: try the next field first
        while i < items.count {
            let keyNode = items[i]
            guard keyNode.isScalar else {
                ctx.error(keyNode, "keys must be plain strings, not \(Values.describe(keyNode, ctx))")
                i += 2
                continue
            }
            let keyBytes = ctx.tree.bytes(keyNode)
            var found = -1
            if hint < fields.count, YAMLNode.equal(keyBytes, fields[hint].nameBytes) {
                found = hint
            } else if let j = Self.index(of: keyBytes, in: fields) {
                found = j
            }
            if found >= 0 {
                guard i + 1 < Int(UInt16.max) else {
                    ctx.error(keyNode, "mapping '\(path)' has too many keys")
                    break
                }
                slots[found] = UInt16(i + 2)
                hint = found + 1
            } else {
                Self.reportUnknownKey(ctx.tree.string(keyNode), keyNode, Array(fields), path, ctx)
            }
            i += 2
        }

        for j in field.requiredIndices where !isPresent(j) {
            let name = fields[j].name
            let qualified = path.isEmpty ? name : "\(path).\(name)"
            if slots[j] > 0 {
                // Written, but with no value (`spec:` alone, or `~`): say so at the key.
                let hint: String? = switch fields[j].type {
                case .object: "write its fields indented below it, or '\(name): {}' for all defaults"
                default: fields[j].doc
                }
                ctx.error(items[Int(slots[j]) - 2], "'\(qualified)' has no value (null), but it is required", hint: hint)
            } else {
                ctx.error(node, path.isEmpty ? "missing required key '\(name)'" : "missing required key '\(name)' in '\(path)'",
                          hint: fields[j].doc)
            }
        }
        var presentCount = 0
        for j in field.oneOfIndices where isPresent(j) { presentCount += 1 }
        if !field.oneOfIndices.isEmpty, presentCount != 1 {
            let oneOf = field.oneOfIndices.map { fields[$0].name }
            let present = oneOf.filter { name in
                Self.index(of: name, in: fields).map(isPresent) ?? false
            }
            if present.isEmpty {
                ctx.error(node, "'\(path)' needs exactly one of \(Text.list(oneOf))")
            } else if present.count > 1 {
                // Report at the second one, in document order.
                let ordered = present.sorted { self.keyIndex($0)! < self.keyIndex($1)! }
                let second = items[keyIndex(ordered[1])!]
                ctx.error(second, "'\(path)' has more than one of \(Text.list(oneOf)): '\(ordered[1])' conflicts with '\(ordered[0])'",
                          hint: "keep exactly one")
            }
        }
    }

    /// The index of the field named `key`.
    static func index(of key: String, in fields: UnsafeBufferPointer<Field>) -> Int? {
        for j in fields.indices where fields[j].name == key { return j }
        return nil
    }

    /// The index of the field whose name is the UTF-8 `key`: hashes compared first, names confirmed.
    @inline(__always)
    static func index(of key: UnsafeBufferPointer<UInt8>, in fields: UnsafeBufferPointer<Field>) -> Int? {
        let h = Field.hash(key)
        for j in fields.indices where fields[j].keyHash == h && YAMLNode.equal(key, fields[j].nameBytes) { return j }
        return nil
    }

    /// The index of the field named `name`, trying the field after the last one read first,
    /// then the last one read (read again for its position).
    @inline(__always)
    private func lookup(_ name: String) -> Int? {
        let fields = self.fields
        let slot = ctx.cursors + Int(min(depth, DecodeContext.maxDepth - 1))
        let cursor = Int(slot.pointee)
        if cursor < fields.count, fields[cursor].name == name {
            slot.pointee = Int32(cursor + 1)
            return cursor
        }
        if cursor > 0, cursor <= fields.count, fields[cursor - 1].name == name { return cursor - 1 }
        for j in fields.indices where fields[j].name == name {
            slot.pointee = Int32(j + 1)
            return j
        }
        return nil
    }

    /// Whether field `j`'s key is present with a non-null value.
    private func isPresent(_ j: Int) -> Bool {
        guard slots[j] > 0 else { return false }
        return !ctx.tree.isNull(items[Int(slots[j]) - 1])
    }

    /// The index in `items` of the key `name`.
    private func keyIndex(_ name: String) -> Int? {
        guard let j = Self.index(of: name, in: fields), slots[j] > 0 else { return nil }
        return Int(slots[j]) - 2
    }

    /// Keys (lowercased) that ask for raw QEMU arguments. No manifest value may add a QEMU
    /// option, so these are refused with their own message rather than "unknown key".
    static let rawArgumentKeys: Set<String> = ["extraargs", "extra_args", "extra-args", "qemuargs", "rawargs"]

    static let rawArgumentsHint = "no value in a manifest may add a QEMU option: raw arguments could open host files, "
        + "devices or sockets and run programs, bypassing every check qemuctl makes; use the typed fields "
        + "('qemuctl schema' lists them)"

    fileprivate static func reportUnknownKey(_ key: String, _ keyNode: YAMLNode, _ fields: [Field], _ path: String, _ ctx: DecodeContext) {
        if Self.rawArgumentKeys.contains(key.lowercased()) {
            let qualified = path.isEmpty ? key : "\(path).\(key)"
            ctx.error(keyNode, "'\(qualified)' is not allowed: raw QEMU arguments cannot be set from a manifest",
                      hint: Self.rawArgumentsHint)
            return
        }
        let names = fields.map(\.name)
        if names.contains(key + "From") {
            ctx.error(keyNode, "inline secret '\(key)' is not allowed in '\(path)'",
                      hint: "use \(key)From: {file: PATH} or \(key)From: {env: NAME}; secrets are references, never values")
            return
        }
        if key == "<<" {
            ctx.error(keyNode, "merge keys ('<<') are YAML 1.1 and not supported", hint: "use an alias ('*name') for the whole value")
            return
        }
        let hint: String
        if let s = Text.suggestion(for: key, among: names) {
            hint = "did you mean '\(s)'?"
        } else {
            hint = "allowed keys in '\(path)': \(names.joined(separator: ", "))"
        }
        ctx.error(keyNode, "unknown key \(Text.quoted(key)) in '\(path)'", hint: hint)
    }

    // MARK: - Lookup

    /// The index in `fields` of the field named `name`, and its value node (nil when absent
    /// or null). An index, not the field: returning a reference would retain it.
    @inline(__always)
    func entry(_ name: String) -> (field: Int, node: YAMLNode?) {
        guard let j = lookup(name) else {
            preconditionFailure("field '\(name)' is not in the table")
        }
        guard slots[j] > 0 else { return (j, nil) }
        let v = items[Int(slots[j]) - 1]
        if ctx.tree.isNull(v) { return (j, nil) }
        return (j, v)
    }

    /// The full path of a child, for messages: `spec.memory.size`.
    func qualified(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    /// Whether the key is present with a non-null value.
    func has(_ name: String) -> Bool { entry(name).node != nil }

    /// The value node of `name`, for positions in cross-field messages; the mapping when absent.
    func position(_ name: String) -> YAMLNode { entry(name).node ?? node }

    /// The key node of `name`, for messages about the key itself; the mapping when absent.
    func keyPosition(_ name: String) -> YAMLNode { keyIndex(name).map { items[$0] } ?? node }

    // MARK: - Typed accessors

    /// A string field: checked against its format; paths resolved to absolute.
    func string(_ name: String) -> String? {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let format = f.format else { preconditionFailure("\(name) is not a string field") }
        guard let v else { return f.defaultString }
        return Values.string(v, format, qualified(name), ctx)
    }

    /// A boolean field.
    func bool(_ name: String) -> Bool {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let v else { return f.defaultBool }
        return Values.bool(v, qualified(name), ctx) ?? f.defaultBool
    }

    /// An integer field, within the table's bounds.
    func int(_ name: String) -> Int? {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let v else { return f.defaultInteger.map(Int.init) }
        return Values.integer(v, qualified(name), f.lowerBound, f.upperBound, ctx).map(Int.init)
    }

    /// A size field in bytes, within the table's bounds.
    func size(_ name: String) -> UInt64? {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let v else { return f.defaultSize }
        return Values.size(v, qualified(name), f.sizeBounds.lowerBound, f.sizeBounds.upperBound, ctx)
    }

    /// An enumeration field, as the Swift enum whose raw values the table lists.
    func enumeration<E: RawRepresentable>(_ name: String, _: E.Type = E.self) -> E? where E.RawValue == String {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let v else { return f.defaultString.flatMap(E.init(rawValue:)) }
        guard let i = Values.enumeration(v, qualified(name), f.enumValues, ctx) else { return nil }
        return E(rawValue: f.enumValues[i])
    }

    /// A nested object field's reader; nil when absent or not a mapping (reported).
    func object(_ name: String) -> ObjectReader? {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard let v else { return nil }
        return ObjectReader(v, f, ctx, parent: self, key: name)
    }

    /// A sequence field's items with their element field; empty when absent or not a sequence (reported).
    func array(_ name: String) -> (element: Field, items: UnsafeBufferPointer<YAMLNode>) {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard case .array(let element) = f.type else { preconditionFailure("\(name) is not an array field") }
        guard let v else { return (element, UnsafeBufferPointer(start: nil, count: 0)) }
        guard v.isSequence else {
            ctx.error(v, "'\(qualified(name))' must be a list, not \(Values.describe(v, ctx))", hint: "write '\(name): [ … ]' or one '- item' per line")
            return (element, UnsafeBufferPointer(start: nil, count: 0))
        }
        return (element, ctx.tree.items(v))
    }

    /// A list of strings in the element's format (paths resolved).
    func strings(_ name: String) -> [String] {
        let (element, items) = array(name)
        guard case .string(let format) = element.type else { preconditionFailure("\(name) is not a list of strings") }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard let s = Values.string(item, format, "\(self.qualified(name))[\(i)]", ctx) else { continue }
            out.append(s)
        }
        return out
    }

    /// A map field (labels): keys and values checked against their formats.
    func map(_ name: String) -> [String: String] {
        let (j, v) = entry(name)
        unowned(unsafe) let f = fields[j]
        guard case .map(let keyFormat, let valueFormat) = f.type else { preconditionFailure("\(name) is not a map") }
        guard let v else { return [:] }
        guard v.isMapping else {
            ctx.error(v, "'\(qualified(name))' must be a mapping, not \(Values.describe(v, ctx))")
            return [:]
        }
        let items = ctx.tree.items(v)
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            defer { i += 2 }
            guard let k = Values.string(items[i], keyFormat, "label key", ctx) else { continue }
            guard Values.isString(items[i + 1], "label value", ctx) else { continue }
            let valueBytes = ctx.tree.bytes(items[i + 1])
            guard valueFormat.accepts(valueBytes) else {
                Values.reportFormat(ctx.tree.string(items[i + 1]), valueFormat, "label '\(k)'", items[i + 1], ctx)
                continue
            }
            out[k] = String(decoding: valueBytes, as: UTF8.self)
        }
        return out
    }
}

// MARK: - Values

/// Checks of single values, shared by every accessor.
enum Values {
    /// "a mapping", "a list", "the integer 12", "the string 'on'".
    static func describe(_ node: YAMLNode, _ ctx: DecodeContext) -> String {
        describe(node, ctx.tree)
    }

    static func describe(_ node: YAMLNode, _ tree: YAMLTree) -> String {
        switch node.type {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar:
            switch tree.resolve(node) {
            case .null: return "null"
            case .bool(let b): return "the boolean \(b)"
            case .int: return "the integer \(tree.string(node))"
            case .float: return "the number \(tree.string(node))"
            case .invalid where tree.isOutOfRangeInteger(node):
                return "the integer \(tree.string(node)), which is out of range (beyond 64 bits)"
            case .string, .invalid: return "the string \(Text.quoted(tree.string(node)))"
            }
        }
    }

    /// Whether `node` is a scalar that the core schema resolves to a string; numbers and
    /// booleans are refused (with a hint to quote them).
    static func isString(_ node: YAMLNode, _ name: @autoclosure () -> String, _ ctx: DecodeContext) -> Bool {
        guard node.isScalar else {
            ctx.error(node, "'\(name())' must be a string, not \(describe(node, ctx))")
            return false
        }
        if node.tag == .string { return true }
        switch ctx.tree.resolve(node) {
        case .string: return true
        default:
            ctx.error(node, "'\(name())' must be a string, not \(describe(node, ctx))", hint: "quote it: \"\(ctx.tree.string(node))\"")
            return false
        }
    }

    /// A string in `format` (paths resolved against the manifest's directory); checked on
    /// the bytes, so only a valid value becomes a String.
    static func string(_ node: YAMLNode, _ format: StringFormat, _ name: @autoclosure () -> String, _ ctx: DecodeContext) -> String? {
        guard isString(node, name(), ctx) else { return nil }
        let bytes = ctx.tree.bytes(node)
        guard format.accepts(bytes) else {
            reportFormat(ctx.tree.string(node), format, name(), node, ctx)
            return nil
        }
        return format == .path ? ctx.resolve(bytes) : String(decoding: bytes, as: UTF8.self)
    }

    static func bool(_ node: YAMLNode, _ name: @autoclosure () -> String, _ ctx: DecodeContext) -> Bool? {
        if node.isScalar, case .bool(let b) = ctx.tree.resolve(node) { return b }
        var hint = "write true or false"
        if node.isScalar {
            let s = ctx.tree.string(node)
            if ["yes", "no", "on", "off", "y", "n"].contains(s.lowercased()) {
                hint = "YAML 1.2 reads '\(s)' as a string, not a boolean; write true or false"
            }
        }
        ctx.error(node, "'\(name())' must be true or false, not \(describe(node, ctx))", hint: hint)
        return nil
    }

    static func integer(_ node: YAMLNode, _ name: @autoclosure () -> String, _ lo: Int64, _ hi: Int64, _ ctx: DecodeContext) -> Int64? {
        guard node.isScalar, case .int(let n) = ctx.tree.resolve(node) else {
            if ctx.tree.isOutOfRangeInteger(node) {
                ctx.error(node, "'\(name())' is \(ctx.tree.string(node)), an integer out of range",
                          hint: "allowed range: \(lo) to \(hi)")
                return nil
            }
            ctx.error(node, "'\(name())' must be an integer, not \(describe(node, ctx))", hint: "allowed range: \(lo) to \(hi)")
            return nil
        }
        guard n >= lo, n <= hi else {
            ctx.error(node, "'\(name())' is \(n), outside the allowed range \(lo) to \(hi)")
            return nil
        }
        return n
    }

    static func size(_ node: YAMLNode, _ name: @autoclosure () -> String, _ lo: UInt64, _ hi: UInt64, _ ctx: DecodeContext) -> UInt64? {
        guard node.isScalar else {
            ctx.error(node, "'\(name())' must be a size like 512MiB, not \(describe(node, ctx))", hint: ByteSize.unitsHint)
            return nil
        }
        switch ByteSize.parseChecked(ctx.tree.bytes(node)) {
        case .success(let n):
            guard n >= lo else {
                ctx.error(node, "'\(name())' is \(Text.quoted(ctx.tree.string(node))), below the minimum of \(ByteSize.format(lo))",
                          hint: "allowed: \(ByteSize.format(lo)) to \(ByteSize.format(hi))")
                return nil
            }
            guard n <= hi else {
                ctx.error(node, "'\(name())' is \(Text.quoted(ctx.tree.string(node))), above the maximum of \(ByteSize.format(hi))",
                          hint: "allowed: \(ByteSize.format(lo)) to \(ByteSize.format(hi))")
                return nil
            }
            return n
        case .failure(let problem):
            let s = ctx.tree.string(node)
            var hint = ByteSize.unitsHint
            if problem == .missingUnit { hint = "did you mean '\(s)MiB'? " + hint }
            ctx.error(node, "'\(name())' \(problem.message(s))", hint: hint)
            return nil
        }
    }

    /// The index in `values` of an enumeration value.
    static func enumeration(_ node: YAMLNode, _ name: @autoclosure () -> String, _ values: [String], _ ctx: DecodeContext) -> Int? {
        if node.isScalar {
            let bytes = ctx.tree.bytes(node)
            if let i = values.firstIndex(where: { YAMLNode.equal(bytes, $0) }),
               node.tag == .string || YAMLNode.resolve(bytes, node.tag) == .string {
                return i
            }
        }
        var hint = "allowed values: \(values.joined(separator: ", "))"
        if node.isScalar {
            let s = ctx.tree.string(node)
            if ["yes", "no", "on", "off", "y", "n"].contains(s.lowercased()) {
                hint += "; YAML 1.2 reads '\(s)' as a plain string"
            } else if let guess = Text.suggestion(for: s, among: values) {
                hint = "did you mean '\(guess)'? " + hint
            }
        }
        ctx.error(node, "\(describe(node, ctx)) is not a valid '\(name())'", hint: hint)
        return nil
    }

    /// Reports a string that is not in its format, naming control characters explicitly.
    static func reportFormat(_ s: String, _ format: StringFormat, _ name: @autoclosure () -> String, _ node: YAMLNode, _ ctx: DecodeContext) {
        if s.utf8.contains(where: StringFormat.isControl) {
            ctx.error(node, "'\(name())' contains a control character or newline: \(Text.quoted(s))",
                      hint: "values that reach QEMU may not contain control characters")
        } else if s.isEmpty {
            ctx.error(node, "'\(name())' is empty", hint: "expected \(format.summary)")
        } else {
            ctx.error(node, "invalid '\(name())' \(Text.quoted(s))", hint: "expected \(format.summary)")
        }
    }
}
