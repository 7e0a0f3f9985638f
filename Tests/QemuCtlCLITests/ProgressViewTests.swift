import Foundation
import QemuCtlTestSupport
import Testing

/// `apply` draws a live view of the VMs it changes on a terminal, and nothing of it into a pipe.
@Suite(.timeLimit(.minutes(2)), .offPool) struct ProgressViewTests {
    @Test func aTerminalGetsALiveViewAndAPipeGetsPlainLines() async throws {
        let w = try Workspace("pv")
        defer { w.cleanUp() }
        let vms = try w.manifest("a", bareVM("a"))
        try w.manifest("b", bareVM("b"))
        // util-linux's `script` gives qemuctl a pseudo-terminal as standard output.
        let command = "\(QemuctlBinary.path) apply -f \(vms)"
        let tty = try await QemuctlBinary.run(["-qefc", command, "/dev/null"],
                                              environment: w.env.merging(["TERM": "xterm"]) { $1 },
                                              executable: "/usr/bin/script")
        #expect(tty.status == 0, "\(tty.out)\(tty.err)")
        #expect(tty.out.contains("2/2 VMs done") || tty.out.contains("1/2 VMs done") || tty.out.contains("0/2 VMs done"),
                "the view counts the VMs: \(tty.out)")
        #expect(tty.out.contains("\u{1B}[1A\u{1B}[2K"), "the view is erased in place")
        #expect(tty.out.contains("Applied: 2 created"), "the results follow the view: \(tty.out)")

        // Into a pipe: no escape sequences at all.
        try w.manifest("c", bareVM("c"))
        let piped = try await w.qemuctl("apply", "-f", vms)
        #expect(piped.status == 0, "\(piped.out)\(piped.err)")
        #expect(piped.out.contains("c: created"))
        #expect(!piped.out.contains("\u{1B}"), "\(piped.out)")
    }
}
