import Foundation
import QemuCtlTestSupport
import Testing

/// #19 item 8: manifests as a set: prune scoped to the set that applied a VM (kubectl's
/// applyset), `-l` selectors on `get`, `delete` and `apply --prune`, `delete -f PATH`.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool)
struct ManifestSetTests {
    /// Writes `DIR/NAME.yaml` under the workspace and returns DIR's path.
    @discardableResult
    private func manifest(_ w: Workspace, _ dir: String, _ name: String, labels: String = "team: test") throws -> String {
        let path = w.dir.file(dir)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try bareVM(name).replacingOccurrences(of: "labels: {team: test}", with: "labels: {\(labels)}")
            .write(toFile: "\(path)/\(name).yaml", atomically: true, encoding: .utf8)
        return path
    }

    @Test("apply --prune -f b/ never deletes a VM that a/ applied; it deletes what b/ applied and no longer declares")
    func pruneIsScopedToTheSet() async throws {
        let w = try Workspace("ms1")
        defer { w.cleanUp() }
        let a = try manifest(w, "a", "x")
        let b = try manifest(w, "b", "y")
        try manifest(w, "b", "z")
        #expect(try await w.qemuctl("apply", "-f", a).status == 0)
        #expect(try await w.qemuctl("apply", "-f", b).status == 0)
        try FileManager.default.removeItem(atPath: "\(b)/z.yaml")
        let plan = try await w.qemuctl("plan", "-f", b, "--prune", "-o", "json")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(plan.out.utf8)) as? [String: Any], "\(plan.err)")
        let vms = try #require(parsed["vms"] as? [[String: Any]])
        let setID = try #require(parsed["applySet"] as? String)
        #expect(setID.hasPrefix("paths-"))
        // z (applied by b/, gone from it) is deleted; x (applied by a/) is not even planned.
        #expect(vms.first { $0["name"] as? String == "z" }?["action"] as? String == "delete", "\(plan.out)")
        #expect(vms.first { $0["name"] as? String == "z" }?["applySet"] as? String == setID)
        #expect(!vms.contains { $0["name"] as? String == "x" }, "\(plan.out)")
        #expect(plan.err.contains("x is not in these manifests but belongs to apply set"), "\(plan.err)")
        // The same directory spelled differently is the same set.
        let spelled = try await w.qemuctl("plan", "-f", w.dir.file("./b/"), "--prune", "-o", "json")
        #expect(spelled.out.contains("\"applySet\" : \"\(setID)\""), "\(spelled.out)")
        let applied = try await w.qemuctl("apply", "-f", b, "--prune", "--stop-timeout", "1")
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        #expect(applied.out.contains("z: deleted"))
        #expect(w.pid("x") != nil && w.pid("y") != nil)
        #expect(FileManager.default.fileExists(atPath: "\(w.state)/x.sock"))
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/z.sock"))
        // The text plan says which set --prune works in.
        let text = try await w.qemuctl("plan", "-f", a, "--prune")
        #expect(!text.out.contains("y: delete"), "\(text.out)")
    }

    @Test("a record without a set (written before sets existed) is never pruned, and the plan says why")
    func legacyRecordsAreNotPruned() async throws {
        let w = try Workspace("ms4")
        defer { w.cleanUp() }
        let vms = try manifest(w, "vms", "old")
        try manifest(w, "vms", "keep")
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // As an older qemuctl wrote it: no applySet in the launch record.
        let path = "\(w.state)/old/record.json"
        var record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var launch = try #require(record["launch"] as? [String: Any])
        #expect(launch["applySet"] as? String != nil, "a launch records its set: \(launch.keys)")
        launch["applySet"] = nil
        record["launch"] = launch
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))
        try FileManager.default.removeItem(atPath: "\(vms)/old.yaml")
        let pruned = try await w.qemuctl("apply", "-f", vms, "--prune", "--stop-timeout", "1")
        #expect(pruned.status == 0, "\(pruned.err)")
        #expect(!pruned.out.contains("old: deleted"), "\(pruned.out)")
        #expect(pruned.err.contains("old is not in these manifests and has no apply set"), "\(pruned.err)")
        #expect(w.pid("old") != nil)
    }

    @Test("--prune-set NAME makes the set independent of the paths; a VM joins the set of an apply --prune that declares it")
    func namedSetAndJoining() async throws {
        let w = try Workspace("ms2")
        defer { w.cleanUp() }
        let one = try manifest(w, "one", "p")
        try manifest(w, "one", "q")
        // Applied without a name; then `--prune-set fleet` declares both: they join (record only).
        #expect(try await w.qemuctl("apply", "-f", one).status == 0)
        let join = try await w.qemuctl("apply", "-f", one, "--prune", "--prune-set", "fleet", "--stop-timeout", "1")
        #expect(join.status == 0, "\(join.err)")
        #expect(join.out.contains("metadata.applySet"), "\(join.out)")
        // From another path, the same named set prunes what it no longer declares.
        let two = try manifest(w, "two", "p")
        let pruned = try await w.qemuctl("apply", "-f", two, "--prune", "--prune-set", "fleet", "--stop-timeout", "1")
        #expect(pruned.status == 0, "\(pruned.out)\(pruned.err)")
        #expect(pruned.out.contains("q: deleted"), "\(pruned.out)")
        #expect(w.pid("p") != nil)
        let bad = try await w.qemuctl("apply", "-f", two, "--prune", "--prune-set", "no/slash")
        #expect(bad.status == 2)
        #expect(bad.err.contains("is not a set name"), "\(bad.err)")
    }

    @Test("-l selects on get, delete and apply --prune; delete -f deletes the VMs the manifests define")
    func selectorsAndDeleteByManifest() async throws {
        let w = try Workspace("ms3")
        defer { w.cleanUp() }
        let vms = try manifest(w, "vms", "web", labels: "role: web")
        try manifest(w, "vms", "db", labels: "role: db")
        try manifest(w, "vms", "cache", labels: "role: cache")
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let get = try await w.qemuctl("get", "-l", "role=web", "-o", "json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(get.out.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["name"] as? String } == ["web"], "\(get.out)")
        let notWeb = try await w.qemuctl("get", "-l", "role!=web", "-o", "json")
        let names = try #require(try JSONSerialization.jsonObject(with: Data(notWeb.out.utf8)) as? [[String: Any]]).compactMap { $0["name"] as? String }
        #expect(Set(names) == ["db", "cache"])
        // apply --prune -l role=db: of the two VMs gone from the manifests, only the db one goes.
        try FileManager.default.removeItem(atPath: "\(vms)/db.yaml")
        try FileManager.default.removeItem(atPath: "\(vms)/cache.yaml")
        let pruned = try await w.qemuctl("apply", "-f", vms, "--prune", "-l", "role=db", "--stop-timeout", "1")
        #expect(pruned.status == 0, "\(pruned.err)")
        #expect(pruned.out.contains("db: deleted") && !pruned.out.contains("cache: deleted"), "\(pruned.out)")
        #expect(w.pid("cache") != nil)
        // delete -l
        let byLabel = try await w.qemuctl("delete", "-l", "role=cache", "--force")
        #expect(byLabel.status == 0)
        #expect(byLabel.out.contains("cache: deleted") && !byLabel.out.contains("web"), "\(byLabel.out)")
        // delete -f: the manifests' VMs, disks kept as delete does.
        let byFile = try await w.qemuctl("delete", "-f", vms, "--force")
        #expect(byFile.status == 0, "\(byFile.err)")
        #expect(byFile.out.contains("web: deleted"), "\(byFile.out)")
        #expect(w.qemus().isEmpty)
        #expect(FileManager.default.fileExists(atPath: "\(vms)/web.yaml"))
        let noPrune = try await w.qemuctl("apply", "-f", vms, "-l", "role=web")
        #expect(noPrune.status == 2 && noPrune.err.contains("give --prune too"), "\(noPrune.err)")
        let bad = try await w.qemuctl("get", "-l", "=x")
        #expect(bad.status == 2 && bad.err.contains("is not a label selector"), "\(bad.err)")
    }
}

/// #19 item 8: what would fail only at launch is caught by `validate` and `plan`.
@Suite(.timeLimit(.minutes(2)))
struct LaunchTimeProblemsTests {
    @Test("one image written by two VMs is an error at the disk's file:line:col, in validate and in plan")
    func sharedWritableImage() async throws {
        let w = try Workspace("lt1")
        defer { w.cleanUp() }
        let image = w.dir.file("shared.qcow2")
        let disk = "  disks:\n    - name: root\n      file: {path: \(image), format: qcow2}\n      create: {size: 1MiB}\n"
        try w.manifest("a", bareVM("a", extra: disk))
        let vms = try w.manifest("b", bareVM("b", extra: disk))
        let validate = try await w.qemuctl("validate", "-f", vms)
        #expect(validate.status == 1)
        // b.yaml line 10 is the disk's `file: {path: …}`; column 14 is the path's value.
        #expect(validate.err.contains("\(vms)/b.yaml:10:14: error:"), "\(validate.err)")
        #expect(validate.err.contains("VM 'b': disk 'root' uses the image \(image), which VM 'a' also uses; both open it for writing"),
                "\(validate.err)")
        let plan = try await w.qemuctl("plan", "-f", vms)
        #expect(plan.status == 1)
        #expect(plan.err.contains("which VM 'a' also uses"), "\(plan.err)")
        // Read-only on both sides is fine.
        let ro = "  disks:\n    - name: root\n      file: {path: \(image), format: qcow2}\n      readOnly: true\n"
        try w.manifest("a", bareVM("a", extra: ro))
        try w.manifest("b", bareVM("b", extra: ro))
        let fine = try await w.qemuctl("validate", "-f", vms)
        #expect(!fine.err.contains("also uses"), "\(fine.err)")
        #expect(w.qemus().isEmpty)
    }

    @Test("an arch whose QEMU is not installed names the package: an error for plan, a warning for validate")
    func archWithoutQEMU() async throws {
        let w = try Workspace("lt2")
        defer { w.cleanUp() }
        // An empty PATH: no qemu-system-s390x can be found (nor any other).
        let vms = try w.manifest("z", bareVM("z").replacingOccurrences(of: "  runState:", with: "  arch: s390x\n  runState:")
            .replacingOccurrences(of: "type: q35, ", with: ""))
        let env = w.env.merging(["PATH": w.dir.file("empty-bin")]) { _, b in b }
        let plan = try await QemuctlBinary.run(["plan", "-f", vms], environment: env)
        #expect(plan.status == 1)
        #expect(plan.err.contains("\(vms)/z.yaml:5:"), "\(plan.err)")
        #expect(plan.err.contains("qemu-system-s390x") && plan.err.contains("qemu-system-misc"), "\(plan.err)")
        let validate = try await QemuctlBinary.run(["validate", "-f", vms], environment: env)
        #expect(validate.err.contains("warning: VM 'z': QEMU binary not found: qemu-system-s390x"), "\(validate.err)")
        #expect(validate.err.contains("apt-get install qemu-system-misc"), "\(validate.err)")
    }
}
