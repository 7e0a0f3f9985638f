import Foundation
import Manifest
import QemuCtl
import QemuCtlTestSupport
import Testing
@testable import Reconcile

/// How a QEMU ended, put together from its keeper's line in qemu.log, QEMU's own lines, the
/// controller's SHUTDOWN and the journal; and the conditions that read it.
@Suite struct ExitReportTests {
    /// A runtime directory with `qemu.log` holding `log`.
    func layout(_ log: String, journal: String? = nil) throws -> (TempDir, RuntimeLayout) {
        let dir = try TempDir("exit")
        let layout = RuntimeLayout(name: "v", socketDirectory: dir.path)
        try FileManager.default.createDirectory(atPath: layout.runtimeDirectory, withIntermediateDirectories: true)
        try log.write(toFile: layout.qemuLog, atomically: true, encoding: .utf8)
        if let journal { try journal.write(toFile: layout.runtimeDirectory + "/journal.log", atomically: true, encoding: .utf8) }
        return (dir, layout)
    }

    func record(startedAt: Double, exit: QEMUExit? = nil) -> StoredRecord {
        var r = StoredRecord(launch: LaunchRecord(uuid: "u", spec: VirtualMachineSpec()), startedAt: startedAt)
        if let exit { r.restarts = RestartHistory(lastExit: exit) }
        return r
    }

    @Test func aSignalIsNamedAndTheKeepersLineIsNotInTheTail() throws {
        let (dir, layout) = try layout("""
            qemu-system-x86_64: ../hw/core/cpu.c:42: reset: Assertion `cpu' failed.
            qemuctl-keeper: pid=4242 signal=6 core=1 time=1700000000.250

            """)
        defer { dir.remove() }
        let report = try #require(ExitReport.read(layout: layout, record: record(startedAt: 1_600_000_000)))
        #expect(report.signal == "SIGABRT")
        #expect(report.exitStatus == nil)
        #expect(report.summary == "QEMU was killed by SIGABRT (core dumped)")
        #expect(report.short == "killed by SIGABRT")
        #expect(report.at == 1_700_000_000.25)
        #expect(report.logTail == ["qemu-system-x86_64: ../hw/core/cpu.c:42: reset: Assertion `cpu' failed."])
        #expect(report.logPath == layout.qemuLog)
        #expect(ExitReport.keeperSummary(layout) == report.summary)
    }

    @Test func aGuestPoweroffSeenByTheControllerIsTheGuests() throws {
        let (dir, layout) = try layout("qemuctl-keeper: pid=7 status=0 time=1700000010.000\n")
        defer { dir.remove() }
        let shutdown = QEMUExit(reason: "SHUTDOWN guest-shutdown (by the guest)", byGuest: true, at: 1_700_000_009)
        let report = try #require(ExitReport.read(layout: layout, record: record(startedAt: 1_700_000_000, exit: shutdown)))
        #expect(report.byGuest)
        #expect(report.exitStatus == 0)
        #expect(report.short == "guest powered off")
        #expect(report.summary.hasPrefix("the guest powered off (SHUTDOWN guest-shutdown"))
        // The same SHUTDOWN recorded before this QEMU started is an older QEMU's: not this exit's.
        let stale = try #require(ExitReport.read(layout: layout, record: record(startedAt: 1_700_000_009.5, exit: shutdown)))
        #expect(!stale.byGuest)
        #expect(stale.short == "exited with status 0")
    }

    @Test func qemusOwnSignalLineAndQemuctlsStopAreSaid() throws {
        let (dir, layout) = try layout("""
            qemu-system-x86_64: terminating on signal 15 from pid 99 (kill)
            qemuctl-keeper: pid=7 status=0 time=1700000010.000

            """)
        defer { dir.remove() }
        let report = try #require(ExitReport.read(layout: layout, record: record(startedAt: 1_700_000_000)))
        #expect(report.shutdownReason == "terminating on signal 15 from pid 99 (kill)")
        #expect(report.summary == "QEMU exited with status 0 after terminating on signal 15 from pid 99 (kill)")

        let (dir2, stopped) = try self.layout("qemuctl-keeper: pid=7 status=0 time=1700000010.000\n",
                                              journal: "2023-11-14T22:13:25.000Z stopped by qemuctl stop (quit after 0.1 s)\n")
        defer { dir2.remove() }
        let s = try #require(ExitReport.read(layout: stopped, record: record(startedAt: 1_700_000_000)))
        #expect(s.short == "stopped by qemuctl")
        #expect(s.summary.contains("stopped by qemuctl stop"))
    }

    @Test func aLongLogIsReadFromItsEnd() throws {
        let chatter = String(repeating: "qemu-system-x86_64: warning: something repeated many times\n", count: 40_000)
        let (dir, layout) = try layout(chatter + "last words\nqemuctl-keeper: pid=7 signal=9 core=0 time=1700000010.000\n")
        defer { dir.remove() }
        let report = try #require(ExitReport.read(layout: layout, record: nil, tailLines: 2))
        #expect(report.signal == "SIGKILL")
        #expect(report.logTail == ["qemu-system-x86_64: warning: something repeated many times", "last words"])
    }

    @Test func nothingSaysItExitedWithoutAKeeperLineOrARecordedExit() throws {
        let (dir, layout) = try layout("qemu-system-x86_64: some warning\n")
        defer { dir.remove() }
        #expect(ExitReport.read(layout: layout, record: record(startedAt: 1)) == nil)
        #expect(ExitReport.keeperSummary(layout) == nil)
        #expect(ExitReport.signalName(9) == "SIGKILL")
        #expect(ExitReport.signalName(40) == "signal 40")
    }

    @Test func conditionsFollowTheRunStateTheJournalAndTheProbe() {
        let launch = LaunchRecord(uuid: "u", spec: VirtualMachineSpec())
        let stored = StoredRecord(launch: launch, startedAt: 100)
        let running = ObservedVM(name: "v", liveness: .alive, record: launch, live: LiveState(matching: launch.spec))
        #expect(VMConditions.ready(running, record: stored, journal: []).status == .true)
        #expect(VMConditions.ready(running, record: stored, journal: []).lastTransitionTime == 100)
        // The readiness probe's hook: a failing probe makes a running VM not ready.
        let probed = VMConditions.ready(running, record: stored, journal: [], readiness: (false, "port 22 closed"))
        #expect(probed.status == .false && probed.reason == "ReadinessProbeFailed" && probed.message == "port 22 closed")

        var paused = running
        paused.live?.runStatus = .paused
        let byUser = [JournalLine(at: 110, text: "paused by qemuctl pause (QEMU reports paused)")]
        #expect(VMConditions.paused(paused, record: stored, journal: byUser).reason == "PausedByUser")
        #expect(VMConditions.paused(paused, record: stored, journal: byUser).lastTransitionTime == 110)
        let resumedSince = byUser + [JournalLine(at: 120, text: "resumed by qemuctl resume (QEMU reports running)")]
        #expect(VMConditions.paused(paused, record: stored, journal: resumedSince).reason == "PausedByClient")
        // A pause of an earlier QEMU (before this start) is not this one's.
        let before = [JournalLine(at: 50, text: "paused by qemuctl pause (QEMU reports paused)")]
        #expect(VMConditions.paused(paused, record: stored, journal: before).reason == "PausedByClient")
        paused.live?.runStatus = .ioError
        #expect(VMConditions.paused(paused, record: stored, journal: []).reason == "IOError")
        paused.live?.runStatus = .prelaunch
        #expect(VMConditions.paused(paused, record: stored, journal: []).reason == "PausedAtLaunch")

        var busy = ObservedVM(name: "v", liveness: .unresponsive, record: launch)
        busy.monitorBusy = true
        #expect(VMConditions.ready(busy, record: stored, journal: []).reason == "MonitorBusy")
        #expect(VMConditions.ready(busy, record: stored, journal: []).status == .unknown)

        let gone = ObservedVM(name: "v", liveness: .gone, record: launch, restartPending: true)
        #expect(VMConditions.failed(gone, exit: nil).status == .unknown)
        let pending = VMConditions.restartPending(gone, fields: ["spec.machine.type: q35 -> pc"])
        #expect(pending.status == .true && pending.message.contains("spec.machine.type"))
    }
}
