import QMP
/// A JSON value with ordered object keys, used to render `-blockdev`, `-device`, `-object` and `-netdev`
/// arguments deterministically (readable golden tests, stable command lines).
///
/// Strings are escaped per RFC 8259, so no value can end its string or add a key: a path such as
/// `/tmp/x","read-only":false` stays one string.
enum ArgJSON: Sendable, Equatable {
    /// JSON `null`: QEMU reads it as "none" where a reference may be absent (`"backing": null`).
    case null
    case string(String)
    case int(Int)
    case bool(Bool)
    case array([ArgJSON])
    case object([(String, ArgJSON)])

    static func == (a: ArgJSON, b: ArgJSON) -> Bool { a.rendered == b.rendered }

    /// The compact JSON text.
    var rendered: String {
        var out = ""
        render(into: &out)
        return out
    }

    func render(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .string(let s): Self.renderString(s, into: &out)
        case .int(let i): out += String(i)
        case .bool(let b): out += b ? "true" : "false"
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.render(into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += "," }
                Self.renderString(k, into: &out)
                out += ":"
                v.render(into: &out)
            }
            out += "}"
        }
    }

    static func renderString(_ s: String, into out: inout String) {
        out += JSONWriter.quoted(s)  // the QMP client's escaping: one definition of a JSON string
    }
}

/// Builds a JSON object, leaving out `nil` members, in insertion order.
struct JSONObject {
    var members: [(String, ArgJSON)] = []

    init() {}

    init(_ pairs: KeyValuePairs<String, (any JSONConvertible)?>) {
        for (k, v) in pairs { self[k] = v }
    }

    subscript(key: String) -> (any JSONConvertible)? {
        get { nil }
        set {
            guard let newValue else { return }
            members.removeAll { $0.0 == key }
            members.append((key, newValue.argJSON))
        }
    }

    var json: ArgJSON { .object(members) }
    var rendered: String { json.rendered }
}

/// A value that renders as JSON.
protocol JSONConvertible {
    var argJSON: ArgJSON { get }
}

extension String: JSONConvertible { var argJSON: ArgJSON { .string(self) } }
extension Int: JSONConvertible { var argJSON: ArgJSON { .int(self) } }
extension Bool: JSONConvertible { var argJSON: ArgJSON { .bool(self) } }
extension ArgJSON: JSONConvertible { var argJSON: ArgJSON { self } }
extension JSONObject: JSONConvertible { var argJSON: ArgJSON { json } }
extension Array: JSONConvertible where Element: JSONConvertible { var argJSON: ArgJSON { .array(map(\.argJSON)) } }

/// QEMU's legacy `key=value,…` option syntax (QemuOpts), with every value `,,`-escaped so that no value can
/// end itself and start another option. Keys are always written out (no implied first key), so a value
/// containing `=` cannot be mistaken for a key either.
struct QemuOpts {
    var parts: [String] = []

    init(_ head: String? = nil) { if let head { parts.append(head) } }

    static func escape(_ value: String) -> String {
        var out = ""
        for c in value.unicodeScalars {
            if c == "," { out += ",," } else { out.unicodeScalars.append(c) }
        }
        return out
    }

    mutating func add(_ key: String, _ value: String?) {
        guard let value else { return }
        parts.append("\(key)=\(Self.escape(value))")
    }

    mutating func add(_ key: String, _ value: Int?) { add(key, value.map { String($0) }) }

    mutating func add(_ key: String, onOff value: Bool?) { add(key, value.map { $0 ? "on" : "off" }) }

    var rendered: String { parts.joined(separator: ",") }
}
