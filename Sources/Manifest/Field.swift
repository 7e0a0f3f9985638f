// MARK: - ChangeClass

/// What it takes to apply a change of a field to an existing VM (ARCHITECTURE §4).
package enum ChangeClass: String, Sendable, Hashable, Codable, CaseIterable {
    /// Recorded only; the VM is untouched (labels).
    case metadata
    /// Applied to the running VM over QMP and verified (throttle, passwords, link, media, hot-plug).
    case live
    /// Needs a relaunch; disks and uuid are kept (machine, arch, firmware, kernel, CPU model).
    case restart
}

// MARK: - Field

/// One manifest field as data: name, type, default, documentation and change class.
///
/// The tree of fields rooted at ``FieldTable/document`` is the single description of
/// the manifest format: the decoder reads keys, types, enum values, bounds and defaults
/// from it; ``ManifestSchema`` renders it as JSON Schema and Markdown; the planner asks
/// it for change classes with ``FieldTable/changeClass(at:)``.
///
/// A class, so the decoder passes fields around by reference: the table is immutable.
package final class Field: Sendable {
    /// The key as written in YAML (`throttle`), or `[]` for an array's element.
    package let name: String
    /// What values the field accepts.
    package let type: FieldType
    /// What changing the field on an existing VM takes.
    package let change: ChangeClass
    /// One or two sentences for the schema's `description` and the reference docs.
    package let doc: String
    /// The value used when the key is absent, if any.
    package let defaultValue: DefaultValue?
    /// Whether the key must be present.
    package let required: Bool
    /// For a `live` field: the sibling field that bounds live changes (`count` up to
    /// `maxCount`); beyond it, a change needs a restart.
    package let liveUpTo: String?
    /// For a `live` field whose class depends on the VM: when the change is live
    /// (`within cpu.maxCount, not below the boot count`); otherwise it needs a restart.
    package let liveWhen: String?
    /// For a `restart` field: why a change needs a relaunch, when there is more to say than that
    /// (the plan shows it; ``FieldTable/restartReason(at:)`` looks it up, parents included).
    package let restartReason: String?
    /// A hash of `name`, so the decoder matches keys with one integer comparison.
    let keyHash: UInt64
    /// For an object: its fields, and the indices of the required ones and of the
    /// exactly-one-of group (precomputed for the decoder).
    let children: [Field]
    let requiredIndices: [Int]
    let oneOfIndices: [Int]
    /// The type and default unpacked into plain stored values, so the decoder's hot
    /// path reads them without touching the indirect ``FieldType``.
    let format: StringFormat?
    let lowerBound: Int64
    let upperBound: Int64
    let sizeBounds: ClosedRange<UInt64>
    let enumValues: [String]
    let defaultBool: Bool
    let defaultInteger: Int64?
    let defaultSize: UInt64?
    let defaultString: String?
    /// `name`'s UTF-8 and `children`, as buffers owned by the field, so the decoder's hot
    /// path reads them without reference counting. Immutable after init; freed by deinit.
    nonisolated(unsafe) let nameBytes: UnsafeBufferPointer<UInt8>
    nonisolated(unsafe) let childBuffer: UnsafeBufferPointer<Field>

    /// The change class as the schema and the reference state it: `live within cpu.maxCount; restart
    /// otherwise` for a field whose class depends on the VM (``liveWhen``), else the class.
    package var changeText: String {
        guard change == .live, let liveWhen else { return change.rawValue }
        return "live \(liveWhen); restart otherwise"
    }

    /// Creates a field.
    package init(
        _ name: String, _ type: FieldType, _ change: ChangeClass, _ doc: String,
        default defaultValue: DefaultValue? = nil, required: Bool = false, liveUpTo: String? = nil,
        liveWhen: String? = nil, restartReason: String? = nil
    ) {
        self.liveWhen = liveWhen
        self.restartReason = restartReason
        self.name = name
        self.type = type
        self.change = change
        self.doc = doc
        self.defaultValue = defaultValue
        self.required = required
        self.liveUpTo = liveUpTo
        self.keyHash = Field.hash(name)
        var format: StringFormat? = nil
        var lo: Int64 = .min, hi: Int64 = .max
        var sizeBounds: ClosedRange<UInt64> = 0...UInt64.max
        var values: [String] = []
        switch type {
        case .string(let f): format = f
        case .integer(let l, let h): (lo, hi) = (l, h)
        case .size(let l, let h): sizeBounds = l...h
        case .enumeration(let v): values = v
        default: break
        }
        self.format = format
        self.lowerBound = lo
        self.upperBound = hi
        self.sizeBounds = sizeBounds
        self.enumValues = values
        switch defaultValue {
        case .bool(let b)?:
            (defaultBool, defaultInteger, defaultSize, defaultString) = (b, nil, nil, nil)
        case .integer(let i)?:
            (defaultBool, defaultInteger, defaultSize, defaultString) = (false, i, nil, nil)
        case .string(let t)?:
            (defaultBool, defaultInteger, defaultSize, defaultString) = (false, nil, ByteSize.parse(t), t)
        case nil:
            (defaultBool, defaultInteger, defaultSize, defaultString) = (false, nil, nil, nil)
        }
        if case .object(let fields, let oneOf) = type {
            children = fields
            requiredIndices = fields.indices.filter { fields[$0].required }
            oneOfIndices = oneOf.compactMap { n in fields.firstIndex { $0.name == n } }
        } else {
            children = []
            requiredIndices = []
            oneOfIndices = []
        }
        let nameBuffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(name.utf8.count, 1))
        _ = nameBuffer.initialize(from: name.utf8)
        nameBytes = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(nameBuffer)[..<name.utf8.count])
        let childStorage = UnsafeMutableBufferPointer<Field>.allocate(capacity: max(children.count, 1))
        _ = childStorage.initialize(from: children)
        childBuffer = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(childStorage)[..<children.count])
    }

    deinit {
        UnsafeMutableBufferPointer(mutating: childBuffer).deinitialize()
        UnsafeMutableRawPointer(mutating: childBuffer.baseAddress!).deallocate()
        UnsafeMutableRawPointer(mutating: nameBytes.baseAddress!).deallocate()
    }

    /// 64-bit FNV-1a of the key's bytes.
    @inline(__always)
    static func hash(_ key: String) -> UInt64 {
        if let h = key.utf8.withContiguousStorageIfAvailable(hash) { return h }
        return Array(key.utf8).withUnsafeBufferPointer { hash($0) }
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01b3
        }
        return h
    }

    /// The child field named `name` of an object field.
    package func child(_ name: String) -> Field? {
        if case .object(let fields, _) = type { return fields.first { $0.name == name } }
        return nil
    }
}

// MARK: - FieldType

/// The values a ``Field`` accepts.
package indirect enum FieldType: Sendable {
    /// A string in one of the formats of ``StringFormat``.
    case string(StringFormat)
    /// `true` or `false` (YAML 1.2: `yes`, `no`, `on`, `off` are strings and refused).
    case bool
    /// An integer within bounds (inclusive).
    case integer(min: Int64, max: Int64)
    /// A byte size such as `512MiB` or `2G` (binary units), within bounds in bytes (inclusive).
    case size(min: UInt64, max: UInt64)
    /// One of a fixed list of words.
    case enumeration([String])
    /// A mapping with known keys; `oneOf` lists keys of which exactly one must be present
    /// (the backends of a disk or NIC, the source of a secret).
    case object([Field], oneOf: [String])
    /// A sequence whose items all match the element field (named `[]`).
    case array(Field)
    /// A mapping from keys of one string format to values of another (labels).
    case map(key: StringFormat, value: StringFormat)
}

// MARK: - DefaultValue

/// A field's default, as it would be written in YAML.
package enum DefaultValue: Sendable, Hashable {
    /// A boolean default.
    case bool(Bool)
    /// An integer default.
    case integer(Int64)
    /// A string default (also sizes, as written: `512MiB`, and enum values).
    case string(String)
}
