import Foundation
@testable import QMP
import QemuCtlTestSupport
import Testing

/// The QMP client against a real `qemu-system-x86_64`.
@Suite(.timeLimit(.minutes(4)), .offPool) struct RealQEMUTests {
    @Test func greetsNegotiatesAndQueriesStatus() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        #expect(client.greeting.version.hasPrefix("7."))
        #expect(client.greeting.capabilities.contains("oob"))
        #expect(client.peerPID == qemu.pid)
        let status = try await client.queryStatus()
        #expect(status.status == "prelaunch")
        #expect(status.running == false)
        let version = try await client.execute("query-version")
        #expect(version["qemu"]?["major"]?.intValue == 7)
    }

    @Test func exchangeNegotiatesAndPipelinesABatchOnOneThread() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        // qmp_capabilities goes with the first batch: QEMU runs the commands after it in command mode.
        let t = QMPExchangeTests.converse(qemu.socketPath, [
            [("query-status", nil), ("query-version", nil), ("no-such-command", nil), ("query-block", nil)],
            [("query-name", nil)],
        ])
        #expect(t.error == nil)
        #expect(t.greeting?.version.hasPrefix("7.") == true)
        #expect(t.peer == qemu.pid)
        guard t.replies.count == 2, t.replies[0].count == 4 else {
            Issue.record("expected two batches of replies, got \(t.replies)")
            return
        }
        #expect(try QMPRunStatus(reply: t.replies[0][0].get()).status == "prelaunch")
        #expect(try t.replies[0][1].get()["qemu"]?["major"]?.intValue == 7)
        guard case .failure(let error) = t.replies[0][2] else {
            Issue.record("expected QEMU to refuse no-such-command, got \(t.replies[0][2])")
            return
        }
        #expect(error.errorClass == "CommandNotFound" && error.command == "no-such-command")
        #expect(try t.replies[0][3].get().arrayValue != nil)
        #expect(try t.replies[1][0].get().objectValue != nil)
        // The monitor is free again once the exchange hangs up.
        let client = try await QMPClient.connect(to: qemu.socketPath, timeout: .seconds(5))
        #expect(try await client.queryStatus().status == "prelaunch")
    }

    @Test func stopAndContEmitStopAndResumeEvents() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let events = client.events()
        try await client.cont()
        #expect(try await client.queryStatus().status == "running")
        try await client.stop()
        #expect(try await client.queryStatus().status == "paused")
        var names: [String] = []
        for try await e in events {
            names.append(e.name)
            if names.count == 2 { break }
        }
        #expect(names == ["RESUME", "STOP"])
    }

    @Test func commandErrorsCarryQEMUsClassAndMessage() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let error = await #expect(throws: QMPError.self) { try await client.execute("no-such-command") }
        #expect(error?.code == .commandFailed)
        #expect(error?.errorClass == "CommandNotFound")
        #expect(error?.description == "QMP command 'no-such-command' failed: The command no-such-command has not been found")
        let badArg = await #expect(throws: QMPError.self) {
            try await client.execute("block_set_io_throttle", arguments: ["id": "nope", "bps": 1, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 0, "iops_wr": 0])
        }
        #expect(badArg?.errorClass == "GenericError" || badArg?.errorClass == "DeviceNotFound")
        // The connection survives errors.
        #expect(try await client.queryStatus().status == "prelaunch")
    }

    @Test func hundredConcurrentCallsFromHundredTasks() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<100 {
                group.addTask {
                    // Alternate commands so a mismatched reply would be visible.
                    if i % 2 == 0 {
                        return (i, try await client.queryStatus().status)
                    } else {
                        return (i, try await client.execute("query-name")["name"]?.stringValue ?? "unnamed")
                    }
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 100)
        for (i, value) in results {
            #expect(value == (i % 2 == 0 ? "prelaunch" : "unnamed"))
        }
    }

    @Test func eventHandlerThatSendsACommandDoesNotDeadlock() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let events = client.events()
        let follower = Task {
            for try await e in events where e.name == "RESUME" {
                // A command from inside the event loop, answered by the same reader.
                return try await client.queryStatus().status
            }
            return "stream ended"
        }
        try await client.cont()
        #expect(try await follower.value == "running")
    }

    @Test func secondClientOnTheSameMonitorGetsATimelyBusyError() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let first = try await QMPClient.connect(to: qemu.socketPath)
        let start = ContinuousClock.now
        let error = await #expect(throws: QMPError.self) {
            _ = try await QMPClient.connect(to: qemu.socketPath, timeout: .milliseconds(500))
        }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("busy serving another client") == true)
        #expect(ContinuousClock.now - start < .seconds(8))
        first.close()
        // Once the first client leaves, a new one is served.
        let second = try await QMPClient.connect(to: qemu.socketPath, timeout: .seconds(5))
        #expect(try await second.queryStatus().status == "prelaunch")
    }

    @Test func stoppedQEMUIsReportedUnresponsiveWithinTheDeadline() async throws {
        let qemu = try QEMUProcess()
        defer {
            kill(qemu.pid, SIGCONT)
            qemu.kill()
        }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        kill(qemu.pid, SIGSTOP)
        let start = ContinuousClock.now
        let error = await #expect(throws: QMPError.self) { try await client.queryStatus(timeout: .milliseconds(300)) }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("unresponsive") == true)
        #expect(ContinuousClock.now - start < .seconds(3))  // the 300 ms deadline, with room for a loaded CI machine
        kill(qemu.pid, SIGCONT)
    }

    @Test func quitEndsTheConnectionAndQEMU() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let events = client.events()
        try await client.quit()
        #expect(await qemu.waitForExit(timeout: 10))
        var names: [String] = []
        let error = await #expect(throws: QMPError.self) { for try await e in events { names.append(e.name) } }
        #expect(names == ["SHUTDOWN"])
        #expect(error?.code == .connectionClosed)
        #expect(client.isClosed)
    }

    @Test func passesAVNCClientSocketWithSCMRights() async throws {
        let qemu = try QEMUProcess(args: ["-machine", "q35", "-accel", "tcg", "-m", "64", "-vnc", "none", "-vga", "std"])
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]) }
        try await client.sendFD(pair[1], name: "vnc-client")
        close(pair[1])
        try await client.addClient(protocol: "vnc", fdName: "vnc-client", skipAuth: true)
        // QEMU now speaks RFB on our end of the pair: it sends its version first.
        var buffer = [UInt8](repeating: 0, count: 12)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let n = buffer.withUnsafeMutableBytes { recv(pair[0], $0.baseAddress, 12, Int32(MSG_WAITALL)) }
        #expect(n == 12)
        #expect(String(decoding: buffer, as: UTF8.self) == "RFB 003.008\n")
        let servers = try await client.execute("query-vnc-servers")
        #expect(servers[0]?["clients"]?.arrayValue?.count == 1)
    }

    @Test func passingAClosedDescriptorIsRefusedBeforeSending() async throws {
        let qemu = try QEMUProcess()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let error = await #expect(throws: QMPError.self) { try await client.sendFD(987_654, name: "x") }
        #expect(error?.code == .invalidArgument)
    }

    @Test func bootsTheGuestAndPowersItOffOnTheACPIButton() async throws {
        let qemu = try QEMUProcess.guest()
        defer { qemu.kill() }
        let client = try await QMPClient.connect(to: qemu.socketPath)
        let events = client.events()
        // Seconds alone under TCG; the suite runs a dozen TCG guests at once on two cores, where 60 s
        // was not always enough (a full fresh-clone run saw the ready line not yet printed at 60 s).
        try await qemu.waitForSerial(Fixtures.guestReadyMarker, timeout: 150)
        #expect(try await client.queryStatus().status == "running")
        try await client.systemPowerdown()
        var sawShutdown: JSONValue? = nil
        do {
            for try await e in events where e.name == "SHUTDOWN" {
                sawShutdown = e.data
            }
        } catch let error as QMPError {
            #expect(error.code == .connectionClosed)
        }
        #expect(sawShutdown?["guest"] == true)  // the guest powered itself off
        #expect(await qemu.waitForExit(timeout: 20))
        #expect(qemu.serialText.contains(Fixtures.guestPoweroffMarker))
    }
}

/// Connect-time errors that must be clear and quick.
@Suite(.offPool) struct ConnectErrorTests {
    @Test func missingSocket() async {
        let error = await #expect(throws: QMPError.self) {
            _ = try await QMPClient.connect(to: "/tmp/qc-does-not-exist/qmp.sock", timeout: .seconds(1))
        }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("no QMP socket at /tmp/qc-does-not-exist/qmp.sock") == true)
    }

    @Test func pathLongerThanASocketAddressHolds() async {
        let path = "/tmp/" + String(repeating: "d", count: 120) + "/qmp.sock"
        let error = await #expect(throws: QMPError.self) { _ = try await QMPClient.connect(to: path) }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("at most 107") == true)
    }

    @Test func staleSocketNobodyListensOn() async throws {
        let dir = try TempDir("stale")
        defer { dir.remove() }
        let path = dir.file("qmp.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0)
        close(fd)  // bound, never listened: connect is refused
        let error = await #expect(throws: QMPError.self) { _ = try await QMPClient.connect(to: path) }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("nothing is listening") == true)
    }
}
