import Foundation
@testable import QMP
import QemuCtlTestSupport
import Testing

/// The blocking one-connection exchange (the observer's client), against a scripted peer for
/// what a real QEMU does not do on demand; `RealQEMUTests` covers it against QEMU.
@Suite(.timeLimit(.minutes(1)), .offPool) struct QMPExchangeTests {
    /// What one conversation saw.
    final class Transcript {
        var greeting: QMPGreeting? = nil
        var peer: Int32? = nil
        var replies: [[QMPExchange.Reply]] = []
        var error: QMPError? = nil
    }

    /// Sends `batches` one after another to the monitor at `path`.
    static func converse(_ path: String, _ batches: [[QMPExchange.Command]], timeout: Duration = .seconds(10)) -> Transcript {
        converseAll([(path, batches)], timeout: timeout)[0]
    }

    /// Runs several conversations together.
    static func converseAll(_ talks: [(String, [[QMPExchange.Command]])], timeout: Duration = .seconds(10)) -> [Transcript] {
        let transcripts = talks.map { _ in Transcript() }
        let conversations = zip(talks, transcripts).map { talk, t in
            var c = QMPExchange.Conversation(path: talk.0) { greeting, peer in
                t.greeting = greeting
                t.peer = peer
                return talk.1.first
            }
            c.next = { replies in
                t.replies.append(replies)
                return t.replies.count < talk.1.count ? talk.1[t.replies.count] : nil
            }
            return c
        }
        for (t, e) in zip(transcripts, QMPExchange.run(conversations, timeout: timeout)) { t.error = e }
        return transcripts
    }

    /// A peer that greets, takes `qmp_capabilities` and one query pipelined, and answers both
    /// (the query with a `query-status` reply of `status`).
    static func statusPeer(at path: String? = nil, _ status: String = "running") throws -> FakeQMPPeer {
        try FakeQMPPeer(at: path) { c in
            c.greet()
            let caps = c.readCommand()
            let q = c.readCommand()
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"return": {"status": "\#(status)", "running": \#(status == "running")}, "id": \#(q.id)}"# + "\r\n")
            c.waitForClose()
        }
    }

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
        let t = Self.converse(peer.socketPath, [[("query-status", nil), ("query-block", nil)], [("device_del", ["id": "nic9"])]])
        #expect(t.error == nil)
        #expect(t.greeting?.version == "7.2.0")
        #expect(t.peer == getpid())
        #expect(t.replies.count == 2 && t.replies.first?.count == 2)
        guard t.replies.count == 2 else { return }
        #expect(try QMPRunStatus(reply: t.replies[0][0].get()).status == "running")
        #expect(try t.replies[0][1].get().arrayValue?.isEmpty == true)
        // A later batch does not negotiate again; QEMU's error is that command's result.
        guard case .failure(let error) = t.replies[1][0] else {
            Issue.record("expected QEMU's error, got \(t.replies[1][0])")
            return
        }
        #expect(error.code == .commandFailed && error.errorClass == "DeviceNotFound" && error.command == "device_del")
        #expect(peer.waitForScript())
    }

    @Test func silentPeerTimesOutWithinTheOneDeadline() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.waitForClose()
        }
        let start = ContinuousClock.now
        let t = Self.converse(peer.socketPath, [[("query-status", nil)]], timeout: .milliseconds(300))
        #expect(t.greeting != nil)
        #expect(t.error?.code == .timedOut)
        #expect(t.error?.command == "qmp_capabilities")
        #expect(t.error?.message.contains("no reply") == true)
        #expect(t.replies.isEmpty)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(290) && elapsed < .seconds(10))
    }

    @Test func wedgedPeerThatNeverGreetsTimesOut() throws {
        let peer = try FakeQMPPeer { c in c.waitForClose() }
        let t = Self.converse(peer.socketPath, [[("query-status", nil)]], timeout: .milliseconds(200))
        #expect(t.error?.code == .timedOut)
        #expect(t.error?.message.contains("no QMP greeting") == true)
        #expect(t.greeting == nil)
    }

    @Test func garbageIsAProtocolViolation() throws {
        let peer = try FakeQMPPeer { c in
            c.send("SSH-2.0-OpenSSH_9.2\r\n")
            c.waitForClose()
        }
        let t = Self.converse(peer.socketPath, [[("query-status", nil)]])
        #expect(t.error?.code == .protocolViolation)
        #expect(t.error?.message.contains("not QMP") == true)
    }

    @Test func peerClosingMidBatchIsConnectionClosed() throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            _ = c.readCommand()
            c.close()
        }
        let t = Self.converse(peer.socketPath, [[("query-status", nil)]])
        #expect(t.error?.code == .connectionClosed)
        #expect(t.error?.message.contains("closed the monitor connection") == true)
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
        let t = Self.converse(peer.socketPath, [[("first", nil), ("second", nil)]])
        #expect(t.error == nil)
        guard let replies = t.replies.first, replies.count == 2, case .failure(let error) = replies[0] else {
            Issue.record("expected the id-less error on the first command, got \(t.replies)")
            return
        }
        #expect(error.command == "first" && error.message.contains("JSON parse error"))
        #expect(try replies[1].get()["ok"]?.intValue == 2)
    }

    @Test func noSocketIsConnectFailed() throws {
        let dir = try TempDir("exchange")
        defer { dir.remove() }
        let t = Self.converse(dir.file("none.sock"), [[("query-status", nil)]], timeout: .seconds(1))
        #expect(t.error?.code == .connectFailed)
        #expect(t.error?.message.contains("no QMP socket") == true)
    }

    @Test func oneSlowMonitorDoesNotHoldUpTheOthers() throws {
        let silent = try FakeQMPPeer { c in
            c.greet()
            c.waitForClose()
        }
        let quick = try (0..<3).map { _ in try Self.statusPeer("paused") }
        let start = ContinuousClock.now
        let all = Self.converseAll(([silent] + quick).map { ($0.socketPath, [[("query-status", nil)]]) }, timeout: .milliseconds(500))
        #expect(all[0].error?.code == .timedOut)
        for t in all.dropFirst() {
            #expect(t.error == nil)
            #expect(try t.replies.first.map { try QMPRunStatus(reply: $0[0].get()).status } == "paused")
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func aStartingMonitorIsRetriedUntilItListens() throws {
        let dir = try TempDir("exchange")
        defer { dir.remove() }
        let path = dir.file("late.sock")
        // The socket appears 200 ms after the conversation starts.
        let late = Thread {
            usleep(200_000)
            _ = try? Self.statusPeer(at: path).waitForScript()
        }
        late.start()
        var c = QMPExchange.Conversation(path: path) { _, _ in [("query-status", nil)] }
        c.retryRefused = { true }
        var got: [QMPExchange.Reply] = []
        c.next = { replies in got = replies; return nil }
        let errors = QMPExchange.run([c], timeout: .seconds(10))
        #expect(errors.count == 1 && errors[0] == nil)
        #expect(try got.first.map { try QMPRunStatus(reply: $0.get()).running } == true)
    }

    @Test func aConnectionOpenedAheadIsUsedAndAnUnusedOneIsClosed() throws {
        // Each scripted peer accepts one connection only: a second connect would never be greeted.
        let used = try Self.statusPeer()
        let unused = try FakeQMPPeer { c in
            c.greet()
            c.waitForClose()
        }
        var pre: QMPExchange.Preconnected? = QMPExchange.Preconnected(paths: [used.socketPath, unused.socketPath])
        var c = QMPExchange.Conversation(path: used.socketPath) { _, _ in [("query-status", nil)] }
        var got: [QMPExchange.Reply] = []
        c.next = { replies in got = replies; return nil }
        let errors = QMPExchange.run([c], timeout: .seconds(3), preconnected: pre)
        #expect(errors.count == 1 && errors[0] == nil)
        #expect(try got.first.map { try QMPRunStatus(reply: $0.get()).running } == true)
        #expect(used.waitForScript())
        // The connection no run took is closed with the object.
        pre = nil
        #expect(unused.waitForScript(seconds: 5))
    }

    @Test func theOpeningIsWrittenBeforeTheGreetingAndAnsweredWithTheFirstBatch() throws {
        let peer = try FakeQMPPeer { c in
            // Reads the opening before greeting: it was written right after connect(2).
            let caps = c.readCommand()
            let status = c.readCommand()
            guard caps.name == "qmp_capabilities", status.name == "query-status" else { return }
            c.greet()
            let cpus = c.readCommand()  // what the greeting's callback added
            guard cpus.name == "query-cpus-fast" else { return }
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"return": [{"cpu-index": 0}], "id": \#(cpus.id)}"# + "\r\n")
            c.send(#"{"return": {"status": "paused", "running": false}, "id": \#(status.id)}"# + "\r\n")
            c.waitForClose()
        }
        var c = QMPExchange.Conversation(path: peer.socketPath) { _, _ in [("query-cpus-fast", nil)] }
        c.opening = [("query-status", nil)]
        var got: [QMPExchange.Reply] = []
        c.next = { replies in got = replies; return nil }
        let errors = QMPExchange.run([c], timeout: .seconds(5))
        #expect(errors.count == 1 && errors[0] == nil)
        #expect(peer.waitForScript())
        // The opening's reply first, then the batch's, each matched by id.
        #expect(got.count == 2)
        guard got.count == 2 else { return }
        #expect(try QMPRunStatus(reply: got[0].get()).status == "paused")
        #expect(try got[1].get().arrayValue?.count == 1)
    }

    @Test func anOpeningAloneIsOneBatchAndAHangUpAtTheGreetingDropsIt() throws {
        let answered = try FakeQMPPeer { c in
            let caps = c.readCommand()
            let status = c.readCommand()
            c.greet()
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"return": {"status": "running", "running": true}, "id": \#(status.id)}"# + "\r\n")
            c.waitForClose()
        }
        // The greeting's callback refuses this peer: the conversation ends there, unanswered.
        let refused = try FakeQMPPeer { c in
            _ = c.readCommand()
            _ = c.readCommand()
            c.greet()
            c.waitForClose()
        }
        var calls = 0
        let conversations = [answered.socketPath, refused.socketPath].map { path in
            var c = QMPExchange.Conversation(path: path) { _, _ in path == refused.socketPath ? nil : [] }
            c.opening = [("query-status", nil)]
            c.next = { replies in
                calls += 1
                #expect(replies.count == 1)
                #expect((try? QMPRunStatus(reply: replies[0].get()).running) == true)
                return nil
            }
            return c
        }
        let start = ContinuousClock.now
        let errors = QMPExchange.run(conversations, timeout: .seconds(5))
        #expect(errors.count == 2 && errors.allSatisfy { $0 == nil })
        #expect(calls == 1)
        #expect(ContinuousClock.now - start < .seconds(2))  // the refused one hung up, no deadline waited
        #expect(answered.waitForScript() && refused.waitForScript())
    }

    @Test func aConnectionOpenedAheadWithTheOpeningIsUsedOnlyByAConversationWithTheSameOpening() throws {
        let opening: [QMPExchange.Command] = [("query-status", nil)]
        // Preconnected: the opening arrives before the greeting, and no second connection comes.
        let same = try FakeQMPPeer { c in
            let caps = c.readCommand()
            let status = c.readCommand()
            c.greet()
            c.send(#"{"return": {}, "id": \#(caps.id)}"# + "\r\n")
            c.send(#"{"return": {"status": "running", "running": true}, "id": \#(status.id)}"# + "\r\n")
            c.waitForClose()
        }
        var pre: QMPExchange.Preconnected? = QMPExchange.Preconnected(paths: [same.socketPath], opening: opening)
        var c = QMPExchange.Conversation(path: same.socketPath) { _, _ in [] }
        c.opening = opening
        var got: [QMPExchange.Reply] = []
        c.next = { replies in got = replies; return nil }
        #expect(QMPExchange.run([c], timeout: .seconds(3), preconnected: pre).map { $0 == nil } == [true])
        #expect(try got.first.map { try QMPRunStatus(reply: $0.get()).running } == true)
        #expect(same.waitForScript())
        // A connection is taken only by a conversation whose opening is the one written to it.
        let other = try FakeQMPPeer { c in
            guard c.readCommand().name == "qmp_capabilities", c.readCommand().name == "query-status" else { return }
            c.greet()
            c.waitForClose()
        }
        pre = QMPExchange.Preconnected(paths: [other.socketPath], opening: opening)
        #expect(pre?.take(other.socketPath, opening: QMPExchange.openingBytes([("query-block", nil)])) == nil)
        let taken = pre?.take(other.socketPath, opening: QMPExchange.openingBytes(opening))
        #expect(taken != nil)
        #expect(pre?.take(other.socketPath, opening: QMPExchange.openingBytes(opening)) == nil)  // once
        pre = nil
        if let taken { close(taken) }  // the peer had the opening on it, then the close
        #expect(other.waitForScript())
    }
}
