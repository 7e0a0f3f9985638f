import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Faults a real QEMU does not produce on demand, against a scripted peer.
@Suite(.timeLimit(.minutes(1)), .offPool) struct FakePeerTests {
    @Test func wedgedPeerThatNeverGreetsTimesOut() async throws {
        let peer = try FakeQMPPeer { c in c.waitForClose() }
        let start = ContinuousClock.now
        let error = await #expect(throws: QMPError.self) {
            _ = try await QMPClient.connect(to: peer.socketPath, timeout: .milliseconds(300))
        }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("no QMP greeting") == true)
        #expect(error?.message.contains("busy") == true)
        // Bounded well below "forever" but loose enough for a loaded 2-core CI machine.
        #expect(elapsed >= .milliseconds(290) && elapsed < .seconds(10))
    }

    @Test func garbageInsteadOfAGreetingIsAProtocolViolation() async throws {
        let peer = try FakeQMPPeer { c in
            c.send("SSH-2.0-OpenSSH_9.2\r\n")
            c.waitForClose()
        }
        let error = await #expect(throws: QMPError.self) {
            _ = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        }
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.contains("not QMP") == true)
    }

    @Test func garbageMidSessionFailsPendingCallsAndEndsStreams() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            _ = c.readCommand()
            c.sendBytes([0x00, 0xFF, 0x13, 0x37])
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let events = client.events()
        let error = await #expect(throws: QMPError.self) { try await client.execute("query-status") }
        #expect(error?.code == .protocolViolation)
        #expect(error?.command == "query-status")
        await #expect(throws: QMPError.self) { for try await _ in events {} }
        #expect(client.isClosed)
    }

    @Test func idLessErrorFailsTheOldestPendingCallWithQEMUsMessage() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            let first = c.readCommand()
            let second = c.readCommand()
            c.send(#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'x'"}}"# + "\r\n")
            c.send(#"{"return": {"ok": 2}, "id": \#(second.id)}"# + "\r\n")
            _ = first
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        async let a: JSONValue = client.execute("first")
        try await Task.sleep(for: .milliseconds(50))  // keep the order first, second
        async let b: JSONValue = client.execute("second")
        let errorA: QMPError?
        do { _ = try await a; errorA = nil } catch { errorA = error as? QMPError }
        let valueB = try await b
        guard let error = errorA else { Issue.record("first call should fail"); return }
        #expect(error.code == .commandFailed)
        #expect(error.errorClass == "GenericError")
        #expect(error.message == "JSON parse error, invalid keyword 'x'")
        #expect(error.command == "first")
        #expect(valueB["ok"] == 2)
    }

    @Test func replyAfterTheDeadlineIsDroppedAndTheNextCallWorks() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            let slow = c.readCommand()
            Thread.sleep(forTimeInterval: 2.0)
            c.send(#"{"return": {"late": true}, "id": \#(slow.id)}"# + "\r\n")
            let next = c.readCommand()
            c.send(#"{"return": {"fresh": true}, "id": \#(next.id)}"# + "\r\n")
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let start = ContinuousClock.now
        let error = await #expect(throws: QMPError.self) {
            try await client.execute("slow", timeout: .milliseconds(150))
        }
        // timedOut (not a reply) shows the deadline ended the call before the reply at 2 s.
        #expect(error?.code == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(10))
        try await Task.sleep(for: .milliseconds(2000))  // the late reply arrives now
        let fresh = try await client.execute("next")
        #expect(fresh["fresh"] == true)
        #expect(!client.isClosed)
    }

    @Test func framesSplitAtEveryByteAreReassembled() async throws {
        let peer = try FakeQMPPeer { c in
            for b in Array((#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}"# + "\r\n").utf8) {
                c.sendBytes([b])
                usleep(200)
            }
            c.replyNext()
            let cmd = c.readCommand()
            let reply = Array(#"{"timestamp": {"seconds": 5, "microseconds": 6}, "event": "STOP"}{"return": {"status": "paused", "running": false}, "id": \#(cmd.id)}"#.utf8)
            for b in reply {
                c.sendBytes([b])
                usleep(200)
            }
            c.waitForClose()
        }
        // Byte-at-a-time frames are slow on a loaded machine: deadlines generous, the point is reassembly.
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(30))
        #expect(client.greeting.version == "7.2.0")
        let events = client.events()
        let status = try await client.queryStatus(timeout: .seconds(30))
        #expect(status.status == "paused")
        var iterator = events.makeAsyncIterator()
        let event = try await iterator.next()
        #expect(event?.name == "STOP")
        #expect(event?.seconds == 5 && event?.microseconds == 6)
    }

    @Test func oversizedFrameClosesTheConnection() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            _ = c.readCommand()
            c.send(#"{"return": ""# + String(repeating: "A", count: 200_000))
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10), maxFrameSize: 64 * 1024)
        let error = await #expect(throws: QMPError.self) { try await client.execute("query-version") }
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.contains("larger than 65536 bytes") == true)
    }

    @Test func disconnectMidCallFailsEveryPendingCall() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            for _ in 0..<5 { _ = c.readCommand() }
            c.close()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let events = client.events()
        let failures = await withTaskGroup(of: QMPError?.self) { group in
            for i in 0..<5 {
                group.addTask {
                    do { try await client.execute("cmd\(i)"); return nil } catch { return error as? QMPError }
                }
            }
            return await group.reduce(into: [QMPError]()) { if let e = $1 { $0.append(e) } }
        }
        #expect(failures.count == 5)
        #expect(failures.allSatisfy { $0.code == .connectionClosed && $0.message.contains("QEMU closed the monitor connection") })
        let streamError = await #expect(throws: QMPError.self) { for try await _ in events {} }
        #expect(streamError?.code == .connectionClosed)
        // Calls after the disconnect fail at once with the same reason.
        let late = await #expect(throws: QMPError.self) { try await client.execute("after") }
        #expect(late?.code == .connectionClosed)
    }

    @Test func cancellingACallFailsItWithoutClosingTheConnection() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            _ = c.readCommand()  // never answered
            let next = c.readCommand()
            c.send(#"{"return": 1, "id": \#(next.id)}"# + "\r\n")
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let task = Task { try await client.execute("never", timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = await task.result
        guard case .failure(let error as QMPError) = result else { Issue.record("expected cancellation"); return }
        #expect(error.code == .cancelled)
        #expect(try await client.execute("next") == 1)
    }

    @Test func slowSubscriberLosesOldestEventsAndCountsThem() async throws {
        let peer = try FakeQMPPeer { c in
            c.greet()
            c.replyNext()
            c.replyNext()  // "ready": the client has subscribed
            for i in 0..<50 {
                c.send(#"{"timestamp": {"seconds": \#(i), "microseconds": 0}, "event": "E"}"# + "\r\n")
            }
            let cmd = c.readCommand()
            c.send(#"{"return": {}, "id": \#(cmd.id)}"# + "\r\n")
            c.waitForClose()
        }
        let client = try await QMPClient.connect(to: peer.socketPath, timeout: .seconds(10))
        let events = client.events(bufferSize: 10)
        try await client.execute("ready")
        try await client.execute("sync")  // every event arrived before this reply
        #expect(events.droppedCount == 40)
        var seen: [Int] = []
        client.close()
        for try await e in events { seen.append(e.seconds) }
        #expect(seen == Array(40..<50))
    }
}
