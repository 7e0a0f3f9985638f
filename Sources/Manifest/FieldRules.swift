// MARK: - FieldRule

/// A rule between fields of one object (`initrd` needs `kernel`), as data, so the JSON
/// Schema states it the way the decoder enforces it.
///
/// ``SpecDecoder`` checks these rules in code (with positions and wording of its own);
/// ``ManifestSchema`` renders each one as an `if`/`then` under the object's `allOf`. The
/// corpus test (`schemas/corpus`) runs both over the same manifests and fails on any
/// disagreement that is not listed there with its reason.
///
/// Null is the same as absent on both sides: the decoder reads `key: ~` (or `key:` with
/// no value) as "not written, use the default", so a condition that asks whether a key
/// is present asks whether it is present *and not null*.
///
/// What JSON Schema cannot say is not here, and is listed with the corpus: comparisons
/// between two values (`count` ≤ `maxCount`, `size` ≤ `max`, a burst at least its base,
/// a CPU topology whose product is `maxCount`), names unique within a list, VM names and
/// MAC addresses unique across files, and sizes that are not a whole number of bytes.
package struct FieldRule: Sendable {
    /// A condition on an object's values; paths are relative to the object, dotted for
    /// nested objects (`usb.controller`).
    package indirect enum Condition: Sendable {
        /// The key is present with a non-null value.
        case present(String)
        /// The key is present and its value is exactly this string.
        case equals(String, String)
        /// The key is present and its value is `true`.
        case isTrue(String)
        /// The key is a non-empty list.
        case nonEmpty(String)
        /// The condition does not hold.
        case not(Condition)
        /// Every condition holds.
        case all([Condition])
        /// At least one condition holds.
        case any([Condition])
        /// Exactly one condition holds.
        case exactlyOne([Condition])
    }

    /// The object the rule is about, as ``FieldTable/all`` names paths (`spec.disks[]`;
    /// the empty string is the document).
    package var object: String
    /// When the rule applies.
    package var when: Condition
    /// What must then hold.
    package var then: Condition
    /// The rule in words, for the schema's `description` of the `if`/`then`.
    package var doc: String

    /// Creates a rule.
    package init(_ object: String, when: Condition, then: Condition, _ doc: String) {
        self.object = object
        self.when = when
        self.then = then
        self.doc = doc
    }
}

// MARK: - FieldTable rules

extension FieldTable {
    /// Every rule between fields that the decoder enforces and JSON Schema can express.
    package static let rules: [FieldRule] = {
        typealias C = FieldRule.Condition
        func absent(_ key: String) -> C { .not(.present(key)) }
        var rules: [FieldRule] = [
            // firmware
            FieldRule("spec.firmware", when: .not(.equals("type", "efi")), then: .all([absent("code"), absent("vars")]),
                      "code and vars need type: efi."),
            // boot
            FieldRule("spec.boot", when: .present("initrd"), then: .present("kernel"), "initrd needs kernel."),
            FieldRule("spec.boot", when: .present("cmdline"), then: .present("kernel"), "cmdline needs kernel."),
            // memory
            FieldRule("spec.memory", when: .present("slots"), then: .present("max"), "slots needs max."),
            FieldRule("spec.memory", when: .equals("backend", "file"), then: .present("path"), "backend file needs path."),
            FieldRule("spec.memory", when: .present("path"), then: .equals("backend", "file"), "path needs backend: file."),
            // disks
            FieldRule("spec.disks[].nbd", when: .present("unix"), then: absent("port"), "port goes with host, not unix."),
            FieldRule("spec.disks[].iscsi", when: .present("passwordFrom"), then: .present("user"), "passwordFrom needs user."),
            FieldRule("spec.disks[]", when: .present("create"), then: .present("file"), "create works only with the file backend."),
            FieldRule("spec.disks[]", when: .present("create"), then: .not(.isTrue("readOnly")),
                      "create makes no sense for a read-only disk."),
            FieldRule("spec.disks[]", when: .any([.equals("interface", "ide"), .equals("interface", "nvme")]),
                      then: .not(.isTrue("readOnly")), "ide and nvme disks cannot be read-only."),
            // display
            FieldRule("spec.display.spice", when: .isTrue("disableTicketing"), then: absent("passwordFrom"),
                      "disableTicketing contradicts passwordFrom."),
            // spec-wide
            FieldRule("spec", when: .isTrue("spiceAgent"), then: .present("display.spice"), "spiceAgent needs display.spice."),
            FieldRule("spec", when: .equals("audio.backend", "spice"), then: .present("display.spice"),
                      "audio backend spice needs display.spice."),
            FieldRule("spec", when: .equals("usb.controller", "none"),
                      then: .not(.any([.isTrue("usbTablet"), .nonEmpty("usb.devices")])),
                      "controller none leaves no bus for usbTablet or USB devices."),
            // usb devices
            FieldRule("spec.usb.devices[]", when: .equals("type", "host"),
                      then: .exactlyOne([.all([.present("vendor"), .present("product")]),
                                         .all([.present("bus"), .present("address")])]),
                      "a host device needs either vendor and product, or bus and address."),
            FieldRule("spec.usb.devices[]", when: .not(.equals("type", "host")),
                      then: .all(["vendor", "product", "bus", "address"].map(absent)),
                      "vendor, product, bus and address are only for type: host."),
        ]
        // throttle: totals exclude per-direction limits; a burst needs its base; a burst length needs a burst.
        for (total, parts) in [("bps", ["bpsRead", "bpsWrite"]), ("iops", ["iopsRead", "iopsWrite"])] {
            rules.append(FieldRule("spec.disks[].throttle", when: .present(total), then: .all(parts.map(absent)),
                                   "\(total) cannot be combined with \(parts.joined(separator: " or "))."))
        }
        let bursts = ["bps", "bpsRead", "bpsWrite", "iops", "iopsRead", "iopsWrite"]
        for base in bursts {
            rules.append(FieldRule("spec.disks[].throttle", when: .present(base + "Max"), then: .present(base),
                                   "\(base)Max needs \(base)."))
        }
        rules.append(FieldRule("spec.disks[].throttle", when: .present("burstLength"),
                               then: .any(bursts.map { .present($0 + "Max") }), "burstLength needs a burst limit."))
        return rules
    }()

    /// The rules about the object at `path`.
    static func rules(at path: String) -> [FieldRule] { rules.filter { $0.object == path } }
}

// MARK: - JSON Schema rendering

extension FieldRule.Condition {
    /// The condition as a JSON Schema that an object instance matches when it holds.
    var schema: JSONValue {
        switch self {
        case .present(let key):
            return Self.at(key, .object([("not", .object([("type", .string("null"))]))]))
        case .equals(let key, let value):
            return Self.at(key, .object([("const", .string(value))]))
        case .isTrue(let key):
            return Self.at(key, .object([("const", .bool(true))]))
        case .nonEmpty(let key):
            return Self.at(key, .object([("type", .string("array")), ("minItems", .int(1))]))
        case .not(let c):
            return .object([("not", c.schema)])
        case .all(let cs):
            return .object([("allOf", .array(cs.map(\.schema)))])
        case .any(let cs):
            return .object([("anyOf", .array(cs.map(\.schema)))])
        case .exactlyOne(let cs):
            return .object([("oneOf", .array(cs.map(\.schema)))])
        }
    }

    /// A schema requiring the dotted `path` to exist and its value to match `leaf`; the
    /// instance and each value on the way must be objects (a null would pass `required`).
    private static func at(_ path: String, _ leaf: JSONValue) -> JSONValue {
        let keys = path.split(separator: ".").map(String.init)
        var schema = leaf
        for key in keys.reversed() {
            schema = .object([
                ("type", .string("object")), ("required", .array([.string(key)])), ("properties", .object([(key, schema)])),
            ])
        }
        return schema
    }
}
