import Manifest
import Testing

/// The decoder checks formats and resolves scalars on bytes; these tests hold the byte
/// versions to the String versions they replaced, on inputs chosen to find differences.
@Suite("Byte-level checks")
struct ByteChecksTests {
    static let samples: [String] = {
        var s = [
            "", " ", "a", "A", "0", "-", "+", ".", "_", ":", "/", "//", "a/", "/a", "a//b", "a.b", "a..b", ".a", "a.",
            "web-1", "-web", "web-", "Web", "w_b", "a" + String(repeating: "b", count: 62), "a" + String(repeating: "b", count: 63),
            "q35", "pc-i440fx-8.2", "virtio-net-pci", "+avx2", "-x2apic", "avx2", "+", "+-a", "++a", "a+b",
            "cdn", "abcdefghijklmnop", "abcdefghijklmnopa", "cdz", "eth0", "br-lan.10", "a234567890123456",
            "drive_1.a-b", "12345678901234567890", "123456789012345678901", "none", "nonE", "unix", "unix:", "unix:/a",
            "example.com/team", "example.com/", "/team", "a.b.c/x-y_z.w", "-a.com/x", "a-.com/x", "a..com/x", "a/b/c",
            "tcp:127.0.0.1:2222-:22", "udp::1-:2", ":1-:2", "tcp:1.2.3.4:65535-5.6.7.8:65536", "tcp:1.2.3:1-:2",
            "tcp:1.2.3.4.5:1-:2", "tcp:256.1.1.1:1-:2", "tcp:1.2.3.4:1-:", "tcp::-:2", "tcp::1:2-:3", "tcp::1-:2-3",
            "sctp::1-:2", "tcp:01.02.03.004:1-:2", "tcp::123456-:2", "tcp::1-:2\n", "tcp:١.2.3.4:1-:2", "tcp:/\u{301}:1-:2",
            "a\u{0}b", "a\tb", "a\u{7f}", "é", "e\u{301}", "a/\u{301}b", "-\u{301}", "/\u{301}", "x\u{301}:1",
            "PATH", "_X", "1X", "X-1", "127.0.0.1:5900", ":5900", "[::1]:5900", "[]:1", "host:99", "host:100",
            "52:54:00:12:34:56", "53:54:00:12:34:56", "0x046d", "0x046", "0X046d", "10.0.2.0/24", "10.0.2.0/33",
        ]
        s.append(String(repeating: "p", count: 4095))
        s.append(String(repeating: "p", count: 4096))
        return s
    }()

    @Test(arguments: StringFormat.allCases)
    func everyFormatAgreesWithTheStringImplementation(_ format: StringFormat) {
        for sample in Self.samples {
            #expect(format.accepts(sample) == format.acceptsString(sample), "\(format) \(sample.debugDescription)")
        }
    }

    @Test func integersResolveAsInt64ParsingDid() {
        let samples = [
            "0", "7", "-7", "+7", "007", "-0", "+", "-", "0x", "0o", "0x1F", "0xfF", "0x-1", "0x+1", "0o17", "0o8", "0o-7",
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
            "0x7FFFFFFFFFFFFFFF", "0x8000000000000000", "99999999999999999999999", "1_000", "1e3", "1.0", " 1", "1 ",
            "１", "0X10", "0b1", "--1", "+-1", "12a",
        ]
        for s in samples {
            // The String-based reference the byte parser replaced.
            var reference: Int64? = nil
            var kind = "string"
            if s.hasPrefix("0x") {
                reference = s.count == 2 ? nil : Int64(s.dropFirst(2), radix: 16)
            } else if s.hasPrefix("0o") {
                reference = s.count == 2 ? nil : Int64(s.dropFirst(2), radix: 8)
            } else {
                reference = Int64(s, radix: 10)
            }
            if reference != nil { kind = "int" }
            #expect(CoreSchema.integer(s) == reference, "\(s.debugDescription)")
            if kind == "int" { #expect(CoreSchema.kind(s) == "int", "\(s.debugDescription)") }
        }
        #expect(CoreSchema.kind("99999999999999999999999") == "invalid")
        #expect(CoreSchema.kind("on") == "string")
        #expect(CoreSchema.kind("~") == "null")
        #expect(CoreSchema.kind("FALSE") == "bool")
        #expect(CoreSchema.kind("-.inf") == "float")
        #expect(CoreSchema.kind("1.5e3") == "float")
    }
}
