import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Seconds since `start`.
func elapsed(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// The run status QEMU reports for VM `name` of workspace `w`.
func runStatus(_ w: Workspace, _ name: String) async throws -> String {
    // A generous deadline: what is checked is the state, not how fast a loaded machine answers.
    try await QMPClient.withConnection(to: "\(w.state)/\(name).sock", timeout: .seconds(20)) { try await $0.queryStatus().status }
}

@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct OperatorCommandTests {
    @Test func pauseResumeResetAndThePauseShowsAsDrift() async throws {
        let w = try Workspace("op1")
        defer { w.cleanUp() }
        let vms = try w.manifest("a", bareVM("a"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pause = try await w.qemuctl("pause", "a")
        #expect(pause.status == 0, "\(pause.err)")
        #expect(pause.out == "a: paused (QEMU reports paused)\n")
        #expect(try await runStatus(w, "a") == "paused")
        // The manifest says running: the imperative pause is drift.
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 1)
        #expect(diff.out.contains("spec.runState: paused -> running"), "\(diff.out)")
        #expect(diff.out.contains("drift"))
        let json = try await w.qemuctl("diff", "-f", vms, "-o", "json")
        #expect(json.status == 1)
        let change = try JSONValue(parsing: json.out)["vms"]?[0]?["changes"]?[0]
        #expect(change?["path"]?.stringValue == "spec.runState")
        #expect(change?["drift"]?.boolValue == true)
        let resume = try await w.qemuctl("resume", "a")
        #expect(resume.status == 0)
        #expect(resume.out == "a: resumed (QEMU reports running)\n")
        let reset = try await w.qemuctl("reset", "a")
        #expect(reset.status == 0)
        #expect(try await runStatus(w, "a") == "running")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
        // Each change is in the journal (events --since-start replays it).
        let journal = try String(contentsOfFile: "\(w.state)/a/journal.log", encoding: .utf8)
        #expect(journal.contains("paused by qemuctl pause"))
        #expect(journal.contains("resumed by qemuctl resume"))
        // Unknown names: status 8 and an error with a hint; usage errors: 2 in our format.
        let unknown = try await w.qemuctl("pause", "nope")
        #expect(unknown.status == 8)
        #expect(unknown.err.hasPrefix("qemuctl: error: no VM named nope in \(w.state)\nhint: "))
        let usage = try await w.qemuctl("pause")
        #expect(usage.status == 2)
        #expect(usage.err.hasPrefix("qemuctl: error: Missing expected argument"))
        #expect(usage.err.contains("hint: see `qemuctl pause --help`"))
    }

    @Test func qmpPrintsJSONAndExitsByQEMUsErrorClass() async throws {
        let w = try Workspace("op2")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("q", bareVM("q"))).status == 0)
        let status = try await w.qemuctl("qmp", "q", "query-status")
        #expect(status.status == 0, "\(status.err)")
        let reply = try JSONValue(parsing: status.out)
        #expect(reply["status"]?.stringValue == "running")
        #expect(reply["running"]?.boolValue == true)
        // Arguments as a JSON object; --compact prints one line.
        let name = try await w.qemuctl("qmp", "q", "qom-get", #"{"path": "/machine", "property": "smm"}"#, "--compact")
        #expect(name.status == 0, "\(name.err)")
        #expect(name.out == "\"auto\"\n")
        // Error classes: stdout has QEMU's error object, stderr the error and a hint.
        let notFound = try await w.qemuctl("qmp", "q", "query-nothing")
        #expect(notFound.status == 3)
        #expect(try JSONValue(parsing: notFound.out)["error"]?["class"]?.stringValue == "CommandNotFound")
        #expect(notFound.err.contains("qemuctl: error: QMP command 'query-nothing' failed (CommandNotFound)"))
        #expect(notFound.err.contains("hint: `qemuctl qmp q query-commands`"))
        let noDevice = try await w.qemuctl("qmp", "q", "device_del", #"{"id": "nope"}"#)
        #expect(noDevice.status == 4)
        #expect(try JSONValue(parsing: noDevice.out)["error"]?["class"]?.stringValue == "DeviceNotFound")
        let generic = try await w.qemuctl("qmp", "q", "human-monitor-command", "{}")
        #expect(generic.status == 1)
        #expect(try JSONValue(parsing: generic.out)["error"]?["class"]?.stringValue == "GenericError")
        // JSON-ARGS must be an object; nothing is sent otherwise.
        let array = try await w.qemuctl("qmp", "q", "stop", "[1]")
        #expect(array.status == 2)
        #expect(array.err.contains("JSON-ARGS must be a JSON object"))
        #expect(array.out.isEmpty)
        let garbage = try await w.qemuctl("qmp", "q", "stop", "{oops")
        #expect(garbage.status == 2)
        #expect(garbage.err.contains("JSON-ARGS is not valid JSON"))
        #expect(try await runStatus(w, "q") == "running")
        let missing = try await w.qemuctl("qmp", "gone", "query-status")
        #expect(missing.status == 8)
    }

    @Test func hmpPrintsTextOrJSON() async throws {
        let w = try Workspace("op3")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("h", bareVM("h"))).status == 0)
        let text = try await w.qemuctl("hmp", "h", "info", "status")
        #expect(text.status == 0, "\(text.err)")
        #expect(text.out == "VM status: running\n")
        let quoted = try await w.qemuctl("hmp", "h", "info name")
        #expect(quoted.out == "h\n")
        let json = try await w.qemuctl("hmp", "h", "-o", "json", "info", "status")
        #expect(json.status == 0)
        #expect(try JSONValue(parsing: json.out)["output"]?.stringValue == "VM status: running\n")
        let unknown = try await w.qemuctl("hmp", "h", "frobnicate")
        #expect(unknown.status == 3)
        #expect(unknown.err.contains("qemuctl: error: HMP does not know 'frobnicate'"))
    }

    @Test func stopByQuitWhenNothingReactsThenStartFromTheRecordAndForce() async throws {
        let w = try Workspace("op4")
        defer { w.cleanUp() }
        let vms = try w.manifest("s", bareVM("s"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let first = try #require(w.pid("s"))
        // No guest answers the power button: the ladder waits --timeout, then quit ends it.
        let t0 = ContinuousClock.now
        let stop = try await w.qemuctl("stop", "s", "--stop-timeout", "1")
        let took = elapsed(since: t0)
        #expect(stop.status == 0, "\(stop.err)")
        #expect(stop.out.hasPrefix("s: stopped by quit after "), "\(stop.out)")
        // Over a second: seconds with one decimal ("1.0 s"), the time the ladder took.
        let shown = stop.out.firstMatch(of: /after (\d+)\.(\d) s/).map { Double("\($0.1).\($0.2)")! }
        #expect(shown.map { $0 >= 1 && $0 <= took + 0.1 } == true, "\(stop.out)")
        #expect(took >= 1 && took < 10, "stop took \(took) s")
        #expect(await processExits(first))
        #expect(try await w.qemuctl("stop", "s").out == "s: not running\n")
        // The manifest still says running: diff wants to relaunch it.
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 1)
        #expect(diff.out.contains("+ s: create (not running; relaunched with its recorded uuid)"), "\(diff.out)")
        // start relaunches from the record, with the same uuid.
        let uuid = try String(contentsOfFile: "\(w.state)/s/record.json", encoding: .utf8)
        let start = try await w.qemuctl("start", "s")
        #expect(start.status == 0, "\(start.err)")
        #expect(start.out.hasPrefix("s: started\n"))
        let second = try #require(w.pid("s"))
        #expect(second != first)
        #expect(try await runStatus(w, "s") == "running")
        let record = try String(contentsOfFile: "\(w.state)/s/record.json", encoding: .utf8)
        let uuidLine = { (s: String) in s.split(separator: "\n").first { $0.contains("\"uuid\"") } }
        #expect(uuidLine(record) == uuidLine(uuid))
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
        let again = try await w.qemuctl("start", "s")
        #expect(again.status == 0)
        #expect(again.out == "s: already running (pid \(second))\n")
        // A paused VM cannot react to the button: its ladder starts at quit.
        let pause = try await w.qemuctl("pause", "s")
        #expect(pause.status == 0, "\(pause.out)\(pause.err)")
        let paused = try await w.qemuctl("stop", "s", "--stop-timeout", "30")
        #expect(paused.out.hasPrefix("s: stopped by quit after "), "\(paused.out)")
        #expect(try await w.qemuctl("start", "s").status == 0)
        let third = try #require(w.pid("s"))
        let force = try await w.qemuctl("stop", "--force", "s")
        #expect(force.status == 0)
        #expect(force.out.hasPrefix("s: stopped by SIGKILL after "), "\(force.out)")
        #expect(await processExits(third))
        // start needs a launch record.
        let unmanaged = try await w.qemuctl("start", "nothing")
        #expect(unmanaged.status == 8)
    }

    @Test func stopByThePowerButtonWithTheGuest() async throws {
        let w = try Workspace("op5")
        defer { w.cleanUp() }
        let vms = try w.manifest("g", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: g}
            spec:
              machine: {type: q35, accel: tcg}
              memory: {size: 256MiB}
              boot:
                kernel: \(Fixtures.guestKernel)
                initrd: \(Fixtures.guestInitrd)
                cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check
              serial: {log: true}
            """)
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        let log = "\(w.state)/g/serial.log"
        let clock = ContinuousClock()
        let boot = clock.now
        while !((try? String(contentsOfFile: log, encoding: .utf8))?.contains(Fixtures.guestReadyMarker) ?? false) {
            #expect(elapsed(since: boot) < 90, "the guest did not boot")
            if elapsed(since: boot) >= 90 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let pid = try #require(w.pid("g"))
        let t0 = clock.now
        let stop = try await w.qemuctl("stop", "g", "--stop-timeout", "30")
        let took = elapsed(since: t0)
        #expect(stop.status == 0, "\(stop.err)")
        #expect(stop.out.hasPrefix("g: stopped by powerdown after "), "\(stop.out)")
        #expect(took < 30)
        #expect(await processExits(pid))
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains(Fixtures.guestPoweroffMarker))
    }

    @Test func aClientHoldingTheControlSocketMakesCommandsFailAsBusyNotHang() async throws {
        let w = try Workspace("op6")
        defer { w.cleanUp() }
        let vms = try w.manifest("b", bareVM("b"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // The user's own QMP client, connected and held open.
        let user = try await QMPClient.connect(to: "\(w.state)/b.sock")
        let t0 = ContinuousClock.now
        let pause = try await w.qemuctl("pause", "b", "--timeout", "1")
        let took = elapsed(since: t0)
        #expect(pause.status == 7)
        #expect(pause.err.hasPrefix("qemuctl: error: monitor busy (another client holds \(w.state)/b.sock): no answer within 1 s\nhint: "), "\(pause.err)")
        #expect(took < 5, "pause took \(took) s with --timeout 1")
        let qmp = try await w.qemuctl("qmp", "b", "query-status", "--timeout", "1")
        #expect(qmp.status == 7)
        #expect(qmp.err.contains("monitor busy"))
        // stop --force needs no monitor.
        // The user's client still works, and once it lets go, so do ours.
        #expect(try await user.queryStatus().status == "running")
        user.close()
        let after = try await w.qemuctl("pause", "b")
        #expect(after.status == 0, "\(after.err)")
        #expect(try await w.qemuctl("resume", "b").status == 0)
    }

    @Test func stopEndsAQEMUThatAnswersNobodyWithSignalsButNotOneThatIsBusy() async throws {
        let w = try Workspace("op7")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("h", bareVM("h"))).status == 0)
        let pid = try #require(w.pid("h"))
        // A client holds the monitor: stop refuses (the guest would lose its clean shutdown).
        let user = try await QMPClient.connect(to: "\(w.state)/h.sock")
        let busy = try await w.qemuctl("stop", "h", "--timeout", "1")
        #expect(busy.status == 7)
        #expect(busy.err.contains("monitor busy"))
        #expect(busy.err.contains("stop --force h"))
        #expect(kill(pid, 0) == 0)
        user.close()
        // A stopped QEMU answers nobody: the ladder goes on with SIGTERM (pending while
        // stopped), then SIGKILL, each after --monitor-timeout.
        kill(pid, SIGSTOP)
        for _ in 0..<500 {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            if stat.split(separator: ")").last?.split(separator: " ").first == "T" { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let t0 = ContinuousClock.now
        let stop = try await w.qemuctl("stop", "h", "--timeout", "1")
        let took = elapsed(since: t0)
        #expect(stop.status == 0, "\(stop.err)")
        #expect(stop.out.hasPrefix("h: stopped by SIGKILL after "), "\(stop.out)")
        #expect(stop.err.contains("is stopped (SIGSTOP or a debugger)"))
        #expect(took >= 2 && took < 10, "stop took \(took) s")
        #expect(await processExits(pid))
    }

    @Test func completionScriptsAndManualPage() async throws {
        let bash = try await QemuctlBinary.run(["--generate-completion-script", "bash"])
        #expect(bash.status == 0)
        #expect(bash.out.contains("qemuctl"))
        let dir = try TempDir("comp")
        defer { dir.remove() }
        try bash.out.write(toFile: dir.file("qemuctl.bash"), atomically: true, encoding: .utf8)
        let check = try await QemuctlBinary.run(["-n", dir.file("qemuctl.bash")], executable: "/bin/bash")
        #expect(check.status == 0, "\(check.err)")
        for shell in ["zsh", "fish"] {
            let script = try await QemuctlBinary.run(["--generate-completion-script", shell])
            #expect(script.status == 0)
            #expect(script.out.count > 500)
        }
        // The manual page: every command has a section, and groff renders it without a warning.
        let man = try await QemuctlBinary.run(["__man"])
        #expect(man.status == 0)
        for command in ["apply", "diff", "plan", "get", "describe", "delete", "validate", "schema", "start", "stop",
                        "pause", "resume", "reset", "qmp", "hmp", "events"] {
            #expect(man.out.contains("\n.SS \(command)\n"), "no section for \(command)")
        }
        #expect(!man.out.contains(".SS __man"))
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"] {
            #expect(man.out.contains("\n.SH \(section)\n"), "no \(section) section")
        }
        #expect(man.out.contains("\n.SS version\n") && man.out.contains("\n.SS completion\n"))
        #expect(man.out.contains("QEMUCTL_STATE_DIR"))
        // Text beyond ASCII is written as roff's \[uXXXX] (the help's "…"), none of it raw.
        #expect(man.out.contains("\\[u2026]"))
        #expect(man.out.unicodeScalars.allSatisfy { $0.isASCII })
        try man.out.write(toFile: dir.file("qemuctl.1"), atomically: true, encoding: .utf8)
        let groff = try await QemuctlBinary.run(["-man", "-Tutf8", "-ww", "-z", dir.file("qemuctl.1")], executable: "/usr/bin/groff")
        #expect(groff.status == 0)
        #expect(groff.err.isEmpty, "\(groff.err)")
        // VM names complete from the state directory: VMs with a readable record (web-1, running),
        // not a half-created one (an unreadable record) nor a bare socket (#19 item 7).
        let w = try Workspace("comp")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("web-1", bareVM("web-1"))).status == 0)
        try FileManager.default.createDirectory(atPath: "\(w.state)/half", withIntermediateDirectories: true)
        try "{}".write(toFile: "\(w.state)/half/record.json", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: "\(w.state)/db.sock", contents: nil)
        // What the bash script runs on TAB after `qemuctl VERB ` (words, cursor word, cursor offset).
        // -f completes manifest files and directories (bash: YAML files plus directories).
        let script = try await w.qemuctl("completion", "bash")
        #expect(script.out.components(separatedBy: "-o plusdirs -fX '!*.@(yaml|yml)'").count - 1 >= 7, "apply, plan, diff, validate, delete, controller, export")
        for verb in ["pause", "get", "console", "vnc", "spice", "delete", "start", "stop", "events"] {
            let candidates = try await w.qemuctl("---completion", verb, "--", "positional@0", "2", "0", "qemuctl", verb, "")
            #expect(candidates.out.split(separator: "\n").map(String.init) == ["web-1"], "\(verb): \(candidates.out)\(candidates.err)")
        }
        // --state-dir on the line being completed wins over the environment; the prefix filters.
        let other = try await QemuctlBinary.run(["---completion", "stop", "--", "positional@0", "4", "1", "qemuctl", "stop",
                                                 "--state-dir", w.state, "w"])
        #expect(other.out == "web-1\n", "\(other.out)\(other.err)")
    }
}
