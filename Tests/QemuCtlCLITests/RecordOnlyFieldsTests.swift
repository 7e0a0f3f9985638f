import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Issue 20, item 4: what QEMU cannot report (a NIC's link state, display passwords) is shown by
/// `describe` as coming from the record, as the reference says; what QEMU reports comes from QMP.
@Suite(.timeLimit(.minutes(2)), .offPool) struct RecordOnlyFieldsTests {
    @Test func describeSaysLinkAndPasswordComeFromTheRecord() async throws {
        let w = try Workspace("rec1")
        defer { w.cleanUp() }
        let secret = w.dir.file("vnc.pw")
        try "first".write(toFile: secret, atomically: true, encoding: .utf8)
        chmod(secret, 0o600)
        let vms = try w.manifest("r", bareVM("r", extra: """
              networks: [{name: lan, user: {}, link: down}]
              display: {vnc: {listen: none, passwordFrom: {file: \(secret)}}}
            """))
        let created = try await w.qemuctl("apply", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")

        // Someone else brings the link up over QMP: QEMU has no query that would show it.
        try await QMPClient.withConnection(to: "\(w.state)/r.sock") { qmp in
            _ = try await qmp.execute("set_link", arguments: ["name": "net-lan", "up": true])
        }
        let described = try await w.qemuctl("describe", "r", "-o", "json")
        #expect(described.status == 0, "\(described.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(described.out.utf8)) as? [String: Any], "\(described.out)")
        let nic = try #require((object["networks"] as? [[String: Any]])?.first { $0["name"] as? String == "lan" }, "\(object)")
        #expect(nic["link"] as? String == "down" && nic["linkSource"] as? String == "record", "\(nic)")
        let vnc = try #require((object["display"] as? [String: Any])?["vnc"] as? [String: Any], "\(object)")
        #expect(vnc["password"] as? String == "(sensitive)" && vnc["passwordSource"] as? String == "record", "\(vnc)")
        #expect((object["status"] as? [String: Any])?["runStatusSource"] as? String == "qmp", "\(object)")
    }
}
