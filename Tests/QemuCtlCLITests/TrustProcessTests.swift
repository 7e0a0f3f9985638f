import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// The process half of issue 14: names, monitor peers, signals. Run as root (CI does).
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct TrustProcessTests {
    /// A fake QMP monitor in Python: greets, answers every command plausibly, and appends
    /// every line it receives to LOG. Extra arguments (`-uuid U`) only decorate its argv.
    static let fakeMonitor = #"""
    import json, os, socket, sys
    path, log = sys.argv[1], sys.argv[2]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(8)
    open(log + ".ready", "w").close()
    def serve(c):
        c.sendall(b'{"QMP": {"version": {"qemu": {"major": 9, "minor": 0, "micro": 0}, "package": ""}, "capabilities": []}}\r\n')
        for line in c.makefile("rb"):
            with open(log, "a") as f:
                f.write(line.decode(errors="replace"))
            try:
                m = json.loads(line)
            except ValueError:
                continue
            ex, r = m.get("execute"), {}
            if ex == "query-status":
                r = {"status": "running", "running": True, "singlestep": False}
            elif ex in ("query-block", "query-pci", "query-cpus-fast", "query-chardev", "query-vnc-servers"):
                r = []
            elif ex == "query-memory-size-summary":
                r = {"base-memory": 67108864}
            c.sendall((json.dumps({"return": r, "id": m.get("id")}) + "\r\n").encode())
    while True:
        c, _ = srv.accept()
        try:
            serve(c)
        except OSError:
            pass  # a client that hung up early
        c.close()
    """#

    /// Starts the fake monitor at `socket`, logging to `log`, with `extra` in its argv.
    static func startFakeMonitor(_ w: Workspace, socket: String, log: String, extra: [String]) throws -> Process {
        let script = w.dir.file("fake-monitor.py")
        try fakeMonitor.write(toFile: script, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [script, socket, log] + extra
        try p.run()
        let end = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: log + ".ready") && Date() < end { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: log + ".ready") else { throw FixtureError("the fake monitor did not start") }
        return p
    }

    /// Reads, edits and writes back `state/NAME/record.json`.
    static func editRecord(_ w: Workspace, _ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = "\(w.state)/\(name)/record.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    /// Kills VM `name`'s QEMU and waits until it is gone; leaves its record.
    static func killQEMU(_ w: Workspace, _ name: String) throws {
        let pid = try #require(w.pid(name))
        kill(pid, SIGKILL)
        let end = Date().addingTimeInterval(10)
        while kill(pid, 0) == 0 && Date() < end { usleep(10_000) }
    }

    // MARK: - Names (item 3)

    static let badNameCommands: [[String]] = [
        ["delete", "../victim", "--force"], ["delete", "ok", "../victim"], ["describe", "../victim"],
        ["console", "../victim", "--log"], ["import", "../victim", "--adopt"], ["start", "../victim"],
        ["stop", "--force", "../victim"], ["pause", "../victim"], ["resume", ".."], ["reset", "a/b"],
        ["qmp", "../victim", "query-status"], ["hmp", "../victim", "info", "status"], ["vnc", "../victim"],
        ["spice", "../victim"], ["get", "../victim"], ["events", "../victim"], ["describe", "Upper"],
        ["describe", "lead-"], ["describe", ".hidden"],
    ]

    @Test(arguments: badNameCommands) func everyNameArgumentPassesTheManifestNameRule(_ args: [String]) async throws {
        let w = try Workspace("nm")
        defer { w.cleanUp() }
        // A directory outside the state directory that `STATE/../victim` would reach.
        let victim = w.dir.file("victim")
        try FileManager.default.createDirectory(atPath: victim + "/inner", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: w.state, withIntermediateDirectories: true)
        try "keep".write(toFile: victim + "/record.json", atomically: true, encoding: .utf8)
        let r = try await QemuctlBinary.run(args, environment: w.env, directory: w.dir.path)
        #expect(r.status == 2, "\(args): \(r.out)\(r.err)")
        #expect(r.err.contains("is not a VM name"), "\(args): \(r.err)")
        #expect(FileManager.default.fileExists(atPath: victim + "/record.json"))
        #expect(FileManager.default.fileExists(atPath: victim + "/inner"))
    }

    // MARK: - Peer proof (items 1 and 10)

    @Test func aFakeMonitorWithTheRecordedUUIDInItsArgvGetsNoSecretAndIsForeign() async throws {
        let w = try Workspace("fk")
        defer { w.cleanUp() }
        let secret = w.dir.file("vnc.pw")
        FileManager.default.createFile(atPath: secret, contents: Data("first-password".utf8), attributes: [.posixPermissions: 0o600])
        let vms = try w.manifest("web", bareVM("web", extra: "  display: {vnc: {listen: none, passwordFrom: {file: \(secret)}}}"))
        let first = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(first.status == 0, "\(first.out)\(first.err)")
        // The record names the QEMU it launched: pid, start time, executable.
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(w.state)/web/record.json"))) as? [String: Any]
        let process = try #require(record?["process"] as? [String: Any])
        #expect((process["executable"] as? String)?.contains("qemu-system") == true)
        #expect((process["startTime"] as? Int ?? 0) > 0)
        let uuid = try #require((record?["launch"] as? [String: Any])?["uuid"] as? String)
        // The QEMU goes; a look-alike takes its socket, with the uuid (and the socket path) in its argv.
        try Self.killQEMU(w, "web")
        try? FileManager.default.removeItem(atPath: "\(w.state)/web.sock")
        let log = w.dir.file("fake.log")
        let fake = try Self.startFakeMonitor(w, socket: "\(w.state)/web.sock", log: log,
                                             extra: ["-uuid", uuid, "-name", "web", "-qmp", "unix:\(w.state)/web.sock"])
        defer { kill(fake.processIdentifier, SIGKILL); fake.waitUntilExit() }  // SIGTERM may be blocked in children of the test runner
        // The pid file names the look-alike too, as a QEMU's would.
        try "\(fake.processIdentifier)\n".write(toFile: "\(w.state)/web/qemu.pid", atomically: true, encoding: .utf8)
        // A password change would be sent with set_password to a QEMU that is proven to be ours.
        FileManager.default.createFile(atPath: secret, contents: Data("second-password".utf8), attributes: [.posixPermissions: 0o600])
        let second = try await w.qemuctl("apply", "--timeout", "10", "-f", vms)
        // Operator commands refuse it too: a password typed for `qmp`, a pause, a stop.
        for args in [["qmp", "web", "set_password", #"{"protocol": "vnc", "password": "typed-password"}"#],
                     ["pause", "web"], ["stop", "web"], ["vnc", "web", "--once"]] {
            let r = try await QemuctlBinary.run(args, environment: w.env, directory: w.dir.path)
            #expect(r.status == 1, "\(args): \(r.out)\(r.err)")
            #expect(r.err.contains("not the QEMU") || r.err.contains("not proven"), "\(args): \(r.err)")
        }
        #expect(kill(fake.processIdentifier, 0) == 0)
        let sent = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(!sent.contains("set_password"), "the fake monitor received: \(sent)")
        #expect(!sent.contains("second-password") && !sent.contains("first-password") && !sent.contains("typed-password"))
        // Only read-only queries reached it (the observer's opening, written before the greeting; attach's name and status).
        for line in sent.split(whereSeparator: \.isNewline) {
            let command = (try? JSONValue(parsing: String(line)))?["execute"]?.stringValue ?? ""
            #expect(["qmp_capabilities", "query-status", "query-block", "query-name"].contains(command), "sent \(line)")
        }
        #expect(second.out.contains("is not the QEMU qemuctl launched"), "\(second.out)\(second.err)")
        #expect(second.out.contains("unmanaged") || second.out.contains("not touched"), "\(second.out)")
        // `get` shows it as foreign too.
        let get = try await w.qemuctl("get", "-o", "json")
        #expect(get.out.contains("foreign") || get.out.contains("not the QEMU"), "\(get.out)")
    }

    // MARK: - Signals (item 11)

    @Test(arguments: [false, true]) func deleteAndStopForceNeverSignalAProcessTheRecordMerelyNames(plantIdentity: Bool) async throws {
        let w = try Workspace("sg")
        defer { w.cleanUp() }
        let vms = try w.manifest("victim", bareVM("victim"))
        #expect(try await w.qemuctl("apply", "--timeout", "30", "-f", vms).status == 0)
        try Self.killQEMU(w, "victim")
        // Root's innocent process; the record (and pid file) now name it.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["300"]
        try sleeper.run()
        defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
        let pid = sleeper.processIdentifier
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let start = Int(stat[stat.range(of: ")")!.upperBound...].split(separator: " ")[19])!
        try Self.editRecord(w, "victim") { r in
            r["pid"] = Int(pid)
            if plantIdentity {
                // Even its true identity does not make it a QEMU serving the VM's socket.
                r["process"] = ["pid": Int(pid), "startTime": start, "executable": "/usr/bin/qemu-system-x86_64"]
            } else {
                r.removeValue(forKey: "process")
            }
            r["adopted"] = ["pid": Int(pid), "startTime": start, "socketPath": "\(w.state)/victim.sock",
                            "deviceAliases": [String: String](), "adoptedAt": 0]
        }
        try "\(pid)\n".write(toFile: "\(w.state)/victim/qemu.pid", atomically: true, encoding: .utf8)
        let stop = try await w.qemuctl("stop", "--force", "victim")
        #expect(kill(pid, 0) == 0, "stop --force killed pid \(pid): \(stop.out)\(stop.err)")
        let delete = try await w.qemuctl("delete", "--force", "victim")
        #expect(kill(pid, 0) == 0, "delete --force killed pid \(pid): \(delete.out)\(delete.err)")
        #expect(sleeper.isRunning)
    }

    // MARK: - Saved plans (item 12)

    @Test func aSavedPlanIsAuthenticatedOwnedAndNotWritableByOthers() async throws {
        let w = try Workspace("pl")
        defer { w.cleanUp() }
        let vms = try w.manifest("p", bareVM("p"))
        let planDir = w.dir.file("plans")
        try FileManager.default.createDirectory(atPath: planDir, withIntermediateDirectories: true)
        let planPath = planDir + "/plan.json"
        func plan() async throws {
            let r = try await w.qemuctl("plan", "-f", vms, "--out", planPath)
            #expect(r.status == 0, "\(r.out)\(r.err)")
        }
        try await plan()
        let text = try String(contentsOfFile: planPath, encoding: .utf8)
        #expect(text.contains("\"authentication\" : \"hmac-sha256:"), "\(text.prefix(200))")
        // The key: created once, 0600, in the state directory; no temporary file is left beside the plan.
        let key = try FileManager.default.attributesOfItem(atPath: "\(w.state)/.plan-key")
        #expect((key[.posixPermissions] as? Int) == 0o600)
        #expect((key[.size] as? Int) == 32)
        #expect(try FileManager.default.contentsOfDirectory(atPath: planDir) == ["plan.json"])

        // Root's apply must not run an emulator someone wrote into the plan.
        let marker = w.dir.file("evil-ran")
        let evil = w.dir.file("evil.sh")
        try "#!/bin/sh\ntouch \(marker)\nexec qemu-system-x86_64 \"$@\"\n".write(toFile: evil, atomically: true, encoding: .utf8)
        chmod(evil, 0o755)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: planPath))) as? [String: Any])
        var inner = try #require(json["plan"] as? [String: Any])
        var vmsJSON = try #require(inner["vms"] as? [[String: Any]])
        var desired = try #require(vmsJSON[0]["desired"] as? [String: Any])
        var spec = try #require(desired["spec"] as? [String: Any])
        spec["emulator"] = evil
        desired["spec"] = spec
        vmsJSON[0]["desired"] = desired
        inner["vms"] = vmsJSON
        json["plan"] = inner
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: planPath))
        let tampered = try await w.qemuctl("apply", planPath)
        #expect(tampered.status == 2, "\(tampered.out)\(tampered.err)")
        #expect(tampered.err.contains("authentication does not match"), "\(tampered.err)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(w.qemus().isEmpty)

        // A plan file owned by another user is refused, however intact.
        let ids = try PermissionTests.otherUserIDs()
        try await plan()
        #expect(chown(planPath, uid_t(ids.uid)!, gid_t(ids.gid)!) == 0)
        let foreign = try await w.qemuctl("apply", planPath)
        #expect(foreign.status == 2, "\(foreign.out)\(foreign.err)")
        #expect(foreign.err.contains("belongs to uid \(ids.uid)"), "\(foreign.err)")
        #expect(w.qemus().isEmpty)
        // So is one that others may write.
        try FileManager.default.removeItem(atPath: planPath)
        try await plan()
        chmod(planPath, 0o666)
        let writable = try await w.qemuctl("apply", planPath)
        #expect(writable.status == 2)
        #expect(writable.err.contains("writable by group or others"), "\(writable.err)")
        // And one made for another state directory.
        chmod(planPath, 0o644)
        let elsewhere = try await QemuctlBinary.run(["apply", planPath], environment: ["QEMUCTL_STATE_DIR": w.dir.file("other")],
                                                    directory: w.dir.path)
        #expect(elsewhere.status == 2)
        #expect(elsewhere.err.contains("no plan key") || elsewhere.err.contains("authentication"), "\(elsewhere.err)")

        // A directory others may write without the sticky bit is refused for --out; /tmp-like (sticky) is fine.
        let open = w.dir.file("open")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        chmod(open, 0o777)
        let refused = try await w.qemuctl("plan", "-f", vms, "--out", open + "/plan.json")
        #expect(refused.status == 1)
        #expect(refused.err.contains("writable by other users"), "\(refused.err)")
        #expect(!FileManager.default.fileExists(atPath: open + "/plan.json"))
        chmod(open, 0o1777)
        #expect(try await w.qemuctl("plan", "-f", vms, "--out", open + "/plan.json").status == 0)

        // The intact plan applies.
        let applied = try await w.qemuctl("apply", open + "/plan.json")
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        #expect(w.pid("p") != nil)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    // MARK: - Host claims across the state directory (item 6)

    @Test func macAndHostPortAreUniqueAcrossTheStateDirectory() async throws {
        let w = try Workspace("mc")
        defer { w.cleanUp() }
        let port = 20000 + Int(getpid() % 20000)
        func nic(_ mac: String, _ hostPort: Int) -> String {
            "  networks: [{name: net0, mac: \"\(mac)\", user: {hostfwd: [\"tcp:127.0.0.1:\(hostPort)-:22\"]}}]"
        }
        try w.manifest("a", bareVM("a", extra: nic("52:54:00:aa:00:01", port)))
        try w.manifest("b", bareVM("b", extra: nic("52:54:00:aa:00:01", port + 1)))
        try w.manifest("c", bareVM("c", extra: nic("52:54:00:aa:00:03", port)))
        let first = try await w.qemuctl("apply", "-f", w.dir.file("vms/a.yaml"))
        #expect(first.status == 0, "\(first.out)\(first.err)")
        let sameMAC = try await w.qemuctl("apply", "-f", w.dir.file("vms/b.yaml"))
        #expect(sameMAC.status == 2, "\(sameMAC.out)\(sameMAC.err)")
        #expect(sameMAC.err.contains("MAC address 52:54:00:aa:00:01 is also used by VM 'a'"), "\(sameMAC.err)")
        let samePort = try await w.qemuctl("apply", "-f", w.dir.file("vms/c.yaml"))
        #expect(samePort.status == 2, "\(samePort.out)\(samePort.err)")
        #expect(samePort.err.contains("host port tcp \(port)") && samePort.err.contains("VM 'a'"), "\(samePort.err)")
        // Refused before anything was created: no state, no socket, no QEMU.
        for name in ["b", "c"] {
            #expect(!FileManager.default.fileExists(atPath: "\(w.state)/\(name)"))
            #expect(!FileManager.default.fileExists(atPath: "\(w.state)/\(name).sock"))
        }
        #expect(w.qemus().count == 1)
        // The same VM applied again is not in conflict with itself.
        #expect(try await w.qemuctl("apply", "-f", w.dir.file("vms/a.yaml")).status == 0)
    }

    // MARK: - Prune with nothing declared (item 13, apply side)

    @Test func pruneWithNoManifestsIsAnError() async throws {
        let w = try Workspace("pr")
        defer { w.cleanUp() }
        let vms = try w.manifest("keep", bareVM("keep"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("keep"))
        let empty = w.dir.file("empty.yaml"), comments = w.dir.file("comments.yaml")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try "# nothing here\n---\n# still nothing\n".write(toFile: comments, atomically: true, encoding: .utf8)
        let stdin = try await QemuctlBinary.run(["apply", "-f", "-", "--prune"], environment: w.env, stdin: "", directory: w.dir.path)
        #expect(stdin.status == 2, "\(stdin.out)\(stdin.err)")
        #expect(stdin.err.contains("no objects passed to apply") || stdin.err.contains("empty"), "\(stdin.err)")
        for (label, args) in [("empty file", ["apply", "-f", empty, "--prune"]), ("comments only", ["apply", "-f", comments, "--prune"]),
                              ("plan", ["plan", "-f", empty, "--prune"]), ("diff", ["diff", "-f", comments, "--prune"])] {
            let r = try await QemuctlBinary.run(args, environment: w.env, directory: w.dir.path)
            #expect(r.status != 0, "\(label): \(r.out)\(r.err)")
            #expect(!r.out.contains("deleted"), "\(label): \(r.out)")
        }
        #expect(kill(pid, 0) == 0)
        #expect(w.pid("keep") == pid)
        #expect(FileManager.default.fileExists(atPath: "\(w.state)/keep/record.json"))
    }

    // MARK: - events and a full pipe (item 15)

    @Test(arguments: [SIGTERM, SIGINT]) func eventsEndsOnASignalWhileItsOutputPipeIsFull(_ sig: Int32) async throws {
        let w = try Workspace("ev")
        defer { w.cleanUp() }
        let vms = try w.manifest("ev", bareVM("ev"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // Far more replayed journal lines than a pipe holds (64 KiB).
        let line = "2999-01-01T00:00:00.000Z " + String(repeating: "x", count: 200) + "\n"
        let handle = try #require(FileHandle(forWritingAtPath: "\(w.state)/ev/journal.log"))
        handle.seekToEndOfFile()
        handle.write(Data(String(repeating: line, count: 2000).utf8))
        try handle.close()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: QemuctlBinary.path)
        p.arguments = ["events", "--since-start", "ev"]
        p.environment = ProcessInfo.processInfo.environment.merging(w.env) { _, n in n }
        let out = Pipe()  // nobody reads it; its read end stays open, so writes block instead of failing
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Wait until the pipe is full and events is blocked writing to it.
        let reader = out.fileHandleForReading.fileDescriptor
        var queued: Int32 = 0
        let full = Date().addingTimeInterval(20)
        while Date() < full {
            _ = ioctl(reader, UInt(FIONREAD), &queued)
            if queued >= 60000 { break }
            usleep(20_000)
        }
        #expect(queued >= 60000, "the pipe never filled (\(queued) bytes)")
        usleep(200_000)
        #expect(p.isRunning)
        kill(p.processIdentifier, sig)
        let end = Date().addingTimeInterval(10)
        while p.isRunning && Date() < end { usleep(20_000) }
        #expect(!p.isRunning, "events ignored signal \(sig) with its output pipe full")
        if !p.isRunning {
            #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(p.terminationReason) \(p.terminationStatus)")
        }
    }

    // MARK: - Display hand-off (item 14)

    /// `Listening on unix socket PATH: …` on stderr → PATH.
    static func listeningSocket(_ stderr: String) -> String? {
        guard let r = stderr.range(of: #"Listening on unix socket (/[^:]+):"#, options: .regularExpression) else { return nil }
        return String(stderr[r].dropFirst("Listening on unix socket ".count).dropLast())
    }

    @Test func displayHandOffServesOnlyTheOwnerByDefaultAndTCPNeedsAPassword() async throws {
        let w = try Workspace("dh")
        defer { w.cleanUp() }
        let secret = w.dir.file("vnc.pw")
        FileManager.default.createFile(atPath: secret, contents: Data("pw-123".utf8), attributes: [.posixPermissions: 0o600])
        try w.manifest("open", bareVM("open", extra: "  display: {vnc: {listen: none}}"))
        let vms = try w.manifest("locked", bareVM("locked", extra: "  display: {vnc: {listen: none, passwordFrom: {file: \(secret)}}}"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")

        // The default: a 0600 unix socket in the VM's 0700 runtime directory; this user's client gets the display.
        let listener = try Spawned(["vnc", "open"], environment: w.env, pty: false)
        try await listener.waitFor("the socket path") { _, err in Self.listeningSocket(err) != nil }
        let path = try #require(Self.listeningSocket(listener.errorText))
        #expect(path.hasPrefix("\(w.state)/open/"), "\(path)")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let dirMode = try FileManager.default.attributesOfItem(atPath: "\(w.state)/open")[.posixPermissions] as? Int
        #expect(dirMode == 0o700)
        let client = try TCPTestClient(unixPath: path)
        let types = try await rfbHandshake(read: { try await client.receive($0) }, send: client.send)
        #expect(types.contains(1))  // no password on this VM: None
        try await listener.waitFor("the hand-off") { _, err in err.contains("client handed to open") }
        // Another local user cannot reach it.
        let ids = try PermissionTests.otherUserIDs()
        #expect(try PermissionTests.asOther(ids, "connect", path) == "EACCES")
        kill(listener.process.processIdentifier, SIGTERM)
        #expect(await listener.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: path))  // removed at exit

        // --socket in a directory others can enter is refused.
        let shared = w.dir.file("shared")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(shared, 0o755)
        let exposed = try await w.qemuctl("vnc", "open", "--socket", shared + "/vnc.sock", "--once")
        #expect(exposed.status == 1)
        #expect(exposed.err.contains("closed to group and others"), "\(exposed.err)")
        #expect(!FileManager.default.fileExists(atPath: shared + "/vnc.sock"))

        // TCP for a display without a password: refused unless explicitly accepted.
        let tcp = try await w.qemuctl("vnc", "open", "--listen", "127.0.0.1:0", "--once")
        #expect(tcp.status == 1)
        #expect(tcp.err.contains("has no password"), "\(tcp.err)")
        #expect(!tcp.err.contains("Listening on"))
        let accepted = try Spawned(["vnc", "open", "--listen", "127.0.0.1:0", "--insecure-listen", "--once"], environment: w.env, pty: false)
        try await accepted.waitFor("the listening address") { _, err in listeningPort(err) != nil }
        kill(accepted.process.processIdentifier, SIGTERM)
        #expect(await accepted.waitForExit() == 0)
        // With a password, TCP is allowed: QEMU asks for it (security type 2, VNC authentication).
        let locked = try Spawned(["vnc", "locked", "--listen", "127.0.0.1:0", "--once"], environment: w.env, pty: false)
        try await locked.waitFor("the listening address") { _, err in listeningPort(err) != nil }
        let tcpClient = try TCPTestClient(port: try #require(listeningPort(locked.errorText)))
        let lockedTypes = try await rfbHandshake(read: { try await tcpClient.receive($0) }, send: tcpClient.send)
        #expect(lockedTypes.contains(2) && !lockedTypes.contains(1), "\(lockedTypes)")
        #expect(await locked.waitForExit() == 0)
        // The flags are checked.
        #expect(try await w.qemuctl("vnc", "open", "--insecure-listen").status == 2)
        #expect(try await w.qemuctl("vnc", "open", "--stdio", "--listen", "127.0.0.1:0").status == 2)
    }

    // MARK: - import of something that is not QEMU (item 5)

    @Test func importOfAFakeMonitorFails() async throws {
        let w = try Workspace("im")
        defer { w.cleanUp() }
        // A Python script that speaks QMP well enough.
        let socket = w.dir.file("fake.sock")
        let fake = try Self.startFakeMonitor(w, socket: socket, log: w.dir.file("fake.log"), extra: ["-name", "fake"])
        defer { kill(fake.processIdentifier, SIGKILL); fake.waitUntilExit() }
        let r = try await w.qemuctl("import", "--socket", socket)
        #expect(r.status != 0, "\(r.out)\(r.err)")
        #expect(r.err.contains("not a QEMU system emulator"), "\(r.err)")
        #expect(r.out.isEmpty)
        // --adopt neither: nothing is recorded.
        let adopt = try await w.qemuctl("import", "fake", "--socket", socket, "--adopt")
        #expect(adopt.status != 0)
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/fake/record.json"))
    }
}
