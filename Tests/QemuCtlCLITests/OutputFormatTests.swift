import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `text` parsed as JSON with Foundation's parser (not qemuctl's own).
private func parsedJSON(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
}

/// `text` parsed as YAML by PyYAML and handed back as JSON, parsed by Foundation.
private func parsedYAML(_ text: String) async throws -> Any {
    let r = try await QemuctlBinary.run(
        ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))"],
        stdin: text, executable: "/usr/bin/python3")
    #expect(r.status == 0, "PyYAML refused: \(r.err)\n\(text)")
    return try parsedJSON(r.out)
}

/// Whether two parsed JSON trees are equal (compared as canonical JSON text, keys sorted).
private func same(_ a: Any, _ b: Any) -> Bool {
    func canonical(_ v: Any) -> Data? { try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) }
    guard let x = canonical(a), let y = canonical(b) else { return false }
    return x == y
}

/// #19 item 1: `-o/--output text|json|yaml` on every read command; item 2: plan values are JSON
/// values, a create shows sizes, throttles and port forwards; item 3: a manifest given without -f.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool)
struct OutputFormatTests {
    @Test("diff, plan, validate and apply print the same object as -o json and -o yaml")
    func readCommandsPrintJSONAndYAML() async throws {
        let w = try Workspace("of1")
        defer { w.cleanUp() }
        let vms = try w.manifest("o", bareVM("o"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        try w.manifest("o", bareVM("o", runState: "paused"))
        let commands: [[String]] = [
            ["diff", "-f", vms], ["plan", "-f", vms], ["validate", "-f", vms], ["apply", "-f", vms, "--dry-run"],
        ]
        for command in commands {
            let json = try await w.qemuctl(command + ["-o", "json"])
            let yaml = try await w.qemuctl(command + ["-o", "yaml"])
            #expect(json.status == yaml.status, "\(command): \(json.err) \(yaml.err)")
            let fromJSON = try parsedJSON(json.out)
            let documents = try #require(try await parsedYAML(yaml.out) as? [Any])
            #expect(documents.count == 1, "\(command): \(yaml.out)")
            // Both formats carry the same keys and values (YAML has no fingerprint-free form: same plan).
            #expect(same(fromJSON, documents.first as Any), "\(command):\n\(json.out)\nvs\n\(yaml.out)")
        }
        // The plan says what changes, as JSON values (not a string holding a quoted string).
        let plan = try #require(try parsedJSON(try await w.qemuctl("plan", "-f", vms, "-o", "json").out) as? [String: Any])
        let vm = try #require((plan["vms"] as? [[String: Any]])?.first)
        #expect(vm["action"] as? String == "update")
        let runState = try #require((vm["changes"] as? [[String: Any]])?.first { $0["path"] as? String == "spec.runState" })
        #expect(runState["old"] as? String == "running" && runState["new"] as? String == "paused", "\(runState)")
        // --json stays as -o json.
        let alias = try await w.qemuctl("plan", "-f", vms, "--json")
        #expect(alias.status == 0)
        #expect(try parsedJSON(alias.out) is [String: Any])
        // apply -o json carries the result of each VM and the exit status.
        let applied = try await w.qemuctl("apply", "-f", vms, "-o", "json")
        #expect(applied.status == 0, "\(applied.err)")
        let report = try #require(try parsedJSON(applied.out) as? [String: Any], "\(applied.out)")
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(results.contains { $0["name"] as? String == "o" && $0["status"] as? String == "updated" }, "\(applied.out)")
        #expect(report["exitStatus"] as? Int == 0)
        #expect((report["counts"] as? [String: Int])?["updated"] == 1)
        let status = try await QMPClient.withConnection(to: "\(w.state)/o.sock") { try await $0.queryStatus().status }
        #expect(status == "paused")
    }

    @Test("a create plan carries values as JSON values and lists image sizes, throttles and port forwards")
    func createPlanShowsSizesThrottlesAndForwards() async throws {
        let w = try Workspace("of2")
        defer { w.cleanUp() }
        let vms = try w.manifest("c", bareVM("c", extra: """
              disks:
                - name: root
                  file: {path: \(w.dir.file("c.qcow2")), format: qcow2}
                  create: {size: 1GiB}
                  throttle: {bps: 10MiB, iops: 200}
              networks:
                - name: net0
                  user: {hostfwd: ["tcp::2222-:22"]}
            """))
        let text = try await w.qemuctl("plan", "-f", vms)
        #expect(text.status == 0, "\(text.err)")
        for line in ["+ spec.disks[root].create.size: 1GiB", "+ spec.disks[root].throttle.bps: 10MiB",
                     "+ spec.disks[root].throttle.iops: 200", #"+ spec.networks[net0].user.hostfwd: ["tcp::2222-:22"]"#] {
            #expect(text.out.contains(line), "\(line) in \(text.out)")
        }
        let json = try await w.qemuctl("plan", "-f", vms, "-o", "json")
        let plan = try #require(try parsedJSON(json.out) as? [String: Any])
        let changes = try #require(((plan["vms"] as? [[String: Any]])?.first?["changes"]) as? [[String: Any]])
        func change(_ path: String) -> [String: Any]? { changes.first { $0["path"] as? String == path } }
        // A string is a JSON string, not a JSON string holding a quoted one (`"\"q35\""`).
        #expect(change("spec.machine.type")?["new"] as? String == "q35", "\(json.out)")
        #expect(change("spec.machine.type")?["newText"] as? String == "\"q35\"")
        #expect(change("metadata.labels[team]")?["new"] as? String == "test")
        #expect(change("spec.disks[root].throttle.iops")?["new"] as? Int == 200)
        #expect(change("spec.disks[root].create.size")?["new"] as? String == "1GiB")
        #expect(change("spec.networks[net0].user.hostfwd")?["new"] as? [String] == ["tcp::2222-:22"])
        #expect(change("spec.machine.type")?["old"] is NSNull)
        // The YAML of the same plan (quotes, colons, brackets and commas in its values) reads back as the JSON.
        let yaml = try await w.qemuctl("plan", "-f", vms, "-o", "yaml")
        let documents = try #require(try await parsedYAML(yaml.out) as? [Any])
        #expect(documents.count == 1 && same(plan, documents[0]), "\(json.out)\nvs\n\(yaml.out)")
        // A saved plan with these values is applied exactly (the encoding round-trips under its authentication).
        #expect(try await w.qemuctl("plan", "-f", vms, "--out", w.dir.file("plan.json")).status == 0)
        let applied = try await w.qemuctl("apply", w.dir.file("plan.json"))
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        #expect(w.pid("c") != nil)
    }

    @Test("plan -o FILE is refused with a hint to use --out, and writes nothing")
    func planOutputIsAFormat() async throws {
        let w = try Workspace("of3")
        defer { w.cleanUp() }
        let vms = try w.manifest("p", bareVM("p"))
        let r = try await w.qemuctl("plan", "-f", vms, "-o", "plan.json")
        #expect(r.status == 1)
        #expect(r.err.contains("to save the plan use --out plan.json"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: w.dir.file("plan.json")))
        #expect(!FileManager.default.fileExists(atPath: w.dir.file("json")))
        let bad = try await w.qemuctl("diff", "-f", vms, "-o", "xml")
        #expect(bad.status == 2, "\(bad.err)")
    }

    @Test("apply MANIFEST without -f names it a manifest and suggests apply -f, never a plan over it")
    func applyWithoutDashF() async throws {
        let w = try Workspace("of4")
        defer { w.cleanUp() }
        let vms = try w.manifest("m", bareVM("m"))
        let before = try String(contentsOfFile: "\(vms)/m.yaml", encoding: .utf8)
        for path in ["\(vms)/m.yaml", vms] {
            let r = try await w.qemuctl("apply", path)
            #expect(r.status == 2)
            #expect(r.err.contains("\(path) is a manifest"), "\(r.err)")
            #expect(r.err.contains("qemuctl apply -f \(path)"), "\(r.err)")
            #expect(!r.err.contains("--out \(path)") && !r.err.contains("-o \(path)"), "\(r.err)")
        }
        #expect(try String(contentsOfFile: "\(vms)/m.yaml", encoding: .utf8) == before)
        #expect(w.pid("m") == nil)
    }

    @Test("events -o json prints one object per line and -o yaml one document per event")
    func eventsFormats() async throws {
        let w = try Workspace("of5")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("e", bareVM("e"))).status == 0)
        for format in ["json", "yaml"] {
            let events = try QemuctlBinary.Background(["events", "-o", format], environment: w.env)
            defer { events.kill() }
            let followed = await events.waitForLine { $0.contains("VM_FOLLOWED") }
            #expect(followed != nil, "\(format): \(events.err)")
            events.send(SIGINT)
            #expect(await events.exitStatus() == 0)
            let out = events.lines.joined(separator: "\n") + "\n"
            let objects: [Any]
            if format == "json" {
                objects = try events.lines.filter { !$0.isEmpty }.map(parsedJSON)
            } else {
                #expect(out.hasPrefix("---"), "\(out)")
                objects = try #require(try await parsedYAML(out) as? [Any])
            }
            let first = try #require(objects.first as? [String: Any], "\(format): \(out)")
            #expect(first["vm"] as? String == "e")
            #expect(first["event"] as? String == "VM_FOLLOWED")
            #expect((first["data"] as? [String: Any])?["status"] as? String == "running", "\(format): \(out)")
        }
    }
}
