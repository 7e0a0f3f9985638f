import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// A monitor held by a third-party client (qmp-shell, qemu.qmp) is busy, not unresponsive: every
/// command says so from what the kernel shows, and apply's summary does not contradict itself.
@Suite(.timeLimit(.minutes(2)), .offPool) struct BusyMonitorTests {
    @Test func aMonitorHeldByAnotherClientIsBusyEverywhere() async throws {
        let w = try Workspace("busy")
        defer { w.cleanUp() }
        let vms = try w.manifest("held", bareVM("held"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let other = try await QMPClient.connect(to: "\(w.state)/held.sock", timeout: .seconds(5))
        defer { other.close() }

        let get = try await w.qemuctl("get", "--timeout", "1", "-o", "json")
        #expect(get.out.contains("\"busy\""), "\(get.out)")
        #expect(!get.out.contains("\"unresponsive\""), "\(get.out)")
        let diff = try await w.qemuctl("diff", "-f", vms, "--timeout", "1")
        #expect(diff.out.contains("busy: another client holds \(w.state)/held.sock") || diff.err.contains("busy: another client holds"),
                "\(diff.out)\(diff.err)")
        let apply = try await w.qemuctl("apply", "-f", vms, "--timeout", "1")
        #expect(apply.status == 1, "\(apply.out)\(apply.err)")
        #expect(apply.out.contains("busy: another client holds"), "\(apply.out)")
        #expect(apply.out.contains("No changes: 0 VMs match the manifests; 1 not planned (see above)."), "\(apply.out)")
        #expect(!apply.out.contains("1 VM matches"), "\(apply.out)")

        // Released, it answers again: running, and the manifest matches.
        other.close()
        let after = try await w.qemuctl("get", "-o", "json")
        #expect(after.out.contains("\"running\""), "\(after.out)")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
    }
}
