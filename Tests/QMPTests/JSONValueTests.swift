import Testing
@testable import QMP

@Suite struct JSONValueTests {
    @Test func parsesQMPReply() throws {
        let v = try JSONValue(parsing: #"{"return": {"status": "running", "running": true, "n": -12, "big": 18446744073709551615, "f": 1.5e3}, "id": 7}"#)
        #expect(v["id"]?.intValue == 7)
        #expect(v["return"]?["status"]?.stringValue == "running")
        #expect(v["return"]?["running"]?.boolValue == true)
        #expect(v["return"]?["n"] == .int(-12))
        #expect(v["return"]?["big"]?.doubleValue == 18446744073709551615.0)
        #expect(v["return"]?["f"] == .double(1500))
    }

    @Test func decodesEscapesAndSurrogates() throws {
        let v = try JSONValue(parsing: #""a\"b\\c\/\n\t\u00e9\ud83d\ude00""#)
        #expect(v.stringValue == "a\"b\\c/\n\té😀")
    }

    @Test(arguments: [
        ("", "unexpected end of input"),
        ("{", "unexpected end of input"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"{"a":1,}"#, "expected a string key"),
        ("[1 2]", "expected ',' or ']'"),
        ("tru", "unexpected end of input"),
        ("01", "unexpected data after the value"),
        (#""\ud800""#, "unpaired surrogate"),
        ("\"a\u{01}\"", "control character in string"),
        ("-", "invalid number"),
        ("1.", "no digits after '.'"),
        ("{} x", "unexpected data after the value"),
    ])
    func refusesInvalidJSON(text: String, reason: String) {
        let error = #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        let error = #expect(throws: JSONParseError.self) { try JSONValue(parsing: bytes) }
        #expect(error?.reason == "string is not valid UTF-8")
    }

    @Test func refusesDeepNesting() {
        let text = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let error = #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
        #expect(error?.reason.contains("nesting deeper") == true)
    }

    @Test func writesCompactSortedEscapedJSON() throws {
        let v: JSONValue = ["b": [1, 2.5, nil, true], "a": "x\"\n\u{01}é"]
        #expect(v.description == #"{"a":"x\"\n\u0001é","b":[1,2.5,null,true]}"#)
        #expect(try JSONValue(parsing: v.description) == v)
    }

    @Test func encodesCommandsWithIDs() throws {
        let bytes = Wire.encode(command: "block_set_io_throttle", arguments: ["id": "disk0", "bps": 1024], id: 42)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasSuffix("}\r\n"))
        let v = try JSONValue(parsing: String(text.dropLast()))  // "\r\n" is one Character
        #expect(v == ["execute": "block_set_io_throttle", "arguments": ["id": "disk0", "bps": 1024], "id": 42])
    }
}
