// MARK: - HMAC-SHA-256

/// HMAC-SHA-256 (RFC 2104 over FIPS 180-4 SHA-256, as RFC 4231 tests it), on this
/// module's ``SHA256``: no Foundation, no C, no crypto package.
///
/// ```swift
/// let tag = HMACSHA256.authenticationCode(for: Array("message".utf8), key: key)
/// HMACSHA256.isValid(tag, for: Array("message".utf8), key: key)  // true
/// ```
package enum HMACSHA256 {
    /// SHA-256's block size in bytes.
    static let blockSize = 64

    /// The 32-byte authentication code of `message` under `key` (any length; a key longer
    /// than a block is hashed first, as RFC 2104 says).
    package static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
        var k = key
        if k.count > blockSize {
            var h = SHA256()
            h.update(k)
            k = h.finalize()
        }
        k += [UInt8](repeating: 0, count: blockSize - k.count)
        var inner = SHA256()
        inner.update(k.map { $0 ^ 0x36 })
        inner.update(message)
        let innerDigest = inner.finalize()
        var outer = SHA256()
        outer.update(k.map { $0 ^ 0x5c })
        outer.update(innerDigest)
        return outer.finalize()
    }

    /// Whether `code` is the authentication code of `message` under `key`, compared in
    /// time that does not depend on where the first differing byte is.
    package static func isValid(_ code: [UInt8], for message: [UInt8], key: [UInt8]) -> Bool {
        let expected = authenticationCode(for: message, key: key)
        guard code.count == expected.count else { return false }
        var difference: UInt8 = 0
        for i in expected.indices { difference |= expected[i] ^ code[i] }
        return difference == 0
    }

    /// Lower-case hex of `bytes`.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// The bytes of lower-case or upper-case hex `text`, or `nil` when it is not hex.
    package static func bytes(hex text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
