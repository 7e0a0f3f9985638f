import QMP

/// JSON text of QMP values for people and for `jq`.
enum JSONText {
    /// Indented JSON (two spaces, keys sorted); scalars and empty containers on one line.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let members) where !members.isEmpty:
            return "{\n" + members.keys.sorted().map { key in
                inner + JSONValue.string(key).description + ": " + pretty(members[key]!, indent: inner)
            }.joined(separator: ",\n") + "\n\(indent)}"
        default:
            return value.description
        }
    }
}
