import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QMP

/// `-o/--output` of the read commands whose default is text (`diff`, `plan`, `validate`,
/// `events`, `apply`): the same values as JSON or YAML for scripts. (`get` has a table by
/// default: ``OutputFormat``.)
enum TextOutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// What people read (the default).
    case text
    /// Indented JSON with sorted keys (`events`: one object per line).
    case json
    /// Block-style YAML with the keys of the JSON (`events`: one document per event).
    case yaml

    /// Whether the format is JSON or YAML.
    var isStructured: Bool { self != .text }
}

/// How the read commands print a value as JSON or YAML: the YAML is made from the JSON, so
/// both carry the same keys and values.
enum StructuredOutput {
    /// `value` as a JSON tree (its `Encodable` form).
    static func tree<T: Encodable>(_ value: T) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try JSONValue(parsing: Array(try encoder.encode(value)))
    }

    /// Prints `value` as indented JSON, or as YAML.
    static func print<T: Encodable>(_ value: T, as format: TextOutputFormat) throws {
        switch format {
        case .yaml: Swift.print(yaml(try tree(value)), terminator: "")
        case .json, .text: try Terminal.json(value)
        }
    }

    /// Prints a JSON tree as indented JSON, or as YAML.
    static func print(tree: JSONValue, as format: TextOutputFormat) {
        switch format {
        case .yaml: Swift.print(yaml(tree), terminator: "")
        case .json, .text: Swift.print(JSONText.pretty(tree))
        }
    }

    /// Block-style YAML of a JSON tree (object keys sorted), ending with a newline; a scalar
    /// or an empty collection at the top is one line (`[]`, `{}`).
    static func yaml(_ value: JSONValue) -> String {
        var out = ""
        switch value {
        case .object(let m) where !m.isEmpty: object(m, indent: "", into: &out)
        case .array(let a) where !a.isEmpty: array(a, indent: "", into: &out)
        default: out = scalar(value) + "\n"
        }
        return out
    }

    private static func object(_ members: [String: JSONValue], indent: String, into out: inout String) {
        for key in members.keys.sorted() {
            let v = members[key]!
            out += indent + VMSummary.yamlString(key) + ":"
            switch v {
            case .object(let m) where !m.isEmpty:
                out += "\n"
                object(m, indent: indent + "  ", into: &out)
            case .array(let a) where !a.isEmpty:
                out += "\n"
                array(a, indent: indent + "  ", into: &out)
            default:
                out += " " + scalar(v) + "\n"
            }
        }
    }

    private static func array(_ elements: [JSONValue], indent: String, into out: inout String) {
        for v in elements {
            switch v {
            case .object(let m) where !m.isEmpty:
                // The first key on the dash's line, the rest under it.
                var inner = ""
                object(m, indent: indent + "  ", into: &inner)
                out += indent + "- " + inner.dropFirst(indent.count + 2)
            case .array(let a) where !a.isEmpty:
                out += indent + "-\n"
                array(a, indent: indent + "  ", into: &out)
            default:
                out += indent + "- " + scalar(v) + "\n"
            }
        }
    }

    /// A scalar (or empty collection) as YAML reads it back: strings plain when that is safe,
    /// double-quoted otherwise.
    private static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double: v.description
        case .string(let s): VMSummary.yamlString(s)
        case .array: "[]"
        case .object: "{}"
        }
    }
}
