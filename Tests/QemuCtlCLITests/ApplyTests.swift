import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// A state directory and a manifest directory for one test.
struct Workspace {
    let dir: TempDir
    var state: String { dir.file("s") }
    var env: [String: String] { ["QEMUCTL_STATE_DIR": state] }

    init(_ tag: String) throws { dir = try TempDir(tag) }

    /// Writes `vms/NAME.yaml` and returns the directory path.
    @discardableResult
    func manifest(_ name: String, _ yaml: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir.file("vms"), withIntermediateDirectories: true)
        try yaml.write(toFile: dir.file("vms/\(name).yaml"), atomically: true, encoding: .utf8)
        return dir.file("vms")
    }

    func qemuctl(_ args: String...) async throws -> QemuctlBinary.Run {
        try await QemuctlBinary.run(args, environment: env, directory: dir.path)
    }

    /// The pid QEMU wrote for VM `name`, if any.
    func pid(_ name: String) -> Int32? {
        (try? String(contentsOfFile: "\(state)/\(name)/qemu.pid", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// QEMU processes whose command line mentions this workspace.
    func qemus() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            return cmd.hasPrefix("/") && cmd.contains("qemu-system") && cmd.contains(state)
        }
    }

    /// Kills every QEMU of this workspace and removes it.
    func cleanUp() {
        for p in qemus() { kill(p, SIGKILL) }
        dir.remove()
    }
}

/// A VM without an operating system: cheap to start, enough for QMP.
func bareVM(_ name: String, runState: String = "running", extra: String = "") -> String {
    """
    apiVersion: qemuctl/v1
    kind: VirtualMachine
    metadata: {name: \(name), labels: {team: test}}
    spec:
      runState: \(runState)
      machine: {type: q35, accel: tcg}
      memory: {size: 64MiB}
    \(extra)
    """
}

@Suite(.timeLimit(.minutes(2)), .offPool) struct ApplyTests {
    @Test func createsFromNothingThenASecondApplyChangesNothing() async throws {
        let w = try Workspace("ap1")
        defer { w.cleanUp() }
        let vms = try w.manifest("a", bareVM("a"))
        let first = try await w.qemuctl("apply", "-f", vms)
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("a: created"))
        let pid = try #require(w.pid("a"))
        let status = try await QMPClient.withConnection(to: "\(w.state)/a.sock") { try await $0.queryStatus().status }
        #expect(status == "running")
        let second = try await w.qemuctl("apply", "-f", vms)
        #expect(second.status == 0)
        #expect(second.out.contains("No changes: 1 VM matches the manifests."))
        #expect(w.pid("a") == pid)
        #expect(w.qemus().count == 1)
        // diff: 0 when clean …
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
        // … 2 for an error (a manifest that does not parse), and nothing changes.
        try w.manifest("bad", "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: b}\nspec:\n  memroy: {size: 1GiB}\n")
        let bad = try await w.qemuctl("diff", "-f", vms)
        #expect(bad.status == 2)
        #expect(bad.err.contains("bad.yaml:5:3: error: unknown key 'memroy'"))
        let refused = try await w.qemuctl("apply", "-f", vms)
        #expect(refused.status == 2)
        #expect(refused.err.contains("nothing was changed"))
        #expect(w.qemus().count == 1)
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/b"))
    }

    @Test func outOfBandThrottleChangeIsSeenAsDriftAndRepaired() async throws {
        let w = try Workspace("ap2")
        defer { w.cleanUp() }
        let vms = try w.manifest("t", bareVM("t", extra: """
              disks:
                - name: data
                  file: {path: \(w.dir.file("data.raw")), format: raw}
                  create: {size: 1MiB}
                  throttle: {bps: 10MiB, iops: 100}
            """))
        let applied = try await w.qemuctl("apply", "-f", vms)
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        #expect(applied.out.contains("created disk data"))
        #expect(FileManager.default.fileExists(atPath: w.dir.file("data.raw")))
        // The limits given at launch (a throttle group) read back as the manifest's: no drift.
        let fresh = try await w.qemuctl("diff", "-f", vms)
        #expect(fresh.status == 0, "\(fresh.out)")
        // Someone changes the throttle by hand over QMP.
        try await QMPClient.withConnection(to: "\(w.state)/t.sock") { qmp in
            let dev = try #require(try await qmp.queryBlock().first { $0.qdev?.contains("disk-data") == true }?.qdev)
            try await qmp.setIOThrottle(qdevID: dev, QMPIOThrottle(bps: 1_048_576, iops: 100))
        }
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 1)
        #expect(diff.out.contains("spec.disks[data].throttle.bps: 1MiB -> 10MiB"), "\(diff.out)")
        #expect(diff.out.contains("drift"))
        let repair = try await w.qemuctl("apply", "-f", vms)
        #expect(repair.status == 0, "\(repair.out)\(repair.err)")
        // Repaired where the limits live: the group holds the manifest's, the hand-made backend limits are gone.
        let (group, backend) = try await QMPClient.withConnection(to: "\(w.state)/t.sock") { qmp in
            (try await qmp.execute("qom-get", arguments: ["path": "/objects/tg-data", "property": "limits"]),
             try await qmp.queryBlock().first { $0.qdev?.contains("disk-data") == true }?.inserted?.throttle)
        }
        #expect(group["bps-total"]?.intValue == 10 * 1_048_576)
        #expect(group["iops-total"]?.intValue == 100)
        #expect(backend?.isUnlimited == true)
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
    }

    @Test func editingRunStatePausesAndResumes() async throws {
        let w = try Workspace("ap3")
        defer { w.cleanUp() }
        var vms = try w.manifest("p", bareVM("p"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        vms = try w.manifest("p", bareVM("p", runState: "paused"))
        #expect(try await w.qemuctl("diff", "-f", vms).status == 1)
        let pause = try await w.qemuctl("apply", "-f", vms)
        #expect(pause.status == 0, "\(pause.err)")
        var status = try await QMPClient.withConnection(to: "\(w.state)/p.sock") { try await $0.queryStatus().status }
        #expect(status == "paused")
        vms = try w.manifest("p", bareVM("p", runState: "running"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        status = try await QMPClient.withConnection(to: "\(w.state)/p.sock") { try await $0.queryStatus().status }
        #expect(status == "running")
        // A stop over QMP by hand is drift too.
        try await QMPClient.withConnection(to: "\(w.state)/p.sock") { try await $0.stop() }
        let drift = try await w.qemuctl("diff", "-f", vms)
        #expect(drift.status == 1)
        #expect(drift.out.contains("spec.runState: paused -> running"), "\(drift.out)")
    }

    @Test func restartClassEditIsPendingUntilAllowedAndRevertClearsIt() async throws {
        let w = try Workspace("ap4")
        defer { w.cleanUp() }
        let disk = "\n  disks:\n    - name: root\n      file: {path: \(w.dir.file("root.qcow2")), format: qcow2}\n      create: {size: 16MiB}\n"
        var vms = try w.manifest("r", bareVM("r", extra: disk))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("r"))
        let record = try String(contentsOfFile: "\(w.state)/r/record.json", encoding: .utf8)
        let uuid = try #require(record.range(of: #""uuid" : "([0-9a-f-]+)""#, options: .regularExpression).map { String(record[$0]) })
        // memory.size beyond no max is a restart-class change.
        vms = try w.manifest("r", bareVM("r", extra: disk).replacingOccurrences(of: "64MiB", with: "96MiB"))
        let pending = try await w.qemuctl("apply", "-f", vms)
        #expect(pending.status == 3, "\(pending.out)\(pending.err)")
        #expect(pending.out.contains("restart pending"))
        #expect(w.pid("r") == pid)  // untouched
        #expect(kill(pid, 0) == 0)
        #expect(try await w.qemuctl("get", "r").out.contains("yes"))
        let restarted = try await w.qemuctl("apply", "-f", vms, "--restart", "if-needed", "--stop-timeout", "1")
        #expect(restarted.status == 0, "\(restarted.out)\(restarted.err)")
        let newPID = try #require(w.pid("r"))
        #expect(newPID != pid)
        let cmdline = try String(contentsOfFile: "/proc/\(newPID)/cmdline", encoding: .utf8)
        #expect(cmdline.contains(uuid.split(separator: "\"").last.map(String.init) ?? "missing"))
        #expect(cmdline.contains(w.dir.file("root.qcow2")))
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
        // Edit again, leave it pending, then revert: the pending restart clears itself.
        let edited = try w.manifest("r", bareVM("r", extra: disk).replacingOccurrences(of: "64MiB", with: "128MiB"))
        #expect(try await w.qemuctl("apply", "-f", edited).status == 3)
        vms = try w.manifest("r", bareVM("r", extra: disk).replacingOccurrences(of: "64MiB", with: "96MiB"))
        let reverted = try await w.qemuctl("apply", "-f", vms)
        #expect(reverted.status == 0, "\(reverted.out)")
        #expect(try await w.qemuctl("get", "r", "-o", "json").out.contains("\"restartPending\" : false"))
    }

    @Test func pruneDeletesOnlyOwnedVMsAndDeleteKeepsDisks() async throws {
        let w = try Workspace("ap5")
        defer { w.cleanUp() }
        let image = w.dir.file("keep.raw")
        try w.manifest("a", bareVM("a", extra: "  disks:\n    - name: d\n      file: {path: \(image), format: raw}\n      create: {size: 1MiB}\n"))
        let vms = try w.manifest("b", bareVM("b"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // A QEMU qemuctl did not launch, with a socket in the state directory.
        let foreign = try QEMUProcess(args: ["-machine", "q35", "-accel", "tcg", "-m", "64", "-qmp", "unix:\(w.state)/f.sock,server=on,wait=off"])
        defer { foreign.kill() }
        try FileManager.default.removeItem(atPath: w.dir.file("vms/a.yaml"))
        let pruned = try await w.qemuctl("apply", "-f", vms, "--prune", "--stop-timeout", "1")
        #expect(pruned.status == 0, "\(pruned.out)\(pruned.err)")
        #expect(pruned.out.contains("a: deleted"))
        #expect(!pruned.out.contains("f: deleted"))
        #expect(foreign.process.isRunning)
        #expect(FileManager.default.fileExists(atPath: image))  // the disk image stays
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/a"))
        let b = try #require(w.pid("b"))
        let deleted = try await w.qemuctl("delete", "b", "--stop-timeout", "1")
        #expect(deleted.status == 0)
        #expect(await processExits(b))
        #expect(w.qemus() == [foreign.pid])
        #expect(try await w.qemuctl("delete", "f").status == 1)  // not managed: refused
    }

    @Test func aSavedPlanIsRefusedOnceTheStateChanged() async throws {
        let w = try Workspace("ap6")
        defer { w.cleanUp() }
        var vms = try w.manifest("s", bareVM("s"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        vms = try w.manifest("s", bareVM("s", runState: "paused"))
        let planned = try await w.qemuctl("plan", "-f", vms, "--out", w.dir.file("plan.json"), "--detailed-exitcode")
        #expect(planned.status == 2)
        let json = try String(contentsOfFile: w.dir.file("plan.json"), encoding: .utf8)
        #expect(json.contains("spec.runState"))
        // A plan file that cannot be written: the path and the system's reason, exit 1.
        let unwritable = try await w.qemuctl("plan", "-f", vms, "--out", w.dir.file("missing/plan.json"))
        #expect(unwritable.status == 1)
        #expect(unwritable.err.contains("cannot write \(w.dir.file("missing/plan.json"))"), "\(unwritable.err)")
        #expect(unwritable.err.contains("No such file or directory"), "\(unwritable.err)")
        // The state changes behind the plan's back.
        try await QMPClient.withConnection(to: "\(w.state)/s.sock") { try await $0.stop() }
        let stale = try await w.qemuctl("apply", w.dir.file("plan.json"))
        #expect(stale.status == 2)
        #expect(stale.err.contains("stale"))
        // A fresh plan applies exactly.
        try await QMPClient.withConnection(to: "\(w.state)/s.sock") { try await $0.cont() }
        #expect(try await w.qemuctl("plan", "-f", vms, "--out", w.dir.file("plan.json")).status == 0)
        let applied = try await w.qemuctl("apply", w.dir.file("plan.json"))
        #expect(applied.status == 0, "\(applied.err)")
        #expect(try await QMPClient.withConnection(to: "\(w.state)/s.sock") { try await $0.queryStatus().status } == "paused")
    }

    @Test func concurrentAppliesLaunchEachVMOnce() async throws {
        let w = try Workspace("ap7")
        defer { w.cleanUp() }
        try w.manifest("c1", bareVM("c1"))
        let vms = try w.manifest("c2", bareVM("c2"))
        let runs = await withTaskGroup(of: QemuctlBinary.Run?.self) { group in
            for _ in 0..<3 { group.addTask { try? await w.qemuctl("apply", "-f", vms) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let changed = runs.compactMap { $0 }.filter { $0.out.contains("created") }
        #expect(changed.count == 1)
        #expect(runs.compactMap { $0 }.allSatisfy { $0.status == 0 })
        #expect(w.qemus().count == 2)
        // With --wait 0 a second apply fails at once while one holds the lock: simulated by flock.
    }

    @Test func killedQEMUIsSeenAsGoneAndRelaunched() async throws {
        let w = try Workspace("ap8")
        defer { w.cleanUp() }
        let vms = try w.manifest("k", bareVM("k"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("k"))
        kill(pid, SIGKILL)
        for _ in 0..<200 where kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 1)
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(again.out.contains("k: created"))
        #expect(w.qemus().count == 1)
    }
}
