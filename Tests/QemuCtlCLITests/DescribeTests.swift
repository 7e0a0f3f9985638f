import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `describe` is the whole VM as one object (the same model as text, JSON and YAML), with conditions,
/// how to reach the VM, and why its QEMU stopped; `get` gives that reason in a few words.
@Suite(.timeLimit(.minutes(3)), .offPool) struct DescribeTests {
    /// A VM with a throttled disk, a user NIC with an ssh forward and a VNC display.
    static func reachableVM(_ w: Workspace, _ name: String, ssh: Int, web: Int) -> String {
        bareVM(name, extra: """
              disks:
                - name: data
                  file: {path: \(w.dir.file("\(name).raw")), format: raw}
                  create: {size: 1MiB}
                  throttle: {bps: 20MiB, iops: 150}
              networks:
                - name: n0
                  user: {hostfwd: ["tcp:127.0.0.1:\(ssh)-:22", "tcp::\(web)-:80"]}
              display:
                vnc: {listen: "127.0.0.1:77"}
            """)
    }

    /// YAML parsed by PyYAML and printed back as JSON (an independent reader).
    static func yamlAsJSON(_ yaml: String) throws -> Any {
        let dir = try TempDir("dyaml")
        defer { dir.remove() }
        try yaml.write(toFile: dir.file("d.yaml"), atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", dir.file("d.yaml")]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "PyYAML could not read describe -o yaml")
        return try JSONSerialization.jsonObject(with: data)
    }

    static func condition(_ object: [String: Any], _ type: String) -> [String: Any]? {
        (object["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == type }
    }

    @Test func describeIsOneObjectInJSONAndYAMLAndTheTextSaysHowToReachTheVM() async throws {
        let w = try Workspace("desc1")
        defer { w.cleanUp() }
        let ssh = Int.random(in: 30000..<45000), web = Int.random(in: 45000..<60000)
        let vms = try w.manifest("r", Self.reachableVM(w, "r", ssh: ssh, web: web))
        let applied = try await w.qemuctl("apply", "-f", vms)
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        let pid = try #require(w.pid("r"))

        let json = try await w.qemuctl("describe", "r", "-o", "json")
        #expect(json.status == 0, "\(json.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        #expect(object["name"] as? String == "r")
        let status = try #require(object["status"] as? [String: Any])
        #expect(status["state"] as? String == "running")
        #expect(status["runStatus"] as? String == "running")
        #expect(status["accelerator"] as? String == "tcg")
        #expect(status["pid"] as? Int == Int(pid))
        #expect(status["monitor"] as? String == "answering")
        let argv = try #require(status["commandLine"] as? [String])
        #expect(argv.first?.hasSuffix("qemu-system-x86_64") == true, "\(argv)")
        #expect(argv.contains("-uuid"))
        #expect((object["cpus"] as? [String: Any])?["count"] as? Int == 1)
        #expect((object["memory"] as? [String: Any])?["size"] as? String == "64MiB")
        let disk = try #require((object["disks"] as? [[String: Any]])?.first)
        #expect(disk["name"] as? String == "data")
        #expect(disk["fileSize"] as? String == "1MiB")
        let throttle = try #require(disk["throttle"] as? [String: Any])
        #expect(throttle["bps"] as? String == "20MiB", "\(throttle)")
        #expect(throttle["iops"] as? Int == 150)
        #expect(disk["throttleSource"] as? String == "qmp")
        let nic = try #require((object["networks"] as? [[String: Any]])?.first)
        #expect((nic["mac"] as? String)?.hasPrefix("52:54:") == true)
        #expect(nic["link"] as? String == "up")
        let forwards = try #require(nic["portForwards"] as? [[String: Any]])
        #expect(forwards.first?["hostPort"] as? Int == ssh)
        #expect(forwards.first?["guestPort"] as? Int == 22)
        #expect(forwards.first?["hint"] as? String == "ssh -p \(ssh) localhost")
        let vnc = try #require((object["display"] as? [String: Any])?["vnc"] as? [String: Any])
        #expect(vnc["endpoint"] as? String == "127.0.0.1:5977")
        #expect(vnc["connect"] as? String == "qemuctl vnc r")
        #expect(Self.condition(object, "Ready")?["status"] as? String == "True")
        #expect(Self.condition(object, "Paused")?["status"] as? String == "False")
        #expect(Self.condition(object, "Failed")?["status"] as? String == "False")
        #expect(Self.condition(object, "RestartPending")?["status"] as? String == "False")
        #expect((object["restart"] as? [String: Any])?["policy"] as? String == "never")
        // Keys kept with null, not left out: one shape whatever is known.
        #expect(object.keys.contains("lastExit") && object["lastExit"] is NSNull)
        #expect((object["spec"] as? [String: Any])?["runState"] as? String == "running")

        // YAML: the same object, key for key (uptime may tick between the two runs).
        let yaml = try await w.qemuctl("describe", "r", "-o", "yaml")
        #expect(yaml.status == 0, "\(yaml.err)")
        var fromYAML = try #require(try Self.yamlAsJSON(yaml.out) as? [String: Any])
        var fromJSON = object
        var sy = fromYAML["status"] as? [String: Any] ?? [:], sj = fromJSON["status"] as? [String: Any] ?? [:]
        sy["uptimeSeconds"] = nil
        sj["uptimeSeconds"] = nil
        fromYAML["status"] = sy
        fromJSON["status"] = sj
        let canonical = { (o: [String: Any]) in
            String(decoding: (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        }
        #expect(canonical(fromYAML) == canonical(fromJSON), "\(canonical(fromYAML))\n\(canonical(fromJSON))")

        // Text: the same facts and how to reach the VM.
        let text = try await w.qemuctl("describe", "r")
        #expect(text.status == 0)
        let explicit = try await w.qemuctl("describe", "r", "-o", "text")
        #expect(explicit.status == 0 && explicit.out.contains("State: running"), "\(explicit.err)")
        // -o is the shared text|json|yaml; table, describe's old name for text, still works.
        let table = try await w.qemuctl("describe", "r", "-o", "table")
        #expect(table.status == 0 && table.out.contains("State: running"), "\(table.err)")
        let wrong = try await w.qemuctl("describe", "r", "-o", "wide")
        #expect(wrong.status == 2 && wrong.err.contains("not one of text, json or yaml"), "\(wrong.err)")
        for needle in ["State: running", "PID: \(pid)", "ssh -p \(ssh) localhost", "tcp localhost:\(web) reaches the guest's port 80",
                       "VNC 127.0.0.1:5977 — or `qemuctl vnc r`", "`qemuctl console r`", "throttle bps=20MiB iops=150",
                       "Ready           True", "QEMU command line:"] {
            #expect(text.out.contains(needle), "no '\(needle)' in:\n\(text.out)")
        }
    }

    @Test func pausedConditionSaysByWhom() async throws {
        let w = try Workspace("desc2")
        defer { w.cleanUp() }
        let vms = try w.manifest("p", bareVM("p"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        #expect(try await w.qemuctl("pause", "p").status == 0)
        var object = try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "p", "-o", "json").out.utf8)) as? [String: Any] ?? [:]
        var paused = Self.condition(object, "Paused")
        #expect(paused?["status"] as? String == "True")
        #expect(paused?["reason"] as? String == "PausedByUser", "\(paused ?? [:])")
        #expect(paused?["lastTransitionTime"] is String)
        #expect(Self.condition(object, "Ready")?["status"] as? String == "False")
        #expect(Self.condition(object, "Ready")?["reason"] as? String == "Paused")

        // A QMP stop from another client: paused, not by qemuctl.
        #expect(try await w.qemuctl("resume", "p").status == 0)
        try await QMPClient.withConnection(to: "\(w.state)/p.sock", timeout: .seconds(20)) { _ = try await $0.execute("stop") }
        object = try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "p", "-o", "json").out.utf8)) as? [String: Any] ?? [:]
        paused = Self.condition(object, "Paused")
        #expect(paused?["status"] as? String == "True")
        #expect(paused?["reason"] as? String == "PausedByClient", "\(paused ?? [:])")

        // Launched paused: prelaunch, said as paused at launch.
        let held = try w.manifest("h", bareVM("h", runState: "paused"))
        #expect(try await w.qemuctl("apply", "-f", held).status == 0)
        let text = try await w.qemuctl("describe", "h")
        #expect(text.out.contains("Paused          True"), "\(text.out)")
        #expect(text.out.contains("PausedAtLaunch") || text.out.contains("PausedBySpec"), "\(text.out)")
    }

    @Test func aQEMUKilledBySIGABRTSaysSoInGetAndDescribe() async throws {
        let w = try Workspace("desc3")
        defer { w.cleanUp() }
        let vms = try w.manifest("k", bareVM("k"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("k"))
        // QEMU's parent is its keeper: named so in ps, and deaf to the signals a group gets.
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let afterName = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        let keeper = try #require(Int32(afterName[1]))
        let title = try String(contentsOfFile: "/proc/\(keeper)/cmdline", encoding: .utf8)
        #expect(title.hasPrefix("qemuctl-keeper pid=\(pid)"), "\(title)")
        kill(keeper, SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        #expect(kill(keeper, 0) == 0 && kill(pid, 0) == 0, "SIGTERM ended the keeper or QEMU")
        // Something for the log's tail, written over QMP before the abort.
        _ = try? await QMPClient.withConnection(to: "\(w.state)/k.sock", timeout: .seconds(20)) {
            try await $0.execute("human-monitor-command", arguments: ["command-line": "info nothing-such"])
        }
        kill(pid, SIGABRT)
        var gone = false
        for _ in 0..<200 where !gone {
            gone = (try? String(contentsOfFile: "\(w.state)/k/qemu.log", encoding: .utf8))?.contains("signal=6") == true
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "the keeper wrote no exit line")

        let get = try await w.qemuctl("get")
        #expect(get.out.contains("not running (killed by SIGABRT)"), "\(get.out)")
        let getJSON = try await w.qemuctl("get", "-o", "json")
        let row = try #require((try JSONSerialization.jsonObject(with: Data(getJSON.out.utf8)) as? [[String: Any]])?.first)
        #expect(row["state"] as? String == "not running")
        #expect((row["detail"] as? String)?.contains("QEMU was killed by SIGABRT") == true, "\(row)")
        #expect(Set(row.keys) == ["name", "state", "ready", "accelerator", "cpus", "memory", "uptimeSeconds", "restarts", "restartPending", "detail", "ip", "os"])

        let text = try await w.qemuctl("describe", "k")
        #expect(text.out.contains("Reason: QEMU was killed by SIGABRT"), "\(text.out)")
        #expect(text.out.contains("QEMU log: \(w.state)/k/qemu.log"), "\(text.out)")
        #expect(!text.out.contains("qemuctl-keeper:"), "the keeper's line is summarised, not shown raw")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "k", "-o", "json").out.utf8)) as? [String: Any])
        let exit = try #require(object["lastExit"] as? [String: Any])
        #expect(exit["signal"] as? String == "SIGABRT")
        #expect(exit["exitStatus"] is NSNull)
        #expect(exit["log"] as? String == "\(w.state)/k/qemu.log")
        let failed = Self.condition(object, "Failed")
        #expect(failed?["status"] as? String == "True")
        #expect(failed?["reason"] as? String == "Killed")
        #expect(failed?["lastTransitionTime"] is String)
        #expect(Self.condition(object, "Ready")?["status"] as? String == "False")

        // apply launches it again (emptying qemu.log): the record keeps how the last QEMU ended.
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let again = try await w.qemuctl("describe", "k")
        #expect(again.out.contains("lastExit: QEMU was killed by SIGABRT"), "\(again.out)")
        #expect(again.out.contains("State: running"), "\(again.out)")
    }

    @Test func aGuestPoweroffSeenByTheControllerIsTheGuestsShutdown() async throws {
        let w = try Workspace("desc4")
        defer { w.cleanUp() }
        try w.manifest("g", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: g}
            spec:
              restartPolicy: never
              machine: {type: q35, accel: tcg}
              memory: {size: 128MiB}
              boot:
                kernel: \(Fixtures.guestKernel)
                initrd: \(Fixtures.guestInitrd)
                cmdline: "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check guest.poweroff=1"
            """)
        let ctl = try QemuctlBinary.Background(["controller", "-f", w.dir.file("vms"), "--resync", "2"], environment: w.env)
        defer { ctl.kill() }
        #expect(await ctl.waitForLine(timeout: .seconds(150)) { $0.contains("  g  exited") && $0.contains("left down") } != nil,
                "\(ctl.out)\(ctl.err)")
        // The record takes the exit at the end of the controller's pass: look for a few seconds.
        var object: [String: Any] = [:]
        for _ in 0..<50 {
            object = try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "g", "-o", "json").out.utf8)) as? [String: Any] ?? [:]
            if (object["lastExit"] as? [String: Any])?["byGuest"] as? Bool == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let exit = try #require(object["lastExit"] as? [String: Any], "\(object)")
        #expect(exit["byGuest"] as? Bool == true, "\(exit)")
        #expect((exit["shutdownReason"] as? String)?.contains("guest-shutdown") == true, "\(exit)")
        #expect(exit["exitStatus"] as? Int == 0)
        #expect(Self.condition(object, "Failed")?["status"] as? String == "False")
        #expect(Self.condition(object, "Failed")?["reason"] as? String == "GuestShutdown")
        let get = try await w.qemuctl("get")
        #expect(get.out.contains("not running (guest powered off)"), "\(get.out)")
        let text = try await w.qemuctl("describe", "g")
        #expect(text.out.contains("the guest powered off (SHUTDOWN guest-shutdown"), "\(text.out)")
        ctl.send(SIGTERM)
        #expect(await ctl.exitStatus(timeout: .seconds(15)) == 0)
    }

    @Test func aHeldMonitorIsBusyNotUnresponsive() async throws {
        let w = try Workspace("desc5")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("b", bareVM("b"))).status == 0)
        let other = try await QMPClient.connect(to: "\(w.state)/b.sock", timeout: .seconds(20))
        defer { other.close() }
        let text = try await w.qemuctl("describe", "b", "--timeout", "1")
        #expect(text.status == 0, "\(text.err)")
        #expect(text.out.contains("State: busy"), "\(text.out)")
        #expect(text.out.contains("Monitor: monitor busy (held by another client)"), "\(text.out)")
        #expect(!(text.out + text.err).contains("unresponsive"), "\(text.out)\(text.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "b", "--timeout", "1", "-o", "json").out.utf8)) as? [String: Any])
        #expect(Self.condition(object, "Ready")?["reason"] as? String == "MonitorBusy")
        #expect((object["status"] as? [String: Any])?["monitor"] as? String == "monitor busy (held by another client)")
    }

    /// A VM with `guestAgent: true` whose guest runs no agent: describe says so and does not hang.
    @Test func aSilentGuestAgentIsSaidSoWithoutHanging() async throws {
        let w = try Workspace("desc6")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("s", bareVM("s", extra: "  guestAgent: true"))).status == 0)
        let started = ContinuousClock.now
        let text = try await w.qemuctl("describe", "s")
        #expect(text.status == 0, "\(text.err)")
        #expect(ContinuousClock.now - started < .seconds(60), "describe waited on the agent")
        #expect(text.out.contains("Guest (agent):"), "\(text.out)")
        #expect(text.out.contains("the guest agent did not answer within"), "\(text.out)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "s", "-o", "json").out.utf8)) as? [String: Any])
        let agent = try #require(object["guestAgent"] as? [String: Any])
        #expect(agent["enabled"] as? Bool == true)
        #expect(agent["answered"] as? Bool == false)
        #expect(agent["detail"] is String)
        #expect(agent["os"] is NSNull)
    }

    /// A restart-class edit left pending: the RestartPending condition and `restart.pendingChanges` name it.
    @Test func aPendingRestartNamesItsFields() async throws {
        let w = try Workspace("desc7")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("q", bareVM("q"))).status == 0)
        let edited = try w.manifest("q", bareVM("q").replacingOccurrences(of: "64MiB", with: "96MiB"))
        let pending = try await w.qemuctl("apply", "-f", edited)
        #expect(pending.status == 3, "\(pending.out)\(pending.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "q", "-o", "json").out.utf8)) as? [String: Any])
        let condition = Self.condition(object, "RestartPending")
        #expect(condition?["status"] as? String == "True")
        #expect((condition?["message"] as? String)?.contains("spec.memory.size: 64MiB -> 96MiB") == true, "\(condition ?? [:])")
        let restart = try #require(object["restart"] as? [String: Any])
        #expect(restart["pending"] as? Bool == true)
        #expect(restart["pendingChanges"] as? [String] == ["spec.memory.size: 64MiB -> 96MiB"], "\(restart)")
        let text = try await w.qemuctl("describe", "q")
        #expect(text.out.contains("pending: spec.memory.size: 64MiB -> 96MiB"), "\(text.out)")
    }

    /// A QEMU that died while no controller ran: the controller started later reports the keeper's signal.
    @Test func aControllerStartedAfterADeathReportsItsSignal() async throws {
        let w = try Workspace("desc8")
        defer { w.cleanUp() }
        let vms = try w.manifest("n", bareVM("n", extra: "  restartPolicy: never"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("n"))
        kill(pid, SIGABRT)
        var gone = false
        for _ in 0..<200 where !gone {
            gone = (try? String(contentsOfFile: "\(w.state)/n/qemu.log", encoding: .utf8))?.contains("signal=6") == true
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        let ctl = try QemuctlBinary.Background(["controller", "-f", vms, "--resync", "2"], environment: w.env)
        defer { ctl.kill() }
        let line = await ctl.waitForLine(timeout: .seconds(60)) { $0.contains("  n  exited") }
        #expect(line?.contains("no follower saw QEMU go (killed or crashed: QEMU was killed by SIGABRT); left down") == true,
                "\(ctl.out)\(ctl.err)")
        ctl.send(SIGTERM)
        #expect(await ctl.exitStatus(timeout: .seconds(15)) == 0)
        let text = try await w.qemuctl("describe", "n")
        #expect(text.out.contains("lastExit: no follower saw QEMU go (killed or crashed: QEMU was killed by SIGABRT)"), "\(text.out)")
        #expect(text.out.contains("Reason: QEMU was killed by SIGABRT"), "\(text.out)")
    }
}
