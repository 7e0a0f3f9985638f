import Foundation
import QMP
import QemuCtlTestSupport
import Synchronization
import Testing

/// The JSON lines of a background `qemuctl events --json`.
func jsonLines(_ p: QemuctlBinary.Background) -> [JSONValue] {
    p.lines.compactMap { try? JSONValue(parsing: $0) }
}

@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct EventsTests {
    @Test func followsStopAndResumeWhileOtherCommandsStayPrompt() async throws {
        let w = try Workspace("ev1")
        defer { w.cleanUp() }
        let vms = try w.manifest("e", bareVM("e"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let events = try QemuctlBinary.Background(["events", "--json"], environment: w.env)
        defer { events.kill() }
        let followed = await events.waitForLine { $0.contains("\"VM_FOLLOWED\"") }
        let line = try JSONValue(parsing: try #require(followed, "no VM_FOLLOWED line; stderr: \(events.err)"))
        #expect(line["vm"]?.stringValue == "e")
        #expect(line["source"]?.stringValue == "qemuctl")
        #expect(line["data"]?["monitor"]?.stringValue == "events.sock")
        #expect(line["data"]?["status"]?.stringValue == "running")
        // events holds only the follower monitor: commands on e.sock go straight through.
        var durations: [String: Double] = [:]
        for command in [["pause", "e"], ["resume", "e"], ["diff", "-f", vms], ["qmp", "e", "query-status"]] {
            let t0 = ContinuousClock.now
            let r = try await QemuctlBinary.run(command + ["--timeout", "5"], environment: w.env)
            durations[command[0]] = elapsed(since: t0)
            #expect(r.status == 0, "\(command): \(r.err)")
        }
        // Exit status 0 above is the proof that events did not hold e.sock (a held socket is exit 7,
        // "monitor busy", after the 5 s deadline); the bound only catches a hang on a loaded machine.
        for (command, seconds) in durations {
            #expect(seconds < 30, "\(command) took \(seconds) s while events ran (the deadline is 5 s; 17 s was seen at load 13)")
        }
        let stop = await events.waitForLine { $0.contains("\"STOP\"") }
        let resume = await events.waitForLine { $0.contains("\"RESUME\"") }
        #expect(stop != nil && resume != nil, "\(events.out)")
        let stopEvent = try JSONValue(parsing: try #require(stop))
        #expect(stopEvent["vm"]?.stringValue == "e")
        #expect(stopEvent["source"]?.stringValue == "qemu")
        #expect(stopEvent["time"]?.stringValue?.hasSuffix("Z") == true)
        let names = jsonLines(events).compactMap { $0["event"]?.stringValue }
        #expect(names.firstIndex(of: "STOP")! < names.firstIndex(of: "RESUME")!)
        // A user's own client on e.sock is not blocked by events either.
        let status = try await QMPClient.withConnection(to: "\(w.state)/e.sock", timeout: .seconds(5)) {
            try await $0.queryStatus().status
        }
        #expect(status == "running")
        // Ctrl-C ends it cleanly.
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
        #expect(events.err.isEmpty, "\(events.err)")
    }

    @Test func reportsVMsThatAppearAndGoInText() async throws {
        let w = try Workspace("ev2")
        defer { w.cleanUp() }
        try FileManager.default.createDirectory(atPath: w.state, withIntermediateDirectories: true)
        let events = try QemuctlBinary.Background(["events"], environment: w.env)
        defer { events.kill() }
        try await Task.sleep(for: .milliseconds(300))
        let vms = try w.manifest("late", bareVM("late"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let appeared = await events.waitForLine { $0.contains("VM_APPEARED") }
        let line = try #require(appeared, "\(events.out)\(events.err)")
        // time, VM, event, data: aligned columns, no colour when not on a terminal.
        let columns = line.split(separator: " ", omittingEmptySubsequences: true)
        #expect(columns.count >= 4)
        #expect(columns[0].hasSuffix("Z") && columns[0].contains("T"))
        #expect(columns[1] == "late")
        #expect(columns[2] == "VM_APPEARED")
        #expect(line.contains("\"monitor\":\"events.sock\""))
        #expect(!line.contains("\u{1B}["))
        #expect(try await w.qemuctl("stop", "late", "--stop-timeout", "1").status == 0)
        // The power button, then quit: QEMU's own events, then the exit.
        #expect(await events.waitForLine { $0.contains("POWERDOWN") } != nil, "\(events.out)")
        #expect(await events.waitForLine { $0.contains("SHUTDOWN") } != nil, "\(events.out)")
        let gone = await events.waitForLine { $0.contains("VM_GONE") }
        #expect(gone?.contains("QEMU exited") == true, "\(events.out)")
        // A relaunch of the same name is picked up again.
        #expect(try await w.qemuctl("start", "late").status == 0)
        let again = await events.waitForLine(timeout: .seconds(10)) { _ in
            events.lines.filter { $0.contains("VM_APPEARED") }.count == 2
        }
        #expect(again != nil, "\(events.out)")
        events.send(SIGTERM)
        #expect(await events.exitStatus() == 0)
    }

    @Test func endsWhenStandardOutputCloses() async throws {
        let w = try Workspace("ev3")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("o", bareVM("o"))).status == 0)
        let events = try QemuctlBinary.Background(["events", "o"], environment: w.env)
        defer { events.kill() }
        #expect(await events.waitForLine { $0.contains("VM_FOLLOWED") } != nil)
        // The reader goes away while nothing happens on the VM.
        events.closeStdout()
        #expect(await events.exitStatus(timeout: .seconds(5)) == 0)
        // The follower monitor is free again: a second events gets it.
        let second = try QemuctlBinary.Background(["events", "o"], environment: w.env)
        defer { second.kill() }
        #expect(await second.waitForLine { $0.contains("VM_FOLLOWED") } != nil, "\(second.err)")
        second.send(SIGINT)
        #expect(await second.exitStatus() == 0)
    }

    @Test func sinceStartReplaysTheRecordedLifecycle() async throws {
        let w = try Workspace("ev4")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("r", bareVM("r"))).status == 0)
        #expect(try await w.qemuctl("pause", "r").status == 0)
        #expect(try await w.qemuctl("resume", "r").status == 0)
        let events = try QemuctlBinary.Background(["events", "--json", "--since-start", "r"], environment: w.env)
        defer { events.kill() }
        #expect(await events.waitForLine { $0.contains("VM_FOLLOWED") } != nil, "\(events.err)")
        let lines = jsonLines(events)
        let kinds = lines.compactMap { $0["event"]?.stringValue }
        #expect(kinds.first == "VM_STARTED")
        #expect(kinds.last == "VM_FOLLOWED")
        let messages = lines.compactMap { $0["data"]?["message"]?.stringValue }
        #expect(messages.contains { $0.hasPrefix("started (pid \(w.pid("r") ?? 0)") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("paused by qemuctl pause") })
        #expect(messages.contains { $0.hasPrefix("resumed by qemuctl resume") })
        #expect(lines.dropLast().allSatisfy { $0["source"]?.stringValue == "journal" })
        #expect(lines.last?["data"]?["status"]?.stringValue == "running")
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
    }

    @Test func aVMWithoutAFollowerMonitorIsFollowedOnItsControlSocketWithAWarning() async throws {
        let w = try Workspace("ev5")
        defer { w.cleanUp() }
        try FileManager.default.createDirectory(atPath: w.state, withIntermediateDirectories: true)
        // Started by hand (as the seed library or an older qemuctl did): one monitor only,
        // reachable as STATE/old.sock.
        // (Started without blocking a thread of the cooperative pool, unlike QEMUProcess.)
        let socket = w.dir.file("old.qmp")
        let qemu = try await handStartedQEMU(["-machine", "q35", "-accel", "tcg", "-m", "64", "-name", "old",
                                              "-qmp", "unix:\(socket),server=on,wait=off"], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        try FileManager.default.createSymbolicLink(atPath: "\(w.state)/old.sock", withDestinationPath: socket)
        let events = try QemuctlBinary.Background(["events", "--json"], environment: w.env)
        defer { events.kill() }
        let followed = await events.waitForLine { $0.contains("VM_FOLLOWED") }
        #expect(try JSONValue(parsing: try #require(followed))["data"]?["monitor"]?.stringValue == "old.sock")
        #expect(events.err.contains("qemuctl: warning: VM old has no follower monitor"), "\(events.err)")
        #expect(events.err.contains("hint: "))
        // The documented price: while events holds old.sock, other clients of it wait.
        let busy = try await w.qemuctl("qmp", "old", "query-status", "--timeout", "1")
        #expect(busy.status == 7)
        #expect(busy.err.contains("monitor busy"), "\(busy.err)")
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
    }

    @Test func anAdoptedVMIsFollowedOnItsOwnSocketAndStoppedByItsAdoptedPID() async throws {
        let w = try Workspace("ev6")
        defer { w.cleanUp() }
        let socket = w.dir.file("adp.qmp")
        let qemu = try await handStartedQEMU(["-name", "guest=adp", "-machine", "q35", "-accel", "tcg", "-m", "64",
                                              "-qmp", "unix:\(socket),server=on,wait=off"], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        let adopted = try await w.qemuctl("import", "--pid", String(qemu.processIdentifier), "--adopt")
        #expect(adopted.status == 0, "\(adopted.err)")
        let events = try QemuctlBinary.Background(["events", "--json", "adp"], environment: w.env)
        defer { events.kill() }
        let followed = try JSONValue(parsing: try #require(await events.waitForLine { $0.contains("VM_FOLLOWED") }, "\(events.err)"))
        #expect(followed["data"]?["monitor"]?.stringValue == "adp.sock")
        #expect(followed["data"]?["pid"]?.intValue == Int(qemu.processIdentifier))
        #expect(events.err.contains("has no follower monitor"))
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
        #expect(try await w.qemuctl("start", "adp").out == "adp: already running (pid \(qemu.processIdentifier))\n")
        let stop = try await w.qemuctl("stop", "--force", "adp")
        #expect(stop.out.hasPrefix("adp: stopped by SIGKILL after "), "\(stop.out)\(stop.err)")
    }

    @Test func aFollowerMonitorNotCreatedYetIsWaitedForAndTheMainOneLeftAlone() async throws {
        let w = try Workspace("ev-early")
        defer { w.cleanUp() }
        let dir = w.state + "/vm"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mainPath = w.state + "/vm.sock", followerPath = dir + "/events.sock"
        // A stand-in for a QEMU a moment into its start: its command line names both monitors (as
        // qemuctl launches it), its pid file is written, and only the main monitor listens yet.
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: "/bin/sh")
        qemu.arguments = ["-c", "sleep 30", mainPath, followerPath]
        try qemu.run()
        defer { qemu.terminate() }
        try "\(qemu.processIdentifier)\n".write(toFile: dir + "/qemu.pid", atomically: true, encoding: .utf8)
        let mainTaken = Mutex(false)
        let main = try FakeQMPPeer(at: mainPath) { c in
            mainTaken.withLock { $0 = true }
            c.greet()
            c.waitForClose()
        }
        let events = try QemuctlBinary.Background(["events", "vm"], environment: w.env)
        defer { events.kill() }
        try await Task.sleep(for: .milliseconds(800))
        #expect(!mainTaken.withLock { $0 }, "events took the main monitor: \(events.out)\(events.err)")
        // The follower monitor appears: it is followed.
        let follower = try FakeQMPPeer(at: followerPath) { c in
            c.greet()
            while let command = c.readCommandIfAny() {
                let reply = command.name == "query-status" ? #"{"status": "running", "running": true}"# : "{}"
                c.send(#"{"return": \#(reply), "id": \#(command.id)}"# + "\r\n")
            }
        }
        let line = await events.waitForLine(timeout: .seconds(10)) { $0.contains("vm") && $0.contains("\"monitor\":\"events.sock\"") }
        #expect(line != nil, "\(events.out)\(events.err)")
        #expect(!mainTaken.withLock { $0 })
        _ = (main, follower)
    }
}
