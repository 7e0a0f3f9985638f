import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `events` and a third-party client holding the follower monitor (qmp-shell, qemu.qmp, socat):
/// the warning says what the kernel shows, and the VM, running all along, is VM_FOLLOWED once free.
@Suite(.serialized, .timeLimit(.minutes(2)), .offPool) struct EventsBusyMonitorTests {
    @Test func aMonitorHeldByAnotherClientIsFollowedOnceFreeAsARunningVM() async throws {
        let w = try Workspace("evbusy")
        defer { w.cleanUp() }
        let vms = try w.manifest("held", bareVM("held"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        // A third-party client holds events.sock before events starts.
        let other = try await QMPClient.connect(to: "\(w.state)/held/events.sock", timeout: .seconds(5))
        let events = try QemuctlBinary.Background(["events", "--json", "--timeout", "1"], environment: w.env)
        defer { events.kill() }
        for _ in 0..<200 where !events.err.contains("is busy") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(events.err.contains("is busy"), "\(events.err)")
        #expect(events.err.contains("another client holds it (QEMU serves one at a time)"), "\(events.err)")
        #expect(!events.err.contains("qemuctl events"), "no guess at who the client is: \(events.err)")
        other.close()
        let followed = await events.waitForLine { $0.contains("\"VM_FOLLOWED\"") || $0.contains("\"VM_APPEARED\"") }
        let line = try JSONValue(parsing: try #require(followed, "never followed: \(events.out)\(events.err)"))
        #expect(line["event"]?.stringValue == "VM_FOLLOWED", "a VM running when events started is not one that appeared")
        #expect(line["vm"]?.stringValue == "held")
        events.send(SIGINT)
        #expect(await events.exitStatus() == 0)
    }
}
