// MARK: - StateFingerprint

/// A stable hash of observed state: `sha256:` and 64 hex digits.
///
/// Computed over a canonical encoding of the ``ObservedVM`` values (sorted by name, their
/// device lists sorted by name, object keys sorted, nil fields left out), so it depends
/// only on the values: not on observation order, dictionary order, or Foundation. A plan
/// records the fingerprint of the state it was computed from; `apply plan.json` observes
/// again and refuses the plan when the fingerprint differs.
package struct StateFingerprint: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    /// `sha256:` and 64 lower-case hex digits.
    package var rawValue: String

    /// The fingerprint of a plan made without one: matches no observed state.
    package static let none = StateFingerprint(rawValue: "none")

    /// Wraps a fingerprint as read from a plan file.
    package init(rawValue: String) { self.rawValue = rawValue }

    /// The fingerprint of `observed`, in any order.
    package init(of observed: [ObservedVM]) {
        let canonical = observed.map { $0.canonicalized() }.sorted { $0.name < $1.name }
        var bytes: [UInt8] = []
        do {
            let encoder = CanonicalEncoder()
            try canonical.encode(to: encoder)
            encoder.root.serialize(into: &bytes)
        } catch {
            // The encoder never throws for these types; hash a marker rather than trap.
            bytes = Array("unencodable".utf8)
        }
        var sha = SHA256()
        sha.update(bytes)
        rawValue = "sha256:" + sha.finalize().map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }

    /// The fingerprint as text.
    package var description: String { rawValue }

    /// Decodes from a bare string.
    package init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Encodes as a bare string.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

extension ObservedVM {
    /// The same observation with its device lists sorted by name.
    func canonicalized() -> ObservedVM {
        var vm = self
        vm.live?.disks?.sort { $0.name < $1.name }
        vm.live?.cdroms?.sort { $0.name < $1.name }
        vm.live?.nics?.sort { $0.name < $1.name }
        return vm
    }
}

// MARK: - Canonical encoding

/// A value tree written by ``CanonicalEncoder``.
final class CanonicalNode {
    enum Kind { case null, scalar(String), array, object }
    var kind: Kind = .null
    var children: [CanonicalNode] = []
    var keyed: [String: CanonicalNode] = [:]

    /// Writes a self-delimiting form: `n`, `s<len>:<utf8>`, `a<count>[…]`, `o<count>{<key><value>…}`
    /// with keys sorted by their UTF-8 bytes.
    func serialize(into out: inout [UInt8]) {
        func string(_ s: String) {
            let u = Array(s.utf8)
            out += Array("s\(u.count):".utf8)
            out += u
        }
        switch kind {
        case .null: out.append(UInt8(ascii: "n"))
        case .scalar(let s): string(s)
        case .array:
            out += Array("a\(children.count)[".utf8)
            for c in children { c.serialize(into: &out) }
            out.append(UInt8(ascii: "]"))
        case .object:
            out += Array("o\(keyed.count){".utf8)
            for key in keyed.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                string(key)
                keyed[key]!.serialize(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// An `Encoder` that builds a ``CanonicalNode`` tree; scalars are kept as text with a type tag.
final class CanonicalEncoder: Encoder {
    let root: CanonicalNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: CanonicalNode = CanonicalNode(), codingPath: [any CodingKey] = []) {
        self.root = node
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = root.kind {} else { root.kind = .object }
        return KeyedEncodingContainer(Keyed<Key>(node: root, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        root.kind = .array
        return Unkeyed(node: root, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        Single(node: root, codingPath: codingPath)
    }

    /// Encodes `value` into `node`: scalars directly, the rest through `encode(to:)`.
    static func encode(_ value: some Encodable, into node: CanonicalNode, codingPath: [any CodingKey]) throws {
        switch value {
        case let v as String: node.kind = .scalar("S" + v)
        case let v as Bool: node.kind = .scalar(v ? "Bt" : "Bf")
        case let v as any BinaryInteger: node.kind = .scalar("I" + String(describing: v))
        case let v as Double: node.kind = .scalar("D" + String(v.bitPattern, radix: 16))
        case let v as Float: node.kind = .scalar("F" + String(v.bitPattern, radix: 16))
        default: try value.encode(to: CanonicalEncoder(node: node, codingPath: codingPath))
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: CanonicalNode
        let codingPath: [any CodingKey]

        func child(_ key: Key) -> CanonicalNode {
            let c = CanonicalNode()
            node.keyed[key.stringValue] = c
            return c
        }

        mutating func encodeNil(forKey key: Key) throws { _ = child(key) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try CanonicalEncoder.encode(value, into: child(key), codingPath: codingPath + [key])
        }
        mutating func nestedContainer<NestedKey: CodingKey>(
            keyedBy keyType: NestedKey.Type, forKey key: Key
        ) -> KeyedEncodingContainer<NestedKey> {
            let c = child(key)
            c.kind = .object
            return KeyedEncodingContainer(Keyed<NestedKey>(node: c, codingPath: codingPath + [key]))
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let c = child(key)
            c.kind = .array
            return Unkeyed(node: c, codingPath: codingPath + [key])
        }
        mutating func superEncoder() -> any Encoder {
            CanonicalEncoder(node: child(Key(stringValue: "super")!), codingPath: codingPath)
        }
        mutating func superEncoder(forKey key: Key) -> any Encoder {
            CanonicalEncoder(node: child(key), codingPath: codingPath + [key])
        }
    }

    struct IndexKey: CodingKey {
        var stringValue: String { String(intValue!) }
        var intValue: Int?
        init(_ i: Int) { intValue = i }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: CanonicalNode
        let codingPath: [any CodingKey]
        var count: Int { node.children.count }

        func next() -> CanonicalNode {
            let c = CanonicalNode()
            node.children.append(c)
            return c
        }

        mutating func encodeNil() throws { _ = next() }
        mutating func encode<T: Encodable>(_ value: T) throws {
            let key = IndexKey(count)
            try CanonicalEncoder.encode(value, into: next(), codingPath: codingPath + [key])
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let key = IndexKey(count)
            let c = next()
            c.kind = .object
            return KeyedEncodingContainer(Keyed<NestedKey>(node: c, codingPath: codingPath + [key]))
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let key = IndexKey(count)
            let c = next()
            c.kind = .array
            return Unkeyed(node: c, codingPath: codingPath + [key])
        }
        mutating func superEncoder() -> any Encoder {
            let key = IndexKey(count)
            return CanonicalEncoder(node: next(), codingPath: codingPath + [key])
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: CanonicalNode
        let codingPath: [any CodingKey]

        mutating func encodeNil() throws { node.kind = .null }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try CanonicalEncoder.encode(value, into: node, codingPath: codingPath)
        }
    }
}

// MARK: - SHA-256

/// SHA-256 (FIPS 180-4), enough for fingerprints; no Foundation, no C.
struct SHA256 {
    private var h: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    /// Adds bytes.
    mutating func update(_ bytes: [UInt8]) {
        length &+= UInt64(bytes.count)
        buffer += bytes
        var offset = 0
        while buffer.count - offset >= 64 {
            compress(buffer, offset)
            offset += 64
        }
        buffer.removeFirst(offset)
    }

    /// The 32-byte digest.
    mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        while (buffer.count + tail.count) % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        buffer += tail
        var offset = 0
        while offset < buffer.count {
            compress(buffer, offset)
            offset += 64
        }
        buffer = []
        return h.flatMap { w in (0..<4).reversed().map { UInt8(truncatingIfNeeded: w >> (UInt32($0) * 8)) } }
    }

    private mutating func compress(_ block: [UInt8], _ offset: Int) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            let j = offset + i * 4
            w[i] = UInt32(block[j]) << 24 | UInt32(block[j + 1]) << 16 | UInt32(block[j + 2]) << 8 | UInt32(block[j + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ Self.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g; g = f; f = e; e = d &+ t1
            d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
        h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
}
