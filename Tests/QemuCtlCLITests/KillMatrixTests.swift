import Foundation
import QMP
import QemuCtlTestSupport
import Testing

// The kill matrix: `qemuctl` dies by SIGKILL at each fault point (the list is the
// `FaultPoint` enum in Sources/QemuCtl/Internal/FaultPoint.swift, selected by
// QEMUCTL_FAULT in debug builds), and the next run without the fault must converge
// with nothing lost and nothing launched twice.

/// One cell of the matrix.
struct KillCase: Sendable, CustomTestStringConvertible {
    /// What the faulted run does.
    enum Scenario: String, Sendable {
        /// `apply` of a VM that does not exist yet.
        case create
        /// `apply --restart=if-needed` of a restart-class edit to a running VM.
        case restart
        /// `apply` of a live edit (runState paused) to a running VM.
        case update
        /// `delete` of a running VM.
        case delete
    }

    var point: String
    var nth: Int = 1
    var scenario: Scenario = .create

    var fault: String { nth == 1 ? point : "\(point):\(nth)" }
    var testDescription: String { "\(scenario.rawValue) @ \(fault)" }
}

/// Fault points × scenarios; every point of the enum appears at least once
/// (`everyFaultPointIsInTheMatrix` checks against the enum's source).
let killMatrix: [KillCase] = [
    KillCase(point: "after-lock"),
    KillCase(point: "after-disk-create"),
    KillCase(point: "before-spawn"),
    KillCase(point: "spawned-unrecorded"),
    KillCase(point: "after-spawn"),
    KillCase(point: "before-record"),
    KillCase(point: "after-record"),
    KillCase(point: "before-cont"),
    KillCase(point: "after-verify"),
    KillCase(point: "mid-journal-write"),
    KillCase(point: "mid-journal-write", nth: 3),
    KillCase(point: "mid-state-write"),       // the record written before QEMU starts
    KillCase(point: "mid-state-write", nth: 2),  // the record with QEMU's pid
    KillCase(point: "mid-state-write", nth: 3),  // the record once the NIC link is down
    KillCase(point: "mid-state-write", scenario: .update),
    KillCase(point: "restart-after-stop", scenario: .restart),
    KillCase(point: "after-spawn", scenario: .restart),
    KillCase(point: "spawned-unrecorded", scenario: .restart),
    KillCase(point: "delete-after-stop", scenario: .delete),
    KillCase(point: "after-lock", scenario: .delete),
]

/// A workspace for one matrix cell: one VM `vm` with three disks (a qcow2 and a raw
/// image that exist beforehand with known contents, and a qcow2 that apply creates)
/// and a NIC whose link the manifest wants down (so QEMU starts paused with `-S` and
/// is continued only after set-up).
struct KillWorkspace {
    let w: Workspace
    var kept: String { w.dir.file("kept.qcow2") }
    var raw: String { w.dir.file("known.raw") }
    var fresh: String { w.dir.file("fresh.qcow2") }
    /// The raw image's bytes.
    static let rawBytes = Data((0..<(1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })

    init(_ tag: String) async throws {
        w = try Workspace(tag)
        try await Self.tool("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", kept, "16M"])
        try await Self.tool("/usr/bin/qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 64k", kept])
        try Self.rawBytes.write(to: URL(fileURLWithPath: raw))
    }

    func manifest(memory: String = "64MiB", runState: String = "running") throws -> String {
        try w.manifest("vm", bareVM("vm", runState: runState, extra: """
              disks:
                - name: kept
                  file: {path: \(kept), format: qcow2}
                  create: {size: 16MiB}
                - name: known
                  file: {path: \(raw), format: raw}
                  create: {size: 1MiB}
                - name: fresh
                  file: {path: \(fresh), format: qcow2}
                  create: {size: 8MiB}
              networks:
                - name: net0
                  user: {}
                  link: down
            """).replacingOccurrences(of: "size: 64MiB}", with: "size: \(memory)}"))
    }

    /// Runs a tool and fails unless it exits 0.
    static func tool(_ path: String, _ args: [String]) async throws {
        let (status, output) = try await runTool(path, args)
        guard status == 0 else { throw FixtureError("\(path) \(args) failed: \(output)") }
    }

    /// Problems with the disks: the prepared ones keep their contents, the created one exists.
    func diskProblems() async -> [String] {
        var problems: [String] = []
        if (try? Data(contentsOf: URL(fileURLWithPath: raw))) != Self.rawBytes { problems.append("\(raw) changed") }
        for (file, size, pattern) in [(kept, 16 << 20, true), (fresh, 8 << 20, false)] {
            // -U: QEMU holds the image; reading beside it is safe.
            guard let (status, text) = try? await runTool("/usr/bin/qemu-img", ["info", "-U", "--output=json", file]), status == 0 else {
                problems.append("qemu-img info \(file) failed")
                continue
            }
            let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
            if (json?["virtual-size"] as? Int) != size || (json?["format"] as? String) != "qcow2" {
                problems.append("\(file): \(text)")
            }
            if pattern {
                let read = try? await runTool("/usr/bin/qemu-io", ["-U", "-r", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", file])
                if read?.0 != 0 || read?.1.contains("Pattern verification failed") != false {
                    problems.append("\(file) lost its contents: \(read?.1 ?? "qemu-io did not run")")
                }
            }
        }
        return problems
    }
}

extension Workspace {
    /// Runs qemuctl with `args`.
    func qemuctl(_ args: [String]) async throws -> QemuctlBinary.Run {
        try await QemuctlBinary.run(args, environment: env, directory: dir.path)
    }

    /// Runs qemuctl with extra environment.
    func qemuctl(env extra: [String: String], _ args: [String]) async throws -> QemuctlBinary.Run {
        try await QemuctlBinary.run(args, environment: env.merging(extra) { _, b in b }, directory: dir.path)
    }

    /// QEMUs of this workspace whose command line names VM `name`'s socket.
    func qemus(named name: String) -> [Int32] {
        qemus().filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("/\(name).sock")
        }
    }

    /// Every state file that does not parse: records (JSON with a uuid), journals
    /// (each complete line an ISO-8601 stamp and text), pid files, the marker key, the
    /// accelerator cache, and leftover temporary files.
    func unreadableStateFiles() -> [String] {
        var bad: [String] = []
        let stamp = ISO8601DateFormatter()
        stamp.formatOptions = [.withInternetDateTime, .withFractionalSeconds]  // journal stamps carry milliseconds
        let fm = FileManager.default
        for entry in (try? fm.subpathsOfDirectory(atPath: state)) ?? [] {
            let path = "\(state)/\(entry)"
            let base = (entry as NSString).lastPathComponent
            let data = fm.contents(atPath: path) ?? Data()
            switch base {
            case "record.json":
                let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
                if ((json?["launch"] as? [String: Any])?["uuid"] as? String) == nil { bad.append(path) }
            case "journal.log":
                // Complete lines are entries; an unterminated last line is a torn write that
                // readers ignore and the next append cuts off (Posix.appendLine).
                let text = String(decoding: data, as: UTF8.self)
                for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                    let parts = line.split(separator: " ", maxSplits: 1)
                    // One entry per line: a torn entry merged into the next would show a second stamp.
                    if parts.count != 2 || stamp.date(from: String(parts[0])) == nil
                        || parts[1].range(of: #"\d{4}-\d\d-\d\dT\d\d:"#, options: .regularExpression) != nil {
                        bad.append("\(path): '\(line)'")
                    }
                }
            case "qemu.pid":
                if Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) == nil { bad.append(path) }
            case ".marker-key":
                if data.count != 32 { bad.append(path) }
            case ".accelerator-cache.json":
                if (try? JSONSerialization.jsonObject(with: data)) == nil { bad.append(path) }
            default:
                if base.contains(".tmp.") { bad.append(path + " (leftover temporary file)") }
            }
        }
        return bad
    }

    /// The QMP run status of VM `name`.
    func status(_ name: String) async throws -> String {
        try await QMPClient.withConnection(to: "\(state)/\(name).sock", timeout: .seconds(10)) {
            try await $0.queryStatus(timeout: .seconds(10)).status
        }
    }
}

@Suite(.timeLimit(.minutes(5)), .offPool) struct KillMatrixTests {
    /// Create-scenario faults that hit after QEMU started and before its link was set down.
    static let diedBeforeSetLink: Set<String> = ["spawned-unrecorded", "after-spawn", "before-record", "after-record", "mid-state-write:2"]

    /// How many cells run at once: each runs its own QEMU and several qemuctl
    /// processes, and the rest of the suite shares the machine.
    static let parallelCells = 2

    /// Every cell of ``killMatrix``, a few at a time, each in its own temporary state directory.
    @Test func everyKilledRunIsFinishedByTheNextApply() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        await withTaskGroup(of: Void.self) { group in
            var cells = killMatrix.makeIterator()
            func next() -> Bool {
                guard let c = cells.next() else { return false }
                group.addTask {
                    do { try await Self.run(c) } catch { Issue.record(error, "\(c.testDescription)") }
                }
                return true
            }
            for _ in 0..<Self.parallelCells where next() {}
            while await group.next() != nil { _ = next() }
        }
        print("kill-matrix: \(killMatrix.count) cells in \(clock.now - started)")
    }

    static func run(_ c: KillCase) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let k = try await KillWorkspace("km")
        let w = k.w
        defer { w.cleanUp() }
        var vms = try k.manifest()
        let fault = ["QEMUCTL_FAULT": c.fault]

        // Set-up before the faulted run.
        var faultedArgs = ["apply", "-f", vms, "--stop-timeout", "1"]
        switch c.scenario {
        case .create:
            break
        case .restart:
            let first = try await w.qemuctl("apply", "-f", vms)
            #expect(first.status == 0, "[\(c.testDescription)] \(first.out)\(first.err)")
            vms = try k.manifest(memory: "96MiB")
            faultedArgs += ["--restart", "if-needed"]
        case .update:
            let first = try await w.qemuctl("apply", "-f", vms)
            #expect(first.status == 0, "[\(c.testDescription)] \(first.out)\(first.err)")
            vms = try k.manifest(runState: "paused")
        case .delete:
            let first = try await w.qemuctl("apply", "-f", vms)
            #expect(first.status == 0, "[\(c.testDescription)] \(first.out)\(first.err)")
            faultedArgs = ["delete", "vm", "--stop-timeout", "1"]
        }

        // The faulted run dies by SIGKILL at its point (a renamed point would exit 99).
        let killed = try await w.qemuctl(env: fault, faultedArgs)
        #expect(killed.signal == SIGKILL, "[\(c.testDescription)] status \(killed.status): \(killed.out)\(killed.err)")
        #expect(killed.err.contains("fault point \(c.point) reached (hit \(c.nth))"), "[\(c.testDescription)] \(killed.err)")
        #expect(w.qemus(named: "vm").count <= 1, "[\(c.testDescription)]")

        // The next run converges.
        if c.scenario == .delete {
            let again = try await w.qemuctl("delete", "vm", "--stop-timeout", "1")
            #expect(again.status == 0, "[\(c.testDescription)] \(again.out)\(again.err)")
            #expect(w.qemus().isEmpty, "[\(c.testDescription)]")
            #expect(!FileManager.default.fileExists(atPath: "\(w.state)/vm"), "[\(c.testDescription)]")
            #expect(!FileManager.default.fileExists(atPath: "\(w.state)/vm.sock"), "[\(c.testDescription)]")
            do {
            let problems = await k.diskProblems()
            #expect(problems.isEmpty, "[\(c.testDescription)] \(problems)")
        }
        }
        let restart = c.scenario == .restart ? ["--restart", "if-needed"] : []
        let recovered = try await w.qemuctl(["apply", "-f", vms, "--stop-timeout", "1"] + restart)
        #expect(recovered.status == 0, "[\(c.testDescription)] \(recovered.out)\(recovered.err)")
        if c.scenario == .create && Self.diedBeforeSetLink.contains(c.fault) {
            // QMP cannot read a NIC's link state back, so the record must not claim "down"
            // before set_link did it: the recovery has to set it.
            #expect(recovered.out.contains("spec.networks[net0].link down"), "[\(c.testDescription)] \(recovered.out)")
        }
        let want = c.scenario == .update ? "paused" : "running"
        #expect(try await w.status("vm") == want, "[\(c.testDescription)]")
        let pids = w.qemus()
        #expect(pids.count == 1, "[\(c.testDescription)] orphan or duplicate QEMUs: \(pids)")
        #expect(w.qemus(named: "vm") == pids, "[\(c.testDescription)]")
        #expect(w.pid("vm") == pids.first, "[\(c.testDescription)]")
        #expect(w.unreadableStateFiles().isEmpty, "[\(c.testDescription)] \(w.unreadableStateFiles())")
        // The record names the QEMU that runs, with what a launch records (a launch killed before
        // it recorded the pid is completed by the next lock holder).
        let record = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: "\(w.state)/vm/record.json"))) as? [String: Any])
        #expect((record["pid"] as? Int).map(Int32.init) == pids.first, "[\(c.testDescription)] \(record)")
        #expect(((record["process"] as? [String: Any])?["pid"] as? Int).map(Int32.init) == pids.first, "[\(c.testDescription)]")
        #expect(record["accelerator"] as? String == "tcg", "[\(c.testDescription)] \(record["accelerator"] ?? "none")")
        let startedAt = try #require(record["startedAt"] as? Double, "[\(c.testDescription)]")
        #expect(abs(startedAt - Date().timeIntervalSince1970) < 600, "[\(c.testDescription)] startedAt \(startedAt)")
        do {
            let problems = await k.diskProblems()
            #expect(problems.isEmpty, "[\(c.testDescription)] \(problems)")
        }
        if c.scenario == .restart {
            // The relaunch has the new memory size.
            let cmdline = try String(contentsOfFile: "/proc/\(pids.first ?? 0)/cmdline", encoding: .utf8)
            #expect(cmdline.contains("96M") || cmdline.contains("100663296"), "[\(c.testDescription)] \(cmdline)")
        }

        // A third run has nothing to do.
        let third = try await w.qemuctl(["apply", "-f", vms] + restart)
        #expect(third.status == 0, "[\(c.testDescription)] \(third.out)\(third.err)")
        #expect(third.out.contains("No changes: 1 VM matches the manifests."), "[\(c.testDescription)] \(third.out)")
        #expect(w.qemus() == pids, "[\(c.testDescription)]")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0, "[\(c.testDescription)]")
        let unreadable = w.unreadableStateFiles().count, disks = await k.diskProblems().isEmpty ? "intact" : "DAMAGED"
        let converged = recovered.status == 0 && third.out.contains("No changes") ? "converged" : "NOT converged"
        print("kill-matrix: \(c.testDescription): \(converged), QEMUs \(w.qemus().count) for 1 VM, unreadable files \(unreadable), "
              + "disks \(disks), \(clock.now - started)")
    }

    /// Every point of the enum is in the matrix, and the matrix names no other.
    @Test func everyFaultPointIsInTheMatrix() throws {
        let source = try String(contentsOfFile: Fixtures.repoRoot + "/Sources/QemuCtl/Internal/FaultPoint.swift", encoding: .utf8)
        let declared = Set(source.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: #"^\s*case \w+ = "([a-z-]+)""#, options: .regularExpression) else { return nil }
            return line[r].split(separator: "\"").dropFirst().first.map(String.init)
        })
        #expect(declared.count >= 12)
        #expect(declared == Set(killMatrix.map(\.point)))
    }

    /// A misspelt point is not mistaken for a survived run.
    @Test func unknownFaultPointIsRefused() async throws {
        let w = try Workspace("kmx")
        defer { w.cleanUp() }
        let vms = try w.manifest("x", bareVM("x"))
        let run = try await w.qemuctl(env: ["QEMUCTL_FAULT": "after-nothing"], ["apply", "-f", vms])
        #expect(run.status == 99)
        #expect(run.err.contains("QEMUCTL_FAULT=after-nothing names no fault point"))
        #expect(w.qemus().isEmpty)
    }
}
