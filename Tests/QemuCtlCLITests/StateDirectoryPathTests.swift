import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// A state directory whose path holds option syntax (`,` `=` and a space): the sockets and logs QEMU gets are
/// at the literal paths, and qemuctl still recognises its QEMU (issue 6, item 2: a `,,`-escaped path on QEMU's
/// command line made `delete --force` miss the running QEMU and orphan it).
@Suite(.timeLimit(.minutes(2)), .offPool) struct StateDirectoryPathTests {
    @Test func aStateDirectoryWithOptionSyntaxWorksEndToEnd() async throws {
        let w = try Workspace("sdp")
        defer { w.cleanUp() }
        let state = w.dir.file("st,snapshot=on x")
        let env = ["QEMUCTL_STATE_DIR": state]
        func run(_ args: String...) async throws -> QemuctlBinary.Run {
            try await QemuctlBinary.run(args, environment: env, directory: w.dir.path)
        }
        let vms = try w.manifest("c", bareVM("c", extra: "  serial: {log: true}\n"))
        let apply = try await run("apply", "--timeout", "30", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        let pid = try #require(Int32(try String(contentsOfFile: "\(state)/c/qemu.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let chardevs = try await QMPClient.withConnection(to: "\(state)/c.sock") { try await $0.execute("query-chardev") }
        let console = chardevs.arrayValue?.first { $0["label"]?.stringValue == "serial-console" }?["filename"]?.stringValue
        #expect(console?.contains("unix:\(state)/c/console.sock,server=on") == true, "\(String(describing: console))")
        var st = stat()
        #expect(lstat("\(state)/c/serial.log", &st) == 0, "the serial log is at the literal path")
        #expect(FileManager.default.fileExists(atPath: "\(state)/c/console.sock"))
        #expect(!FileManager.default.fileExists(atPath: w.dir.file("st")), "nothing at the path cut at the comma")
        // qemuctl knows its QEMU: no change on a second apply, and a forced delete kills it.
        let again = try await run("apply", "--timeout", "30", "-f", vms)
        #expect(again.out.contains("No changes"), "\(again.out)\(again.err)")
        let delete = try await run("delete", "--force", "c")
        #expect(delete.status == 0, "\(delete.err)")
        #expect(delete.out.contains("killed (SIGKILL, pid \(pid))"), "\(delete.out)")
        #expect(await processExits(pid), "QEMU \(pid) was orphaned")
    }
}
