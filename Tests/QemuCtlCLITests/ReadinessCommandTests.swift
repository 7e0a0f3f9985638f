import Foundation
import QemuCtlTestSupport
import Testing

/// `spec.readiness` through the commands, on the busybox test guest (it prints a ready marker on its serial
/// console, and has the agent channel but no agent): `apply --wait-ready` passing and timing out (status 4),
/// `wait --for ready` taking the probe from the record, and `get`'s READY column and `ready` key.
@Suite(.timeLimit(.minutes(4)), .offPool) struct ReadinessCommandTests {
    func guest(_ name: String, readiness: String) -> String {
        """
        apiVersion: qemuctl/v1
        kind: VirtualMachine
        metadata: {name: \(name)}
        spec:
          machine: {type: q35, accel: tcg}
          memory: {size: 128MiB}
          boot:
            kernel: \(Fixtures.guestKernel)
            initrd: \(Fixtures.guestInitrd)
            cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check
          serial: {log: true}
          guestAgent: true
        \(readiness)
        """
    }

    @Test func applyWaitsForTheDeclaredProbeAndGetShowsIt() async throws {
        let w = try Workspace("rdy")
        defer { w.cleanUp() }
        // The serial probe passes once the guest prints its marker: apply --wait-ready returns 0 and says when.
        try w.manifest("r1", guest("r1", readiness: "  readiness: {serialMatch: \"^\(Fixtures.guestReadyMarker)$\"}"))
        // No readiness declared: not waited for, READY '-'.
        let dir = try w.manifest("r3", guest("r3", readiness: ""))
        let apply = try await w.qemuctl("apply", "-f", dir, "--wait-ready", "--ready-timeout", "5m", "--timeout", "20")
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        #expect(apply.out.contains("Waiting up to 5m for r1 (serial:^\(Fixtures.guestReadyMarker)$) to be ready…"), "\(apply.out)")
        #expect(apply.out.contains("r1: ready (serial:^\(Fixtures.guestReadyMarker)$, after "), "\(apply.out)")
        #expect(!apply.out.contains("r3: ready") && !apply.err.contains("r3:"), "\(apply.out)\(apply.err)")
        // The agent probe never passes (no agent in this guest): status 4 after --ready-timeout; only the VM
        // this apply launched is waited for.
        try w.manifest("r2", guest("r2", readiness: "  readiness: {guestAgent: true}"))
        let timedOut = try await w.qemuctl("apply", "-f", dir, "--wait-ready", "--ready-timeout", "5s", "--timeout", "20")
        #expect(timedOut.status == 4, "\(timedOut.out)\(timedOut.err)")
        #expect(timedOut.out.contains("Waiting up to 5s for r2 (agent) to be ready…"), "\(timedOut.out)")
        #expect(timedOut.err.contains("r2: not ready after"), "\(timedOut.err)")

        // wait --for ready takes each VM's own probe from its record; none declared is status 1.
        let ready = try await w.qemuctl("wait", "r1", "--for", "ready", "--timeout", "60")
        #expect(ready.status == 0, "\(ready.err)")
        let notYet = try await w.qemuctl("wait", "r2", "--for", "ready", "--timeout", "2")
        #expect(notYet.status == 4, "\(notYet.err)")
        let undeclared = try await w.qemuctl("wait", "r3", "--for", "ready", "--timeout", "5")
        #expect(undeclared.status == 1, "\(undeclared.err)")
        #expect(undeclared.err.contains("r3 declares no readiness probe (spec.readiness"), "\(undeclared.err)")
        // --probe still overrides the record.
        let overridden = try await w.qemuctl("wait", "r3", "--for", "ready", "--probe", "serial:^\(Fixtures.guestReadyMarker)$", "--timeout", "5m")
        #expect(overridden.status == 0, "\(overridden.err)")

        // get: READY yes / no / -, and ready true / false / null in JSON.
        let started = ContinuousClock.now
        let get = try await w.qemuctl("get")
        print("get with three readiness probes took \(ContinuousClock.now - started)")
        #expect(get.status == 0, "\(get.err)")
        let rows = get.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.first?.prefix(3) == ["NAME", "STATE", "READY"], "\(get.out)")
        #expect(rows.contains { $0.prefix(3) == ["r1", "running", "yes"] }, "\(get.out)")
        #expect(rows.contains { $0.prefix(3) == ["r2", "running", "no"] }, "\(get.out)")
        #expect(rows.contains { $0.prefix(3) == ["r3", "running", "-"] }, "\(get.out)")
        let json = try await w.qemuctl("get", "-o", "json")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]])
        let ready1 = parsed.first { $0["name"] as? String == "r1" }?["ready"] as? Bool
        let ready2 = parsed.first { $0["name"] as? String == "r2" }?["ready"] as? Bool
        #expect(ready1 == true && ready2 == false, "\(json.out)")
        #expect(parsed.first { $0["name"] as? String == "r3" }?["ready"] is NSNull, "\(json.out)")

        // A readiness change is record-only: no relaunch, and the new probe is what wait uses.
        let pid = w.pid("r2")
        try w.manifest("r2", guest("r2", readiness: "  readiness: {serialMatch: \"^\(Fixtures.guestReadyMarker)$\"}"))
        let changed = try await w.qemuctl("apply", "-f", dir, "--wait-ready", "--ready-timeout", "5m")
        #expect(changed.status == 0, "\(changed.out)\(changed.err)")
        #expect(changed.out.contains("r2: update (2 record-only changes)"), "\(changed.out)")
        #expect(changed.out.contains("~ spec.readiness.serialMatch (recorded)"), "\(changed.out)")
        #expect(changed.out.contains("r2: ready (serial:"), "\(changed.out)")
        #expect(w.pid("r2") == pid)
    }

    @Test func aBadReadyTimeoutIsAUsageError() async throws {
        let r = try await QemuctlBinary.run(["apply", "-f", "/nonexistent", "--wait-ready", "--ready-timeout", "soon"])
        #expect(r.status == 2)
        #expect(r.err.contains("--ready-timeout 'soon' is not a duration"), "\(r.err)")
    }
}
