/// An ordered manifest tree, rendered as YAML (block style, keys in the order given)
/// or as JSON. Used to print what `qemuctl import` discovered.
package indirect enum ManifestDocument: Sendable, Hashable {
    /// `null`: a key kept with no value, so a document has one shape whatever is known (`describe`).
    case null
    /// A string, quoted when YAML would read it as something else.
    case string(String)
    /// An integer.
    case int(Int)
    /// A boolean.
    case bool(Bool)
    /// A mapping, in this key order.
    case map([(String, ManifestDocument)])
    /// A sequence.
    case list([ManifestDocument])

    package static func == (a: Self, b: Self) -> Bool { a.json() == b.json() }
    package func hash(into hasher: inout Hasher) { hasher.combine(json()) }

    /// Whether a mapping or sequence is empty.
    var isEmptyCollection: Bool {
        switch self {
        case .map(let m): m.isEmpty
        case .list(let l): l.isEmpty
        default: false
        }
    }

    // MARK: YAML

    /// Block-style YAML, ending with a newline.
    package func yaml() -> String {
        var out = ""
        switch self {
        case .map(let entries): Self.yamlMap(entries, indent: 0, into: &out)
        case .list(let items): Self.yamlList(items, indent: 0, into: &out)
        default: out = scalar + "\n"
        }
        return out
    }

    private static func yamlMap(_ entries: [(String, ManifestDocument)], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for (key, value) in entries {
            switch value {
            case .map(let m) where !m.isEmpty:
                out += "\(pad)\(yamlString(key)):\n"
                yamlMap(m, indent: indent + 2, into: &out)
            case .list(let l) where !l.isEmpty:
                out += "\(pad)\(yamlString(key)):\n"
                yamlList(l, indent: indent + 2, into: &out)
            default:
                out += "\(pad)\(yamlString(key)): \(value.scalar)\n"
            }
        }
    }

    private static func yamlList(_ items: [ManifestDocument], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            switch item {
            case .map(let m) where !m.isEmpty:
                var inner = ""
                yamlMap(m, indent: indent + 2, into: &inner)
                // The first key goes on the dash's line.
                out += pad + "- " + inner.dropFirst(indent + 2)
            default:
                out += "\(pad)- \(item.scalar)\n"
            }
        }
    }

    /// A scalar (or an empty collection) on one line.
    private var scalar: String {
        switch self {
        case .null: "null"
        case .string(let s): Self.yamlString(s)
        case .int(let i): String(i)
        case .bool(let b): b ? "true" : "false"
        case .map: "{}"
        case .list: "[]"
        }
    }

    /// Plain when YAML reads it back as the same string (letters, digits, `_./@-`, starting
    /// with a letter or `/`, not a YAML 1.1 boolean or null), else double-quoted with JSON escapes.
    static func yamlString(_ s: String) -> String {
        let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
        let plain = s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "_./@-".unicodeScalars.contains(c)
        } && (s.first.map { $0.isLetter || $0 == "/" } ?? false) && !reserved.contains(s.lowercased())
        return plain ? s : jsonString(s)
    }

    // MARK: JSON

    /// Compact-free JSON with two-space indentation, keys in the order given.
    package func json(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2)
        let end = String(repeating: " ", count: indent)
        switch self {
        case .null: return "null"
        case .string(let s): return Self.jsonString(s)
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .map(let m):
            if m.isEmpty { return "{}" }
            return "{\n" + m.map { "\(pad)\(Self.jsonString($0.0)): \($0.1.json(indent: indent + 2))" }.joined(separator: ",\n") + "\n\(end)}"
        case .list(let l):
            if l.isEmpty { return "[]" }
            return "[\n" + l.map { pad + $0.json(indent: indent + 2) }.joined(separator: ",\n") + "\n\(end)]"
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
