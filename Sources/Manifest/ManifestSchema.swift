// MARK: - ManifestSchema

/// Renders ``FieldTable`` as a JSON Schema (draft 2020-12) for editors and CI, and as
/// a Markdown reference; converts YAML manifests to JSON for independent validators.
///
/// The committed `schemas/qemuctl-v1.schema.json` is exactly ``jsonSchema()``; a test
/// fails when they differ.
package enum ManifestSchema {
    /// The schema's `$id`.
    package static let id = "https://github.com/qemuctl/qemuctl/schemas/qemuctl-v1.schema.json"

    /// The JSON Schema text, pretty-printed, ending with a newline.
    package static func jsonSchema() -> String {
        guard case .object(var members) = schema(for: FieldTable.document, path: "", nullable: false) else { return "" }
        members.insert(("$schema", .string("https://json-schema.org/draft/2020-12/schema")), at: 0)
        members.insert(("$id", .string(id)), at: 1)
        members.insert(("title", .string("qemuctl \(FieldTable.kind) manifest (\(FieldTable.apiVersion))")), at: 2)
        var out = ""
        JSONValue.object(members).rendered(into: &out)
        return out + "\n"
    }

    /// The JSON type name of a field's values, and with `null` when the field may be null.
    private static func type(_ name: String, nullable: Bool) -> JSONValue {
        nullable ? .array([.string(name), .string("null")]) : .string(name)
    }

    /// A field's schema. An optional field (`nullable`) also accepts null, which the decoder
    /// reads as "absent: use the default"; a required field, an item of a list and a label
    /// value do not.
    private static func schema(for field: Field, path: String, nullable: Bool) -> JSONValue {
        var m: [(String, JSONValue)] = []
        var description = field.doc
        if case .size(let lo, let hi) = field.type {
            description += " From \(ByteSize.format(lo)) to \(ByteSize.format(hi))."
        }
        if let bound = field.liveUpTo {
            description += " Live up to \(bound); beyond it, a restart."
        }
        m.append(("description", .string(description)))
        m.append(("x-qemuctl-change", .string(field.changeText)))
        switch field.type {
        case .string(let format):
            m.append(("type", type("string", nullable: nullable)))
            m.append(("pattern", .string(format.pattern)))
        case .bool:
            m.append(("type", type("boolean", nullable: nullable)))
        case .integer(let lo, let hi):
            m.append(("type", type("integer", nullable: nullable)))
            m.append(("minimum", .int(lo)))
            m.append(("maximum", .int(hi)))
        case .size(let lo, let hi):
            m.append(("type", type("string", nullable: nullable)))
            m.append(("pattern", .string(SizePattern.pattern(min: lo, max: hi))))
        case .enumeration(let values):
            m.append(("type", type("string", nullable: nullable)))
            m.append(("enum", .array(values.map(JSONValue.string) + (nullable ? [.null] : []))))
        case .object(let children, let oneOf):
            m.append(("type", type("object", nullable: nullable)))
            m.append(("additionalProperties", .bool(false)))
            m.append(("properties", .object(children.map { c in
                (c.name, schema(for: c, path: path.isEmpty ? c.name : "\(path).\(c.name)", nullable: !c.required))
            })))
            let required = children.filter(\.required).map { JSONValue.string($0.name) }
            if !required.isEmpty { m.append(("required", .array(required))) }
            if !oneOf.isEmpty {
                // Exactly one present with a value: a null one counts as absent, as in the decoder.
                let exactlyOne = JSONValue.array(oneOf.map { FieldRule.Condition.present($0).schema })
                if nullable {
                    // For an object instance only: a null object has no backend to count.
                    m.append(("if", .object([("type", .string("object"))])))
                    m.append(("then", .object([("oneOf", exactlyOne)])))
                } else {
                    m.append(("oneOf", exactlyOne))
                }
            }
            let rules = FieldTable.rules(at: path)
            if !rules.isEmpty {
                m.append(("allOf", .array(rules.map { rule in
                    // An object instance only: for a null object every condition would hold vacuously.
                    let when = JSONValue.object([("type", .string("object")), ("allOf", .array([rule.when.schema]))])
                    return .object([("description", .string(rule.doc)), ("if", when), ("then", rule.then.schema)])
                })))
            }
        case .array(let element):
            m.append(("type", type("array", nullable: nullable)))
            m.append(("items", schema(for: element, path: path + "[]", nullable: false)))
        case .map(let key, let value):
            m.append(("type", type("object", nullable: nullable)))
            m.append(("propertyNames", .object([("pattern", .string(key.pattern))])))
            m.append(("additionalProperties", .object([("type", .string("string")), ("pattern", .string(value.pattern))])))
        }
        switch field.defaultValue {
        case .bool(let b)?: m.append(("default", .bool(b)))
        case .integer(let i)?: m.append(("default", .int(i)))
        case .string(let s)?: m.append(("default", .string(s)))
        case nil: break
        }
        return .object(m)
    }

    // MARK: - Markdown

    /// A Markdown table of every field: path, type, default, change class, description.
    package static func markdownReference() -> String {
        var out = """
        # qemuctl manifest reference (\(FieldTable.apiVersion))

        Generated from the field table (`qemuctl schema --markdown`); do not edit by hand.
        Change classes: **metadata** (recorded only), **live** (applied to the running VM),
        **restart** (needs a relaunch; disks and uuid are kept).

        | field | type | default | change | description |
        |---|---|---|---|---|

        """
        for (path, field) in FieldTable.all {
            let type: String
            switch field.type {
            case .string(let f): type = f == .text ? "string" : "string (\(f.rawValue))"
            case .bool: type = "boolean"
            case .integer(let lo, let hi): type = "integer \(lo)–\(hi)"
            case .size(let lo, let hi): type = "size \(ByteSize.format(lo))–\(ByteSize.format(hi))"
            case .enumeration(let values): type = values.map { "`\($0)`" }.joined(separator: " \\| ")
            case .object(_, let oneOf):
                type = oneOf.isEmpty ? "object" : "object, exactly one of " + oneOf.map { "`\($0)`" }.joined(separator: ", ")
            case .array(let e):
                if case .string(let f) = e.type { type = "list of string (\(f.rawValue))" } else { type = "list of object" }
            case .map: type = "map of string"
            }
            let def: String = switch field.defaultValue {
            case .bool(let b)?: "`\(b)`"
            case .integer(let i)?: "`\(i)`"
            case .string(let s)?: "`\(s)`"
            case nil: field.required ? "required" : ""
            }
            let change = field.changeText
            let doc = field.doc.replacingPipes()
            out += "| `\(path)` | \(type) | \(def) | \(change) | \(doc) |\n"
        }
        return out
    }

    // MARK: - YAML to JSON

    /// Converts each non-empty YAML document to compact JSON, with YAML 1.2 core-schema
    /// types (so `on` stays a string), for validators that read JSON.
    ///
    /// - Returns: one JSON text per document, and any syntax diagnostics.
    package static func jsonDocuments(ofYAML bytes: [UInt8], file: String, limits: ManifestLimits = .default)
        -> (documents: [String], diagnostics: [ManifestDiagnostic])
    {
        var diagnostics: [ManifestDiagnostic] = []
        let reader = LibYAMLReader(file: file, limits: limits)
        let storage = YAMLStorage()
        let documents = bytes.withUnsafeBytes { reader.read($0, into: storage, diagnostics: &diagnostics) }
        var out: [String] = []
        storage.withTree { tree in
            for d in documents {
                guard let root = d.root else { continue }
                var text = ""
                json(root, tree).compact(into: &text)
                out.append(text)
            }
        }
        return (out, diagnostics)
    }

    private static func json(_ node: YAMLNode, _ tree: YAMLTree) -> JSONValue {
        switch node.type {
        case .scalar:
            switch tree.resolve(node) {
            case .null: return .null
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .float(let d): return .double(d)
            case .string, .invalid: return .string(tree.string(node))
            }
        case .sequence: return .array(tree.items(node).map { json($0, tree) })
        case .mapping:
            let items = tree.items(node)
            var members: [(String, JSONValue)] = []
            var i = 0
            while i + 1 < items.count {
                let key: String = items[i].isScalar ? tree.string(items[i]) : "?"
                members.append((key, json(items[i + 1], tree)))
                i += 2
            }
            return .object(members)
        }
    }
}

extension String {
    fileprivate func replacingPipes() -> String {
        var out = ""
        for ch in self { out += ch == "|" ? "\\|" : String(ch) }
        return out
    }
}
