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
    /// The same with qmp-shell itself (the qemu.qmp package's interactive shell, which `make deps`
    /// installs), its standard input kept open so that it holds NAME.sock as a person at a prompt
    /// does: `get` says busy (not unresponsive) and `qemuctl qmp` exits 7; once it exits (end of
    /// input), commands work again.
    @Test func aMonitorHeldByQmpShellIsBusyAndFreeAgainWhenItExits() async throws {
        let shell = try #require(Self.qmpShell(), "qmp-shell is not installed (make deps installs the qemu.qmp package)")
        let w = try Workspace("qsh")
        defer { w.cleanUp() }
        let vms = try w.manifest("held", bareVM("held"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let client = Process()
        client.executableURL = URL(fileURLWithPath: shell[0])
        client.arguments = Array(shell.dropFirst()) + ["\(w.state)/held.sock"]
        let input = Pipe(), output = Pipe()
        client.standardInput = input
        client.standardOutput = output
        client.standardError = output
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        // Connected and negotiated once it greets ("Connected to QEMU x.y.z") and prompts.
        var text = ""
        let reader = output.fileHandleForReading
        let end = Date().addingTimeInterval(30)
        while !text.contains("(QEMU)") && client.isRunning && Date() < end {
            text += String(decoding: reader.availableData, as: UTF8.self)
        }
        try #require(text.contains("Connected to QEMU"), "qmp-shell did not connect: \(text)")

        let get = try await w.qemuctl("get", "--timeout", "1", "-o", "json")
        #expect(get.out.contains("\"busy\""), "\(get.out)")
        #expect(!get.out.contains("\"unresponsive\""), "\(get.out)")
        let qmp = try await w.qemuctl("qmp", "held", "query-status", "--timeout", "1")
        #expect(qmp.status == 7, "\(qmp.status) \(qmp.out)\(qmp.err)")
        #expect(qmp.err.contains("monitor busy (another client holds"), "\(qmp.err)")
        #expect(client.isRunning, "qmp-shell let go of the monitor early: \(text)")

        // End of input: qmp-shell exits and lets go; the monitor answers again.
        try input.fileHandleForWriting.close()
        client.waitUntilExit()
        #expect(client.terminationStatus == 0)
        let after = try await w.qemuctl("get", "-o", "json")
        #expect(after.out.contains("\"running\""), "\(after.out)")
        let answered = try await w.qemuctl("qmp", "held", "query-status", "--timeout", "5")
        #expect(answered.status == 0, "\(answered.out)\(answered.err)")
        #expect(answered.out.contains("\"running\""), "\(answered.out)")
    }

    /// How to run qmp-shell: the `qmp-shell` on PATH, else the module it runs (`python3 -m
    /// qemu.qmp.qmp_shell`) when qemu.qmp is importable; nil when neither is.
    static func qmpShell() -> [String]? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/qmp-shell"
            if FileManager.default.isExecutableFile(atPath: path) { return [path] }
        }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import qemu.qmp.qmp_shell"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return nil }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? ["/usr/bin/env", "python3", "-m", "qemu.qmp.qmp_shell"] : nil
    }
}
