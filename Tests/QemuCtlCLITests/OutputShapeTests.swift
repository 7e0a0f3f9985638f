import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// The top-level scalars of `qemuctl get -o yaml`'s items, as strings (`null` stays `null`).
private func yamlItems(_ text: String) -> [[String: String]] {
    var items: [[String: String]] = []
    for line in text.split(separator: "\n") {
        let isNew = line.hasPrefix("- ")
        let body = line.dropFirst(2)
        guard let colon = body.firstIndex(of: ":") else { continue }
        if isNew { items.append([:]) }
        var value = String(body[body.index(colon, offsetBy: 2)...])
        if value.hasPrefix("\"") { value = String(value.dropFirst().dropLast()) }
        items[items.count - 1][String(body[..<colon])] = value
    }
    return items
}

/// The JSON array of `qemuctl get -o json`, each value as the YAML would show it.
private func jsonItems(_ text: String) throws -> [[String: String]] {
    guard case .array(let array) = try JSONValue(parsing: text) else { return [] }
    return array.map { item in
        guard case .object(let members) = item else { return [:] }
        return members.mapValues { value -> String in
            switch value {
            case .null: "null"
            case .bool(let b): b ? "true" : "false"
            case .int(let i): String(i)
            case .double(let d): String(d)
            case .string(let s): s
            default: value.description
            }
        }
    }
}

/// #21 item 5 (one shape per output), and #21 item 4 / #14 finding 13 seen from `apply --prune`.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool)
struct OutputShapeTests {
    @Test func getJSONAndYAMLShowTheSameKeysWithNullsWhetherRunningOrNot() async throws {
        let w = try Workspace("os1")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("g", bareVM("g"))).status == 0)
        let keys: Set<String> = ["name", "state", "ready", "accelerator", "cpus", "memory", "uptimeSeconds", "restarts", "restartPending", "detail", "ip", "os"]
        for phase in ["running", "killed"] {
            if phase == "killed" {
                let pid = try #require(w.pid("g"))
                kill(pid, SIGKILL)
                #expect(await processExits(pid))
                // The keeper appends QEMU's end to qemu.log just after reaping it: until then get can only
                // say "stale socket". Both formats are compared once the exit is on record.
                let log = "\(w.state)/g/qemu.log"
                for _ in 0..<200 where !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("qemuctl-keeper:") {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let json = try await w.qemuctl("get", "-o", "json")
            let yaml = try await w.qemuctl("get", "-o", "yaml")
            #expect(json.status == 0 && yaml.status == 0, "\(json.err)\(yaml.err)")
            let fromJSON = try jsonItems(json.out), fromYAML = yamlItems(yaml.out)
            #expect(fromJSON.count == 1 && fromYAML.count == 1, "\(json.out)\(yaml.out)")
            #expect(Set(fromJSON.first?.keys.map { $0 } ?? []) == keys, "\(phase): \(json.out)")
            #expect(Set(fromYAML.first?.keys.map { $0 } ?? []) == keys, "\(phase): \(yaml.out)")
            for key in keys where key != "uptimeSeconds" {
                #expect(fromJSON.first?[key] == fromYAML.first?[key], "\(phase) \(key): \(json.out) vs \(yaml.out)")
            }
            if phase == "killed" {
                #expect(fromJSON.first?["accelerator"] == "null" && fromYAML.first?["accelerator"] == "null")
                #expect(fromJSON.first?["uptimeSeconds"] == "null" && fromYAML.first?["uptimeSeconds"] == "null")
                #expect(fromJSON.first?["state"] == "not running")
            } else {
                #expect(fromJSON.first?["accelerator"] == "tcg" && fromJSON.first?["detail"] == "null")
            }
        }
    }

    @Test("get -o wide adds IP and OS; without an answering guest agent they are - (json and yaml: null), and get still returns")
    func getWideWithoutAnAgent() async throws {
        let w = try Workspace("os3")
        defer { w.cleanUp() }
        // guestAgent: true gives the agent channel, but no guest runs an agent behind it.
        let vms = try w.manifest("a", bareVM("a", extra: "  guestAgent: true") + "\n---\n" + bareVM("b"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let started = ContinuousClock.now
        let wide = try await w.qemuctl("get", "-o", "wide", "-v")
        let took = ContinuousClock.now - started
        #expect(wide.status == 0, "\(wide.err)")
        let lines = wide.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.first?.suffix(2) == ["IP", "OS"], "\(wide.out)")
        #expect(lines.count == 3 && lines.dropFirst().allSatisfy { $0.suffix(2) == ["-", "-"] }, "\(wide.out)")
        // Only the VM with an agent channel is asked (within 1.5 s); generous for a loaded machine.
        #expect(wide.err.contains("qemuctl: asking the guest agents of a for the address and OS"), "\(wide.err)")
        #expect(took < .seconds(20), "get -o wide took \(took)")
        let plain = try await w.qemuctl("get")
        #expect(!plain.out.contains(" IP ") && plain.out.split(separator: "\n").first?.hasSuffix("RESTART-PENDING") == true, "\(plain.out)")
        let fromJSON = try jsonItems(try await w.qemuctl("get", "-o", "json").out)
        let fromYAML = yamlItems(try await w.qemuctl("get", "-o", "yaml").out)
        #expect(fromJSON.count == 2 && fromYAML.count == 2)
        for item in fromJSON + fromYAML {
            #expect(item["ip"] == "null" && item["os"] == "null", "\(item)")
        }
    }

    @Test func eventsSinceStartKeepsTheJournalsMillisecondsSoTimeNeverRunsBackwards() async throws {
        let w = try Workspace("os2")
        defer { w.cleanUp() }
        #expect(try await w.qemuctl("apply", "-f", try w.manifest("t", bareVM("t"))).status == 0)
        #expect(try await w.qemuctl("pause", "t").status == 0)
        #expect(try await w.qemuctl("resume", "t").status == 0)
        // The journal's stamps carry milliseconds: 2026-11-26T00:48:18.123Z.
        let journal = try String(contentsOfFile: "\(w.state)/t/journal.log", encoding: .utf8)
        let stamps = journal.split(separator: "\n").map { String($0.prefix { $0 != " " }) }
        #expect(stamps.count >= 3)
        #expect(stamps.allSatisfy { $0.count == 24 && $0.hasSuffix("Z") && $0.dropFirst(19).first == "." }, "\(journal)")
        let events = try QemuctlBinary.Background(["events", "--json", "--since-start", "t"], environment: w.env)
        defer { events.kill() }
        #expect(await events.waitForLine { $0.contains("VM_FOLLOWED") } != nil, "\(events.err)")
        let lines = jsonLines(events)
        let replayed = lines.filter { $0["source"]?.stringValue == "journal" }
        #expect(replayed.count >= 3 && replayed.first?["event"]?.stringValue == "VM_STARTED")
        let times = replayed.compactMap { $0["timestamp"]?.doubleValue }
        #expect(times.count == replayed.count)
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 }, "time runs backwards: \(replayed.map(\.description))")
        // The printed text keeps the journal's own stamp (not a whole second padded with .000).
        let printed = replayed.dropFirst().compactMap { $0["time"]?.stringValue }
        #expect(printed.allSatisfy { stamps.contains($0) }, "\(printed) vs \(stamps)")
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
    }

    @Test func applyPruneOfInputWithoutManifestsOrWithADanglingSymlinkChangesNothing() async throws {
        let w = try Workspace("os3")
        defer { w.cleanUp() }
        let vms = try w.manifest("keep", bareVM("keep"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("keep"))
        for (input, found) in [("", "the input is empty"), ("# nothing here\n", "only comments or blank lines"),
                               ("---\n", "only empty documents")] {
            let r = try await QemuctlBinary.run(["apply", "-f", "-", "--prune"], environment: w.env, stdin: input,
                                                directory: w.dir.path)
            #expect(r.status != 0)
            #expect(r.err.contains("-:1:1: error: no manifest in standard input: \(found)"), "\(r.err)")
            #expect(!r.out.contains("deleted"))
        }
        // A dangling symlink beside the manifest: refused like an unreadable file, nothing deleted.
        try FileManager.default.createSymbolicLink(atPath: w.dir.file("vms/gone.yaml"), withDestinationPath: w.dir.file("nowhere.yaml"))
        try FileManager.default.removeItem(atPath: w.dir.file("vms/keep.yaml"))
        try FileManager.default.createSymbolicLink(atPath: w.dir.file("vms/keep.yaml"), withDestinationPath: w.dir.file("moved.yaml"))
        let r = try await w.qemuctl("apply", "-f", vms, "--prune")
        #expect(r.status != 0)
        #expect(r.err.contains("cannot read '\(vms)/keep.yaml': No such file or directory (a symbolic link whose target cannot be read)"), "\(r.err)")
        #expect(!r.out.contains("deleted"))
        #expect(w.pid("keep") == pid && kill(pid, 0) == 0)
        #expect(try await w.qemuctl("get", "keep", "-o", "json").out.contains("\"state\" : \"running\""))
    }
}
