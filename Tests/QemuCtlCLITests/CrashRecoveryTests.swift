import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Wall time of `body`.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try await body()
    return (value, clock.now - start)
}

/// Whether process `pid` is stopped (state T in /proc/PID/stat), waiting up to 10 s.
func processStops(_ pid: Int32) async -> Bool {
    for _ in 0..<1000 {
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           stat.split(separator: ")").last?.split(separator: " ").first == "T" {
            return true
        }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

/// A wedged QEMU, damaged state files and a full disk: reported clearly, never a crash,
/// never a second QEMU; apply recovers what it can.
@Suite(.serialized, .timeLimit(.minutes(5)), .offPool) struct CrashRecoveryTests {
    /// Every command's deadline (`--timeout`, seconds) and the allowance for a loaded machine on top.
    /// (A hung command would never return; the margin only absorbs a machine loaded by other tests.)
    static let deadline = 2.0
    static let margin: Duration = .seconds(25)

    @Test func stoppedQEMUIsUnresponsiveWithinTheDeadlineAndNeverLaunchedTwice() async throws {
        let w = try Workspace("cr1")
        defer { w.cleanUp() }
        try w.manifest("s1", bareVM("s1"))
        var vms = try w.manifest("s2", bareVM("s2"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let wedged = try #require(w.pid("s1"))
        let other = try #require(w.pid("s2"))
        #expect(kill(wedged, SIGSTOP) == 0)
        defer { kill(wedged, SIGCONT) }
        #expect(await processStops(wedged))
        let limit = Duration.seconds(Self.deadline) + Self.margin
        let t = String(Self.deadline)

        let (get, getTime) = try await timed { try await w.qemuctl("get", "--timeout", t, "-o", "json") }
        #expect(get.status == 0 && get.signal == nil, "\(get.err)")
        #expect(get.out.contains("\"unresponsive\""), "\(get.out)")
        #expect(get.out.contains("\"running\""))  // s2
        #expect(getTime < limit, "get took \(getTime)")

        let (diff, diffTime) = try await timed { try await w.qemuctl("diff", "-f", vms, "--timeout", t) }
        #expect(diff.status == 2, "\(diff.out)\(diff.err)")  // a VM could not be compared
        #expect(diff.out.contains("unresponsive"), "\(diff.out)")
        #expect(diffTime < limit, "diff took \(diffTime)")

        // The other VM of the same apply still converges.
        vms = try w.manifest("s2", bareVM("s2", runState: "paused"))
        let (apply, applyTime) = try await timed { try await w.qemuctl("apply", "-f", vms, "--timeout", t) }
        #expect(apply.status == 1, "\(apply.out)\(apply.err)")  // s1 skipped
        #expect(apply.out.contains("s1: skipped"), "\(apply.out)")
        #expect(apply.out.contains("unresponsive"))
        #expect(apply.out.contains("s2: updated"))
        #expect(applyTime < limit + .seconds(Self.deadline), "apply took \(applyTime)")
        #expect(try await w.status("s2") == "paused")

        let (delete, deleteTime) = try await timed {
            try await w.qemuctl("delete", "s1", "--timeout", t, "--stop-timeout", "1")
        }
        #expect(delete.status == 1 && delete.signal == nil, "\(delete.out)\(delete.err)")
        #expect(delete.out.contains("unresponsive"), "\(delete.out)")
        #expect(deleteTime < limit, "delete took \(deleteTime)")
        #expect(FileManager.default.fileExists(atPath: "\(w.state)/s1/record.json"))  // not forgotten

        print("unresponsive (--timeout \(t) s): get \(getTime), diff \(diffTime), apply \(applyTime), delete \(deleteTime)")
        // Nothing was launched a second time; once it runs again everything is consistent.
        #expect(Set(w.qemus()) == [wedged, other])
        kill(wedged, SIGCONT)
        let after = try await w.qemuctl("apply", "-f", vms)
        #expect(after.status == 0, "\(after.out)\(after.err)")
        #expect(after.out.contains("No changes: 2 VMs match the manifests."), "\(after.out)")
        #expect(try await w.status("s1") == "running")
        #expect(Set(w.qemus()) == [wedged, other])
        #expect(w.qemus(named: "s1") == [wedged])
    }

    @Test func killedQEMUIsGoneInDiffAndRelaunchedOnce() async throws {
        let w = try Workspace("cr2")
        defer { w.cleanUp() }
        let vms = try w.manifest("k", bareVM("k"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let old = try #require(w.pid("k"))
        kill(old, SIGKILL)
        #expect(await processExits(old))
        let get = try await w.qemuctl("get", "k")
        #expect(get.out.contains("not running"), "\(get.out)")
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 1)
        #expect(diff.out.contains("not running"), "\(diff.out)")
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(again.out.contains("k: created"))
        #expect(w.qemus().count == 1 && w.qemus() != [old])
        #expect(try await w.qemuctl("apply", "-f", vms).out.contains("No changes"))
    }

    /// A record that is empty, half-written or garbage, for a VM whose QEMU still answers:
    /// a clear error naming the file, exit codes (not signals), the QEMU left alone and
    /// never launched twice, and the documented recovery (delete, then apply) works.
    @Test(arguments: ["empty", "half", "garbage"])
    func unreadableRecordOfARunningVM(_ damage: String) async throws {
        let w = try Workspace("cr3")
        defer { w.cleanUp() }
        let vms = try w.manifest("g", bareVM("g"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("g"))
        let record = "\(w.state)/g/record.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: record))
        let bytes: Data = switch damage {
        case "empty": Data()
        case "half": original.prefix(original.count / 2)
        default: Data([0x00, 0xff, 0x7b, 0x22]) + Data("garbage\n".utf8)
        }
        try bytes.write(to: URL(fileURLWithPath: record))

        for args in [["get"], ["diff", "-f", vms], ["apply", "-f", vms]] {
            let run = try await w.qemuctl(args)
            #expect(run.signal == nil, "\(args): killed by signal \(run.signal ?? 0)")
            #expect(run.err.contains("\(record) is unreadable"), "\(args): \(run.err)")
            let expected: Int32 = switch args[0] { case "get": 0; case "diff": 2; default: 1 }
            #expect(run.status == expected, "\(args): \(run.status) \(run.out)\(run.err)")
            if args[0] != "get" {
                #expect(run.out.contains("qemuctl delete g"), "\(args): no recovery hint in \(run.out)")
            }
            #expect(w.qemus() == [pid])
        }
        // Nothing wrote over the damaged file while the VM runs.
        #expect(try Data(contentsOf: URL(fileURLWithPath: record)) == bytes)
        // The hint works: delete stops it (disks would be kept), apply launches it afresh.
        let delete = try await w.qemuctl("delete", "g", "--stop-timeout", "1")
        #expect(delete.status == 0, "\(delete.out)\(delete.err)")
        #expect(await processExits(pid))
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        #expect(w.qemus().count == 1)
        #expect(w.unreadableStateFiles().isEmpty)
    }

    /// Damaged files whose VM is gone, and damaged side files of a running VM.
    @Test func damagedStateFilesAreRecoveredFrom() async throws {
        let w = try Workspace("cr4")
        defer { w.cleanUp() }
        try w.manifest("gone", bareVM("gone"))
        let vms = try w.manifest("live", bareVM("live"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let live = try #require(w.pid("live"))
        let gone = try #require(w.pid("gone"))
        kill(gone, SIGKILL)
        #expect(await processExits(gone))
        // The gone VM's record is garbage: apply launches it again and replaces the file.
        try Data("{\"launch\": {\"uu".utf8).write(to: URL(fileURLWithPath: "\(w.state)/gone/record.json"))
        // The live VM's pid file, journal and the directory's marker key and accelerator cache are damaged.
        try Data("not a pid".utf8).write(to: URL(fileURLWithPath: "\(w.state)/live/qemu.pid"))
        try Data([0xff, 0x00, 0x41]).write(to: URL(fileURLWithPath: "\(w.state)/gone/journal.log"))  // a torn line
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(w.state)/.marker-key"))
        try Data("[[[".utf8).write(to: URL(fileURLWithPath: "\(w.state)/.accelerator-cache.json"))

        let get = try await w.qemuctl("get", "-o", "json")
        #expect(get.status == 0 && get.signal == nil, "\(get.err)")
        #expect(get.err.contains("\(w.state)/gone/record.json is unreadable"), "\(get.err)")
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        #expect(apply.out.contains("gone: created"), "\(apply.out)")
        #expect(!apply.out.contains("live: created"))
        #expect(w.qemus(named: "live") == [live])
        #expect(w.qemus(named: "gone").count == 1)
        #expect(try await w.status("gone") == "running")
        // A damaged pid file does not hide the running QEMU from delete --force.
        let delete = try await w.qemuctl("delete", "live", "--force")
        #expect(delete.status == 0, "\(delete.out)\(delete.err)")
        #expect(await processExits(live))
        #expect(w.qemus(named: "live").isEmpty)
        // The journal's torn tail was cut before new lines were added; the key was replaced.
        let journal = try Data(contentsOf: URL(fileURLWithPath: "\(w.state)/gone/journal.log"))
        #expect(!journal.contains(0xff) && journal.last == 0x0a)
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // The accelerator cache is only a cache: unreadable means empty, and it is rewritten
        // the next time a VM that is not TCG-only needs the probe (none here).
        #expect(w.unreadableStateFiles() == ["\(w.state)/.accelerator-cache.json"], "\(w.unreadableStateFiles())")
    }

    /// `delete --force` of a VM whose QEMU already died: nothing to kill, the record goes (it
    /// once failed with "not proven to be its QEMU: pid N is not running").
    @Test func deleteForceOfAVMWhoseQEMUDiedDeletesIt() async throws {
        let w = try Workspace("cr6")
        defer { w.cleanUp() }
        let vms = try w.manifest("dead", bareVM("dead"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("dead"))
        kill(pid, SIGKILL)
        #expect(await processExits(pid))
        let delete = try await w.qemuctl("delete", "dead", "--force")
        #expect(delete.status == 0, "\(delete.out)\(delete.err)")
        #expect(delete.out.contains("deleted (disk images kept)") && !delete.out.contains("killed"), "\(delete.out)")
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/dead/record.json"))
    }

    /// A state file that cannot be written (file size limit: EFBIG, as on a full disk)
    /// leaves the old file byte for byte, no temporary file, and a clear error.
    @Test func fullDiskWhileWritingStateKeepsTheOldState() async throws {
        let w = try Workspace("cr5")
        defer { w.cleanUp() }
        var vms = try w.manifest("d", bareVM("d"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let record = "\(w.state)/d/record.json"
        let before = try Data(contentsOf: URL(fileURLWithPath: record))
        #expect(before.count > 1024)
        vms = try w.manifest("d", bareVM("d", runState: "paused"))
        // RLIMIT_FSIZE of 1 block with SIGXFSZ ignored: writes past it fail with EFBIG.
        let script = "trap '' XFSZ; ulimit -f 1 && exec \"$0\" \"$@\""
        let limited = try await QemuctlBinary.run(["-c", script, QemuctlBinary.path, "apply", "-f", vms],
                                                  environment: w.env, directory: w.dir.path, executable: "/bin/sh")
        let (outText, errText) = (limited.out, limited.err)
        #expect(limited.signal == nil && limited.status == 1, "\(limited.status) \(outText)\(errText)")
        #expect(outText.contains("cannot write \(record)"), "\(outText)")
        #expect(outText.contains("File too large"))
        #expect(outText.contains("\(record) is unchanged"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: record)) == before)
        #expect(w.unreadableStateFiles().isEmpty, "\(w.unreadableStateFiles())")
        // With room again, apply finishes: the VM is as the manifest says, and stays one QEMU.
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(try await w.status("d") == "paused")
        #expect(w.qemus().count == 1)
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
    }

    /// A relaunch (restart-class edit) on a full state file system: the old QEMU is stopped, the
    /// new launch cannot write its record, and the report says so as it is: the VM was stopped
    /// and not relaunched, it is not running, its disks are intact (a file's "unchanged" is not
    /// the VM's). With room again, the next apply launches it. A real full file system: the state
    /// directory is a small tmpfs (mounting needs root, as CI runs).
    @Test(.enabled(if: geteuid() == 0, "mounting a tmpfs needs root"))
    func aRelaunchOnAFullStateFileSystemIsReportedAsItIs() async throws {
        let k = try await KillWorkspace("cr6")
        let w = k.w
        try FileManager.default.createDirectory(atPath: w.state, withIntermediateDirectories: false)
        let (mounted, mountOutput) = try await runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", w.state])
        try #require(mounted == 0, "\(mountOutput)")
        defer {
            for p in w.qemus() { kill(p, SIGKILL) }
            usleep(300_000)
            umount2(w.state, Int32(MNT_DETACH))
            w.cleanUp()
        }
        let first = try await w.qemuctl("apply", "-f", try k.manifest(), "--stop-timeout", "1")
        #expect(first.status == 0, "\(first.out)\(first.err)")
        let before = w.qemus()
        #expect(before.count == 1)
        // Fill the file system.
        let filler = w.state + "/.filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        try #require(fd >= 0)
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        #expect(errno == ENOSPC)
        close(fd)

        let vms = try k.manifest(memory: "96MiB")
        let full = try await w.qemuctl("apply", "-f", vms, "--restart", "if-needed", "--stop-timeout", "1")
        #expect(full.status == 1, "\(full.out)\(full.err)")
        #expect(full.out.contains("vm: failed"), "\(full.out)")
        #expect(full.out.contains("No space left on device"), "\(full.out)")
        // Which write meets the full disk first depends on timing: before QEMU's spawn (nothing is
        // relaunched) or after it (QEMU runs; its record could not be updated). Each is said as it is.
        let notRelaunched = full.out.contains("vm was stopped for the restart and NOT relaunched: it is not running; its disk images are intact")
        let unrecorded = full.out.contains("QEMU was launched and runs (pid ") && full.out.contains("its record could not be updated; the next apply completes it")
        #expect(notRelaunched != unrecorded, "\(full.out)")
        let get = try await w.qemuctl("get", "vm")
        if notRelaunched {
            #expect(w.qemus().isEmpty, "\(w.qemus())")
            #expect(get.out.contains("not running"), "\(get.out)\(get.err)")
        } else {
            #expect(w.qemus().count == 1, "\(w.qemus())")
            #expect(!get.out.contains("not running"), "\(get.out)\(get.err)")
        }
        do {
            let problems = await k.diskProblems()
            #expect(problems.isEmpty, "\(problems)")
        }

        // With room again, the next apply launches it with the new size.
        try FileManager.default.removeItem(atPath: filler)
        let again = try await w.qemuctl("apply", "-f", vms, "--restart", "if-needed", "--stop-timeout", "1")
        #expect(again.status == 0, "\(again.out)\(again.err)")
        let pids = w.qemus()
        #expect(pids.count == 1)
        let cmdline = try String(contentsOfFile: "/proc/\(pids.first ?? 0)/cmdline", encoding: .utf8)
        #expect(cmdline.contains("96M") || cmdline.contains("100663296"), "\(cmdline)")
        #expect(try await w.status("vm") == "running")
        #expect(w.unreadableStateFiles().isEmpty, "\(w.unreadableStateFiles())")
        let problems = await k.diskProblems()
        #expect(problems.isEmpty, "\(problems)")
    }
}

/// Concurrent applies on one state directory.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool) struct ConcurrencyTests {
    @Test func sixConcurrentAppliesChangeThingsOnce() async throws {
        let w = try Workspace("cc1")
        defer { w.cleanUp() }
        try w.manifest("c1", bareVM("c1"))
        try w.manifest("c2", bareVM("c2"))
        let vms = try w.manifest("c3", bareVM("c3"))
        let runs = try await withThrowingTaskGroup(of: QemuctlBinary.Run.self) { group in
            for _ in 0..<6 { group.addTask { try await w.qemuctl("apply", "-f", vms) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(runs.count == 6)
        #expect(runs.allSatisfy { $0.status == 0 && $0.signal == nil }, "\(runs.map { "\($0.status) \($0.err)" })")
        let changers = runs.filter { $0.out.contains("Applied:") }
        #expect(changers.count == 1)
        #expect(changers.first?.out.contains("Applied: 3 created, 0 updated") == true, "\(changers.first?.out ?? "")")
        #expect(runs.filter { $0.out.contains("No changes: 3 VMs match the manifests.") }.count == 5)
        for name in ["c1", "c2", "c3"] { #expect(w.qemus(named: name).count == 1) }
        #expect(w.qemus().count == 3)
    }

    @Test func aBusyLockIsReportedWithItsHolderAndFreedWhenTheHolderIsKilled() async throws {
        let w = try Workspace("cc2")
        defer { w.cleanUp() }
        try w.manifest("l1", bareVM("l1"))
        let vms = try w.manifest("l2", bareVM("l2"))
        // The holder stops itself right after taking the lock (no pipes: only its pid matters).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: QemuctlBinary.path)
        holder.arguments = ["apply", "-f", vms]
        holder.environment = ProcessInfo.processInfo.environment.merging(
            w.env.merging(["QEMUCTL_FAULT": "after-lock", "QEMUCTL_FAULT_ACTION": "stop"]) { _, b in b }) { _, b in b }
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        holder.standardInput = FileHandle.nullDevice
        try holder.run()
        let holderPID = holder.processIdentifier
        #expect(await processStops(holderPID))

        let (busy, busyTime) = try await timed { try await w.qemuctl("apply", "-f", vms, "--lock-wait", "0") }
        #expect(busy.status == 2, "\(busy.out)\(busy.err)")
        #expect(busy.err.contains("another qemuctl (pid \(holderPID)) holds the lock on \(w.state)"), "\(busy.err)")
        #expect(busyTime < .seconds(25))
        let busyDelete = try await w.qemuctl("delete", "l1", "--lock-wait", "0")
        #expect(busyDelete.status == 2, "\(busyDelete.err)")
        #expect(w.qemus().isEmpty)

        // A waiting apply proceeds as soon as the holder dies.
        let clock = ContinuousClock()
        let start = clock.now
        async let waiting = w.qemuctl("apply", "-f", vms, "--lock-wait", "60")
        // Give the waiter time to start and find the lock busy (a loaded machine starts processes slowly).
        try await Task.sleep(for: .seconds(3))
        #expect(kill(holderPID, SIGKILL) == 0)
        #expect(await processExits(holderPID))
        let waited = try await waiting
        let waitTime = clock.now - start
        #expect(waited.status == 0, "\(waited.out)\(waited.err)")
        #expect(waited.err.contains("another qemuctl (pid \(holderPID)) is changing"), "\(waited.err)")
        #expect(waited.out.contains("Applied: 2 created"), "\(waited.out)")
        #expect(waitTime < .seconds(30))
        #expect(w.qemus(named: "l1").count == 1 && w.qemus(named: "l2").count == 1)
        #expect(try await w.qemuctl("apply", "-f", vms, "--lock-wait", "0").out.contains("No changes"))
    }
}
