import Foundation
@testable import QMP
import QemuCtlTestSupport
import Testing

/// The blocking one-connection exchange (the observer's client), against a scripted peer for
/// what a real QEMU does not do on demand; `RealQEMUTests` covers it against QEMU.
@Suite(.timeLimit(.minutes(1)), .offPool) struct QMPExchangeTests {
    @Test func capabilitiesTravelWithTheFirstBatchAndRepliesComeBackInOrder() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            // Everything of the first batch is sent before any reply: negotiation included.
            let caps = c.readCommand()
            let a = c.readCommand()
            let b = c.readCommand()
            guard caps.name == "qmp_capabilities", a.name == "query-status", b.name == "query-block" else { return }
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}"# + "\r\n")
            // Out of order, the second split across two writes: matched by id.
            c.send(#"{"return": [], "id": \#(b.id)}"# + "\r\n")
            c.send(#"{"return": {"status": "running", "#)
            c.send(#""running": true}, "id": \#(a.id)}"# + "\r\n")
            let next = c.readCommand()
            c.send(#"{"error": {"class": "DeviceNotFound", "desc": "no such device"}, "id": \#(next.id)}"# + "\r\n")
            c.waitForClose()
        }
        let x = try QMPExchange(path: peer.socketPath, timeout: .seconds(10))
        #expect(x.greeting.version == "7.2.0")
        #expect(x.peerPID == getpid())
        let replies = try x.run([("query-status", nil), ("query-block", nil)])
        #expect(replies.count == 2)
        #expect(try QMPRunStatus(reply: replies[0].get()).status == "running")
        #expect(try replies[1].get().arrayValue?.isEmpty == true)
        // A later batch does not negotiate again; QEMU's error is that command's result.
        let second = try x.run([("device_del", ["id": "nic9"])])
        guard case .failure(let error) = second[0] else {
            Issue.record("expected QEMU's error, got \(second[0])")
            return
        }
        #expect(error.code == .commandFailed && error.errorClass == "DeviceNotFound" && error.command == "device_del")
        x.close()
        #expect(peer.waitForScript())
    }

    @Test func silentPeerTimesOutWithinTheOneDeadline() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.waitForClose()
        }
        let start = ContinuousClock.now
        let x = try QMPExchange(path: peer.socketPath, timeout: .milliseconds(300))
        let error = #expect(throws: QMPError.self) { _ = try x.run([("query-status", nil)]) }
        #expect(error?.code == .timedOut)
        #expect(error?.command == "qmp_capabilities")
        #expect(ContinuousClock.now - start < .seconds(10))
        // Unusable afterwards, and says why.
        #expect((#expect(throws: QMPError.self) { _ = try x.run([("query-status", nil)]) })?.code == .timedOut)
    }

    @Test func wedgedPeerThatNeverGreetsTimesOut() throws {
        let peer = try FakeQMPPeer { c in c.waitForClose() }
        let error = #expect(throws: QMPError.self) { _ = try QMPExchange(path: peer.socketPath, timeout: .milliseconds(200)) }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("no QMP greeting") == true)
    }

    @Test func garbageIsAProtocolViolation() throws {
        let peer = try FakeQMPPeer { c in
            c.send("SSH-2.0-OpenSSH_9.2\r\n")
            c.waitForClose()
        }
        let error = #expect(throws: QMPError.self) { _ = try QMPExchange(path: peer.socketPath, timeout: .seconds(10)) }
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.contains("not QMP") == true)
    }

    @Test func peerClosingMidBatchIsConnectionClosed() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            _ = c.readCommand()
            c.close()
        }
        let x = try QMPExchange(path: peer.socketPath, timeout: .seconds(10))
        let error = #expect(throws: QMPError.self) { _ = try x.run([("query-status", nil)]) }
        #expect(error?.code == .connectionClosed)
        #expect(error?.message.contains("closed the monitor connection") == true)
    }

    @Test func idLessErrorAnswersTheOldestUnansweredCommand() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            let caps = c.readCommand()
            let a = c.readCommand()
            let b = c.readCommand()
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"error": {"class": "GenericError", "desc": "JSON parse error"}}"# + "\r\n")
            c.send(#"{"return": {"ok": 2}, "id": \#(b.id)}"# + "\r\n")
            _ = a
            c.waitForClose()
        }
        let x = try QMPExchange(path: peer.socketPath, timeout: .seconds(10))
        let replies = try x.run([("first", nil), ("second", nil)])
        guard case .failure(let error) = replies[0] else {
            Issue.record("expected the id-less error on the first command, got \(replies[0])")
            return
        }
        #expect(error.command == "first" && error.message.contains("JSON parse error"))
        #expect(try replies[1].get()["ok"]?.intValue == 2)
    }

    @Test func noSocketIsConnectFailed() throws {
        let dir = try TempDir("exchange")
        defer { dir.remove() }
        let error = #expect(throws: QMPError.self) { _ = try QMPExchange(path: dir.file("none.sock"), timeout: .seconds(1)) }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("no QMP socket") == true)
    }
}
