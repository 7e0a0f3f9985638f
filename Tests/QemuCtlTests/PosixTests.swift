import Foundation
import QemuCtl
import Testing

@Suite struct PosixTests {
    @Test func utcTimestampIsISO8601AsFoundationWritesIt() {
        // Around a second boundary the two may differ by one second: take Foundation's before and after.
        let before = ISO8601DateFormatter().string(from: Date())
        let ours = Posix.utcTimestamp()
        let after = ISO8601DateFormatter().string(from: Date())
        #expect(ours == before || ours == after, "\(ours) vs \(before)…\(after)")
        #expect(ours.count == 20 && ours.hasSuffix("Z"))
    }
}
