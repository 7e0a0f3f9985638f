import Manifest

// MARK: - FieldChange coding

/// A plan's JSON carries each value twice: `old`/`new` as JSON values a script can use
/// (`"console=ttyS0"`, `2`, `true`, `["a", "b"]`, `"100MiB"`), never a JSON string holding a
/// quoted string; `oldText`/`newText` as the plan renders them (`"\"console=ttyS0\""`), which
/// is what decoding reads back, so encoding a decoded plan gives the same bytes (saved plans
/// are authenticated over that encoding).
extension FieldChange: Codable {
    private enum CodingKeys: String, CodingKey {
        case path, operation, old, new, oldText, newText, declaredClass, changeClass, reason, drift, sensitive
    }

    /// Decodes a change; a plan without `oldText`/`newText` takes `old`/`new` as the rendered text.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys, _ legacy: CodingKeys) throws -> String? {
            if c.contains(key) { return try c.decodeIfPresent(String.self, forKey: key) }
            return try? c.decodeIfPresent(String.self, forKey: legacy)
        }
        self.init(
            path: try c.decode(String.self, forKey: .path),
            operation: try c.decode(Operation.self, forKey: .operation),
            old: try text(.oldText, .old), new: try text(.newText, .new),
            declaredClass: try c.decode(ChangeClass.self, forKey: .declaredClass),
            changeClass: try c.decode(ChangeClass.self, forKey: .changeClass),
            reason: try c.decode(String.self, forKey: .reason),
            drift: try c.decode(Bool.self, forKey: .drift),
            sensitive: try c.decode(Bool.self, forKey: .sensitive))
    }

    /// Encodes the change: absent values as null, `old`/`new` as JSON values.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(operation, forKey: .operation)
        try c.encode(old.map(RenderedValue.init(text:)), forKey: .old)
        try c.encode(new.map(RenderedValue.init(text:)), forKey: .new)
        try c.encode(old, forKey: .oldText)
        try c.encode(new, forKey: .newText)
        try c.encode(declaredClass, forKey: .declaredClass)
        try c.encode(changeClass, forKey: .changeClass)
        try c.encode(reason, forKey: .reason)
        try c.encode(drift, forKey: .drift)
        try c.encode(sensitive, forKey: .sensitive)
    }
}

/// A value as a plan renders it (``Render``), read back as the JSON value it stands for.
package enum RenderedValue: Sendable, Hashable, Encodable {
    /// A quoted string (unquoted), or a word such as `running`, `100MiB` or `(sensitive)`.
    case string(String)
    /// A whole number.
    case int(Int)
    /// `true` or `false`.
    case bool(Bool)
    /// A list of quoted strings (`["a", "b"]`).
    case list([String])

    /// Reads `text`: `"…"` is a string (escapes undone), `[…]` of quoted strings a list,
    /// digits a number, `true`/`false` a boolean; anything else is the text itself.
    package init(text: String) {
        if text == "true" || text == "false" {
            self = .bool(text == "true")
        } else if let n = Int(text), String(n) == text {
            self = .int(n)
        } else {
            var scanner = Substring(text)
            if text.hasPrefix("\""), let s = Self.quoted(&scanner), scanner.isEmpty {
                self = .string(s)
            } else if text.hasPrefix("["), text.hasSuffix("]"), let items = Self.list(text) {
                self = .list(items)
            } else {
                self = .string(text)
            }
        }
    }

    /// Encodes the JSON value.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let n): try c.encode(n)
        case .bool(let b): try c.encode(b)
        case .list(let l): try c.encode(l)
        }
    }

    /// The items of `["a", "b"]` (as ``Render/list(_:)`` writes it); nil when it is not such a list.
    private static func list(_ text: String) -> [String]? {
        var rest = Substring(text).dropFirst().dropLast()
        var items: [String] = []
        while !rest.isEmpty {
            guard let item = quoted(&rest) else { return nil }
            items.append(item)
            if rest.hasPrefix(", ") { rest = rest.dropFirst(2) } else if !rest.isEmpty { return nil }
        }
        return items
    }

    /// Reads one string as ``Render/quoted(_:)`` writes it from the start of `text`, leaving the rest.
    private static func quoted(_ text: inout Substring) -> String? {
        guard text.first == "\"" else { return nil }
        var out = ""
        var i = text.unicodeScalars.index(after: text.unicodeScalars.startIndex)
        let scalars = text.unicodeScalars
        while i < scalars.endIndex {
            let u = scalars[i]
            if u == "\"" {
                text = Substring(scalars[scalars.index(after: i)...])
                return out
            }
            if u == "\\" {
                i = scalars.index(after: i)
                guard i < scalars.endIndex else { return nil }
                switch scalars[i] {
                case "\"": out += "\""
                case "\\": out += "\\"
                case "n": out += "\n"
                case "t": out += "\t"
                case "r": out += "\r"
                case "x":
                    let a = scalars.index(after: i)
                    guard a < scalars.endIndex, scalars.index(after: a) < scalars.endIndex,
                          let v = UInt32(String(scalars[a...scalars.index(after: a)]), radix: 16),
                          let scalar = Unicode.Scalar(v) else { return nil }
                    out.unicodeScalars.append(scalar)
                    i = scalars.index(after: a)
                default: return nil
                }
            } else {
                out.unicodeScalars.append(u)
            }
            i = scalars.index(after: i)
        }
        return nil
    }
}
