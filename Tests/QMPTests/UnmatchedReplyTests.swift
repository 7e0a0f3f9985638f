import Foundation
@testable import QMP
import QemuCtlTestSupport
import Testing

/// A reply whose id matches no command sent is a protocol error in both clients: the
/// connection closes and the pending calls fail with a message that says so (issue 14, item 5).
@Suite(.timeLimit(.minutes(1)), .offPool) struct UnmatchedReplyTests {
    /// Replies the peer may forge: a string id, an id never issued, a negative id, a float id,
    /// a success without an id.
    static let forged = [
        #"{"return": {"status": "running", "running": true}, "id": "nope"}"#,
        #"{"return": {"status": "running", "running": true}, "id": 999}"#,
        #"{"return": {"status": "running", "running": true}, "id": -1}"#,
        #"{"return": {"status": "running", "running": true}, "id": 2.5}"#,
        #"{"return": {"status": "running", "running": true}}"#,
        #"{"error": {"class": "GenericError", "desc": "x"}, "id": {"a": 1}}"#,
    ]

    @Test(arguments: forged) func clientFailsThePendingCallAndCloses(_ reply: String) async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            _ = c.readCommand()
            c.send(reply + "\r\n")
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let error = await #expect(throws: QMPError.self) { try await client.execute("query-status") }
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.contains("matches no command sent") == true, "\(String(describing: error))")
        #expect(error?.command == "query-status")
        #expect(client.isClosed)
        // A later call fails at once: the connection is gone.
        await #expect(throws: QMPError.self) { try await client.execute("query-status") }
    }

    @Test(arguments: forged) func exchangeFailsTheConversation(_ reply: String) throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()  // qmp_capabilities
            _ = c.readCommand()
            c.send(reply + "\r\n")
            c.waitForClose()
        }
        let t = QMPExchangeTests.converse(peer.socketPath, [[("query-status", nil)]])
        #expect(t.error?.code == .protocolViolation)
        #expect(t.error?.message.contains("matches no command sent") == true, "\(String(describing: t.error))")
        #expect(t.replies.isEmpty)
    }

    @Test func exchangeRefusesASecondReplyToOneCommand() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            let caps = c.readCommand()
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.waitForClose()
        }
        let t = QMPExchangeTests.converse(peer.socketPath, [[("query-status", nil)]])
        #expect(t.error?.code == .protocolViolation)
        #expect(t.replies.isEmpty)
    }

    @Test func exchangeGivesTheStartThePeersUID() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            c.waitForClose()
        }
        var seen: QMPExchange.Peer? = nil
        let c = QMPExchange.Conversation.checkingPeer(path: peer.socketPath) { _, p in
            seen = p
            return []
        }
        _ = QMPExchange.run([c], timeout: .seconds(10))
        #expect(seen?.uid == geteuid())
        #expect(seen?.pid == getpid())  // the scripted peer runs in this process
    }
}
