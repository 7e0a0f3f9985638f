import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// The test guest with its interactive shell on the console (TCG: Linux hangs under nested KVM).
func shellGuestVM(_ name: String, extra: String = "") -> String {
    """
    apiVersion: qemuctl/v1
    kind: VirtualMachine
    metadata: {name: \(name)}
    spec:
      machine: {type: q35, accel: tcg}
      memory: {size: 256MiB}
      boot:
        kernel: \(Fixtures.guestKernel)
        initrd: \(Fixtures.guestInitrd)
        cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check guest.shell=1
      serial: {log: true}
    \(extra)
    """
}

/// Waits until the VM's serial log shows the guest's shell prompt.
func waitForPrompt(_ w: Workspace, _ name: String, timeout: Duration = .seconds(90)) async throws {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    let log = "\(w.state)/\(name)/serial.log"
    while (try? String(contentsOfFile: log, encoding: .utf8))?.contains("guest# ") != true {
        if clock.now > end {
            throw FixtureError("no shell prompt in \(log) within \(timeout): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "no log")")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// `42` on a line of its own (the guest's answer, not the echo of the command typed).
func hasAnswer(_ text: String) -> Bool { text.contains("\r\n42\r\n") || text.contains("\n42\r\n") }

@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct ConsoleTests {
    @Test func roundTripThroughTheGuestShellOnAPseudoTerminalThenDetachWithCtrlBracket() async throws {
        let w = try Workspace("co1")
        defer { w.cleanUp() }
        let vms = try w.manifest("sh", shellGuestVM("sh"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")
        try await waitForPrompt(w, "sh")

        let console = try Spawned(["console", "sh"], environment: w.env, pty: true)
        try await console.waitFor("the attach hint") { out, _ in out.contains("Escape character is '^]'") }
        #expect(console.terminalIsRaw)  // keys go to the guest as typed
        let start = ContinuousClock.now
        console.write("echo $((6*7))\r")
        let seconds = try await console.waitFor("42 from the guest", timeout: .seconds(30)) { out, _ in hasAnswer(out) }
        let roundTrip = ContinuousClock.now - start
        print("console round trip (type a command, read its answer): \(roundTrip) (\(seconds) s polled)")

        console.write([0x1d])  // Ctrl-]
        let status = await console.waitForExit()
        #expect(status == 0)
        #expect(console.outputText.contains("Detached from sh; the VM keeps running."))
        #expect(!console.terminalIsRaw)  // the terminal is back as it was
        let run = try await QMPClient.withConnection(to: "\(w.state)/sh.sock") { try await $0.queryStatus().status }
        #expect(run == "running")

        // The log has the whole conversation, and a second attach works once the first detached.
        let log = try await w.qemuctl("console", "sh", "--log")
        #expect(log.status == 0)
        #expect(log.out.contains(Fixtures.guestReadyMarker))
        #expect(hasAnswer(log.out))
        let again = try Spawned(["console", "sh"], environment: w.env, pty: true)
        try await again.waitFor("the attach hint") { out, _ in out.contains("Escape character") }
        again.write("echo again-$((2+3))\r")
        try await again.waitFor("the second answer") { out, _ in out.contains("again-5\r\n") }
        // A signal restores the terminal too.
        kill(again.process.processIdentifier, SIGTERM)
        #expect(await again.waitForExit() == 128 + SIGTERM)
        #expect(!again.terminalIsRaw)
    }

    @Test func pipesWorkWithoutRawModeAndEndOfInputDetaches() async throws {
        let w = try Workspace("co2")
        defer { w.cleanUp() }
        let vms = try w.manifest("pp", shellGuestVM("pp"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")
        try await waitForPrompt(w, "pp")
        let console = try Spawned(["console", "pp"], environment: w.env, pty: false)
        try await console.waitFor("the attach hint") { _, err in err.contains("Escape character") }
        console.write("echo $((6*7))\n")
        try await console.waitFor("42 from the guest") { out, _ in hasAnswer(out) }
        console.closeInput()
        #expect(await console.waitForExit() == 0)
        #expect(console.errorText.contains("Detached from pp"))
        #expect(try await QMPClient.withConnection(to: "\(w.state)/pp.sock") { try await $0.queryStatus().status } == "running")
    }

    @Test func aSecondConsoleFailsAtOnceWithConsoleBusy() async throws {
        let w = try Workspace("co3")
        defer { w.cleanUp() }
        let vms = try w.manifest("b", bareVM("b"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let first = try Spawned(["console", "b"], environment: w.env, pty: false)
        try await first.waitFor("the first attach") { _, err in err.contains("Escape character") }
        let clock = ContinuousClock()
        let start = clock.now
        let second = try await w.qemuctl("console", "b")
        #expect(second.status == 1)
        #expect(second.err.contains("console busy"), "\(second.err)")
        #expect(clock.now - start < .seconds(10))
        first.write([0x1d])
        #expect(await first.waitForExit() == 0)

        // Another kind of client (here a bare socket) is seen in query-chardev.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array("\(w.state)/b/console.sock".utf8CString)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, c) in path.enumerated() { raw[i] = UInt8(bitPattern: c) }
        }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0)
        var busy = try await w.qemuctl("console", "b")
        for _ in 0..<50 where busy.status == 0 {  // QEMU accepts the bare client a moment later
            try await Task.sleep(for: .milliseconds(100))
            busy = try await w.qemuctl("console", "b")
        }
        #expect(busy.status == 1)
        #expect(busy.err.contains("console busy: another client is connected"), "\(busy.err)")

        // --log without a log: a clear error.
        let noLog = try await w.qemuctl("console", "b", "--log")
        #expect(noLog.status == 1)
        #expect(noLog.err.contains("spec.serial.log: true"))
    }
}

/// #19 item 8: `console NAME --log --follow` prints the serial log and keeps following it.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct ConsoleFollowTests {
    @Test func logFollowPrintsWhatTheGuestWritesNextAndEndsOnCtrlC() async throws {
        let w = try Workspace("cof")
        defer { w.cleanUp() }
        let vms = try w.manifest("sh", shellGuestVM("sh"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")
        try await waitForPrompt(w, "sh")
        let follow = try QemuctlBinary.Background(["console", "sh", "--log", "--follow"], environment: w.env)
        defer { follow.kill() }
        // The log so far first …
        #expect(await follow.waitForLine { $0.contains(Fixtures.guestReadyMarker) } != nil, "\(follow.out)\(follow.err)")
        #expect(!follow.out.contains("follow-7"))
        // … then what the guest writes after, without running the command again.
        let console = try Spawned(["console", "sh"], environment: w.env, pty: true)
        try await console.waitFor("the attach hint") { out, _ in out.contains("Escape character") }
        console.write("echo follow-$((3+4))\r")
        // (The guest's lines end in CRLF; the echo of the command typed has `$((3+4))`, not `follow-7`.)
        let clock = ContinuousClock(), end = clock.now + .seconds(60)
        while !follow.out.contains("follow-7"), clock.now < end { try await Task.sleep(for: .milliseconds(50)) }
        #expect(follow.out.contains("follow-7\r\n"), "\(follow.out)\(follow.err)")
        console.write([0x1d])
        _ = await console.waitForExit()
        follow.send(SIGINT)
        #expect(await follow.exitStatus() == 0)
        // --follow alone is a usage error.
        let alone = try await w.qemuctl("console", "sh", "--follow")
        #expect(alone.status == 2 && alone.err.contains("give --log --follow"), "\(alone.err)")
    }
}
