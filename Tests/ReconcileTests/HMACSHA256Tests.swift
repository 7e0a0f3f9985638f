import Foundation
@testable import Reconcile
import Testing

/// HMAC-SHA-256 against RFC 4231's test cases, and the comparison's answers.
@Suite struct HMACSHA256Tests {
    struct Case: Sendable, CustomTestStringConvertible {
        var key: [UInt8]
        var data: [UInt8]
        var mac: String
        var testDescription: String { "key \(key.count) bytes, data \(data.count) bytes" }
    }

    static let rfc4231: [Case] = [
        Case(key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8),
             mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        Case(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
             mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        Case(key: [UInt8](repeating: 0xaa, count: 20), data: [UInt8](repeating: 0xdd, count: 50),
             mac: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        Case(key: [UInt8](repeating: 0xaa, count: 131), data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        Case(key: [UInt8](repeating: 0xaa, count: 131),
             data: Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
             mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: rfc4231) func matchesRFC4231(_ c: Case) {
        #expect(HMACSHA256.hex(HMACSHA256.authenticationCode(for: c.data, key: c.key)) == c.mac)
        #expect(HMACSHA256.isValid(HMACSHA256.bytes(hex: c.mac)!, for: c.data, key: c.key))
    }

    @Test func anyChangedByteOrKeyIsInvalid() {
        let key = Array("k".utf8), data = Array("plan".utf8)
        let code = HMACSHA256.authenticationCode(for: data, key: key)
        var flipped = code
        flipped[31] ^= 1
        #expect(!HMACSHA256.isValid(flipped, for: data, key: key))
        #expect(!HMACSHA256.isValid(code, for: Array("plam".utf8), key: key))
        #expect(!HMACSHA256.isValid(code, for: data, key: Array("K".utf8)))
        #expect(!HMACSHA256.isValid(Array(code.dropLast()), for: data, key: key))
        #expect(HMACSHA256.bytes(hex: "0g") == nil)
        #expect(HMACSHA256.bytes(hex: "abc") == nil)
        #expect(HMACSHA256.bytes(hex: "00ffAB") == [0, 255, 171])
    }
}
