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

    /// The same with a real third-party client: QEMU's own Python library, qemu.qmp (PyPI;
    /// `make deps` installs it), holding NAME.sock as qmp-shell would.
    @Test func aMonitorHeldByQemuQmpIsBusyAndFreeAgainWhenItLetsGo() async throws {
        let w = try Workspace("qqmp")
        defer { w.cleanUp() }
        let vms = try w.manifest("held", bareVM("held"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let script = """
            import asyncio, sys
            from qemu.qmp import QMPClient
            async def main():
                qmp = QMPClient("third-party")
                await qmp.connect(sys.argv[1])
                print((await qmp.execute("query-status"))["status"], flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
                await qmp.disconnect()
            asyncio.run(main())
            """
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", "-c", script, "\(w.state)/held.sock"]
        let input = Pipe(), output = Pipe()
        client.standardInput = input
        client.standardOutput = output
        client.standardError = FileHandle.nullDevice
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        let first = output.fileHandleForReading.availableData
        #expect(String(decoding: first, as: UTF8.self).hasPrefix("running"), "qemu.qmp did not get the monitor")
        let get = try await w.qemuctl("get", "--timeout", "1", "-o", "json")
        #expect(get.out.contains("\"busy\""), "\(get.out)")
        let qmp = try await w.qemuctl("qmp", "held", "query-status", "--timeout", "1")
        #expect(qmp.status == 7, "\(qmp.err)")
        #expect(qmp.err.contains("monitor busy (another client holds"), "\(qmp.err)")
        try input.fileHandleForWriting.close()
        client.waitUntilExit()
        #expect(client.terminationStatus == 0)
        let after = try await w.qemuctl("get", "-o", "json")
        #expect(after.out.contains("\"running\""), "\(after.out)")
    }
}
