import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Starts a QEMU by hand (not through qemuctl) as a child of the test, with `args` after
/// the common ones, and waits until its monitor socket `socket` accepts connections.
func handStartedQEMU(_ args: [String], socket: String) async throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Fixtures.qemu)
    p.arguments = ["-nodefaults", "-no-user-config", "-display", "none"] + args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    p.standardInput = FileHandle.nullDevice
    try p.run()
    for _ in 0..<1000 {
        if FileManager.default.fileExists(atPath: socket),
           (try? await QMPClient.withConnection(to: socket, timeout: .seconds(2)) { _ in true }) == true {
            return p
        }
        if !p.isRunning { throw FixtureError("QEMU exited at start (status \(p.terminationStatus))") }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw FixtureError("QEMU's monitor \(socket) did not answer within 10 s")
}

@Suite(.timeLimit(.minutes(2)), .offPool) struct ImportTests {
    @Test func aQEMUWithQmpUnixIsImportedValidatedAdoptedAndThenDiffClean() async throws {
        let w = try Workspace("im1")
        defer { w.cleanUp() }
        let image = w.dir.file("root.qcow2")
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        made.arguments = ["create", "-q", "-f", "qcow2", image, "16M"]
        try made.run()
        made.waitUntilExit()
        let socket = w.dir.file("hand.sock")
        let port = Int.random(in: 30000..<60000)
        let qemu = try await handStartedQEMU([
            "-name", "hand1", "-machine", "q35", "-accel", "tcg", "-m", "96", "-smp", "2",
            "-qmp", "unix:\(socket),server=on,wait=off",
            "-blockdev", #"{"driver":"file","node-name":"f0","filename":"\#(image)"}"#,
            "-blockdev", #"{"driver":"qcow2","node-name":"q0","file":"f0"}"#,
            "-device", "virtio-blk-pci,drive=q0,id=root",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:\(port)-:22",
            "-device", "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:aa:bb:01",
            "-vnc", "none",
            "-device", "i6300esb,id=wd",  // a watchdog: no manifest field for it
        ], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }

        let imported = try await w.qemuctl("import", "--pid", String(qemu.processIdentifier))
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.err.contains("qemuctl: warning: -device i6300esb,id=wd is not expressible in a manifest; it will be dropped on the next restart"), "\(imported.err)")
        for expected in ["name: hand1", "runState: running", "type: q35", "accel: tcg", "count: 2", #"size: "96MiB""#,
                         "path: \(image)", "format: qcow2", "name: root", "name: nic0", "\"tcp:127.0.0.1:\(port)-:22\"",
                         #"mac: "52:54:00:aa:bb:01""#, "listen: none", "video: none"] {
            #expect(imported.out.contains(expected), "missing \(expected) in\n\(imported.out)")
        }
        try imported.out.write(toFile: w.dir.file("hand1.yaml"), atomically: true, encoding: .utf8)
        let valid = try await w.qemuctl("validate", "-f", w.dir.file("hand1.yaml"))
        #expect(valid.status == 0, "\(valid.out)\(valid.err)")

        // JSON says the same.
        let json = try await w.qemuctl("import", "--socket", socket, "-o", "json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        #expect((object["metadata"] as? [String: Any])?["name"] as? String == "hand1")
        // -o text is the manifest as YAML text, as the default prints it (#19 item 1: -o on every read command).
        let text = try await w.qemuctl("import", "--socket", socket, "-o", "text")
        #expect(text.status == 0 && text.out == imported.out, "\(text.out)\nvs\n\(imported.out)")

        // Before adoption the VM is not qemuctl's; after it, diff is clean and apply a no-op.
        let adopted = try await w.qemuctl("import", "--socket", socket, "--adopt")
        #expect(adopted.status == 0, "\(adopted.err)")
        #expect(adopted.out == imported.out)
        #expect(adopted.err.contains("adopted hand1"))
        let diff = try await w.qemuctl("diff", "-f", w.dir.file("hand1.yaml"))
        #expect(diff.status == 0, "\(diff.out)\(diff.err)")
        let apply = try await w.qemuctl("apply", "-f", w.dir.file("hand1.yaml"))
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        #expect(apply.out.contains("No changes"))
        #expect(qemu.isRunning)
        let get = try await w.qemuctl("get", "hand1")
        #expect(get.out.contains("hand1") && get.out.contains("running"), "\(get.out)")

        // Live changes reach the adopted VM's devices under the ids it was started with.
        let edited = imported.out
            .replacingOccurrences(of: "        format: qcow2\n", with: "        format: qcow2\n      throttle: {bps: 10MiB, iops: 100}\n")
            .replacingOccurrences(of: "      mac: \"52:54:00:aa:bb:01\"\n", with: "      mac: \"52:54:00:aa:bb:01\"\n      link: down\n")
        try edited.write(toFile: w.dir.file("hand1.yaml"), atomically: true, encoding: .utf8)
        let live = try await w.qemuctl("apply", "-f", w.dir.file("hand1.yaml"))
        #expect(live.status == 0, "\(live.out)\(live.err)")
        let throttle = try await QMPClient.withConnection(to: socket) { try await $0.queryBlock().first?.inserted?.throttle }
        #expect(throttle?.bps == 10 << 20 && throttle?.iops == 100)
        #expect(try await w.qemuctl("diff", "-f", w.dir.file("hand1.yaml")).status == 0)

        // A change by hand now shows as drift, like on any managed VM.
        try await QMPClient.withConnection(to: socket) { try await $0.stop() }
        let drift = try await w.qemuctl("diff", "-f", w.dir.file("hand1.yaml"))
        #expect(drift.status == 1)
        #expect(drift.out.contains("spec.runState: paused -> running"), "\(drift.out)")
        // A second adoption of the same name is refused.
        let again = try await w.qemuctl("import", "--socket", socket, "--adopt")
        #expect(again.status == 1)
        #expect(again.err.contains("already managed"))
    }

    @Test func aQEMUWithAChardevMonitorIsFoundByPidAndAdopted() async throws {
        let w = try Workspace("im2")
        defer { w.cleanUp() }
        let socket = w.dir.file("mon.sock")
        let qemu = try await handStartedQEMU([
            "-name", "guest=hand2", "-machine", "pc", "-accel", "tcg", "-m", "64", "-S",
            "-chardev", "socket,id=mon0,path=\(socket),server=on,wait=off",
            "-mon", "chardev=mon0,mode=control",
        ], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        let imported = try await w.qemuctl("import", "--pid", String(qemu.processIdentifier))
        #expect(imported.status == 0, "\(imported.err)")
        #expect(!imported.err.contains("warning"), "\(imported.err)")  // everything it runs is expressible
        for expected in ["name: hand2", "runState: paused", "type: pc", #"size: "64MiB""#, "dumpGuestCore: true"] {
            #expect(imported.out.contains(expected), "missing \(expected) in\n\(imported.out)")
        }
        #expect(!imported.out.contains("hotplugPorts"))  // pc has no root ports
        try imported.out.write(toFile: w.dir.file("hand2.yaml"), atomically: true, encoding: .utf8)
        #expect(try await w.qemuctl("validate", "-f", w.dir.file("hand2.yaml")).status == 0)
        let adopted = try await w.qemuctl("import", "--pid", String(qemu.processIdentifier), "--adopt")
        #expect(adopted.status == 0, "\(adopted.err)")
        let diff = try await w.qemuctl("diff", "-f", w.dir.file("hand2.yaml"))
        #expect(diff.status == 0, "\(diff.out)\(diff.err)")
        // The state directory's name links to the hand-made socket, so commands by name reach it.
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(w.state)/hand2.sock")
        #expect(link == socket)
        // Started with -S and never resumed, QEMU says prelaunch; get says paused (issue 20, item 6).
        let get = try await w.qemuctl("get", "hand2")
        #expect(get.out.contains("paused") && !get.out.contains("prelaunch"), "\(get.out)")
        #expect(try recordedUUID(w, "hand2") == "00000000-0000-0000-0000-000000000000")

        // Started without -uuid, it has the nil uuid; qemuctl's relaunch gives it one of its own and records it.
        kill(qemu.processIdentifier, SIGKILL)
        qemu.waitUntilExit()
        let relaunched = try await w.qemuctl("apply", "-f", w.dir.file("hand2.yaml"))
        #expect(relaunched.status == 0, "\(relaunched.out)\(relaunched.err)")
        #expect(relaunched.out.contains("launched with a new uuid"), "\(relaunched.out)")
        let uuid = try recordedUUID(w, "hand2")
        #expect(uuid.count == 36 && uuid != "00000000-0000-0000-0000-000000000000", "\(uuid)")
        let running = try await QMPClient.withConnection(to: "\(w.state)/hand2.sock") { try await $0.execute("query-uuid") }
        #expect(running["UUID"]?.stringValue == uuid)
        let getAgain = try await w.qemuctl("get", "hand2")
        #expect(getAgain.out.contains("paused") && !getAgain.out.contains("prelaunch"), "\(getAgain.out)")
        #expect(try await w.qemuctl("diff", "-f", w.dir.file("hand2.yaml")).status == 0)

        // Not a QEMU, or no monitor on its command line: clear errors.
        let none = try await w.qemuctl("import", "--pid", String(getpid()))
        #expect(none.status == 1)
        #expect(none.err.contains("has no QMP unix socket on its command line"), "\(none.err)")
    }

    @Test func whatNoManifestCanExpressIsAWarningAndAnUnlaunchableManifestIsNotAdopted() async throws {
        let w = try Workspace("im3")
        defer { w.cleanUp() }
        let socket = w.dir.file("q.sock")
        let qemu = try await handStartedQEMU([
            "-name", "hand3", "-machine", "q35", "-accel", "tcg", "-m", "64", "-no-reboot",
            "-qmp", "unix:\(socket),server=on,wait=off",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:0-:22,tftp=\(w.dir.path)",
            "-device", "e1000,netdev=n0,id=net-lan",
            "-vnc", "none,share=force-shared",
        ], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        let imported = try await w.qemuctl("import", "--socket", socket)
        #expect(imported.status == 0, "\(imported.err)")
        for expected in [
            "qemuctl: warning: -no-reboot is not expressible in a manifest; it will be dropped on the next restart",
            "property tftp is not expressible in a manifest; it will be dropped on the next restart",
            "-vnc none,share=force-shared: property share is not expressible",
            "qemuctl could not relaunch this VM from the manifest as printed",  // hostfwd to port 0
        ] {
            #expect(imported.err.contains(expected), "missing \(expected) in\n\(imported.err)")
        }
        #expect(imported.out.contains("name: lan"))  // the NIC's id without qemuctl's net- prefix
        #expect(imported.out.contains("model: e1000"))
        let adopt = try await w.qemuctl("import", "--socket", socket, "--adopt")
        #expect(adopt.status == 1)
        #expect(adopt.err.contains("spec.networks[0].user.hostfwd[0]"), "\(adopt.err)")
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/hand3/record.json"))
    }
}

/// The uuid in VM `name`'s record in the workspace's state directory.
private func recordedUUID(_ w: Workspace, _ name: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(w.state)/\(name)/record.json"))
    let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    return ((object?["launch"] as? [String: Any])?["uuid"] as? String) ?? ""
}
