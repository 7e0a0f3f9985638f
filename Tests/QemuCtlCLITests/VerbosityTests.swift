import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// #19 item 5: `-v` says what apply does; `-vv` shows each QMP command and answer and the QEMU
/// command line, on standard error, never a secret.
@Suite(.serialized, .timeLimit(.minutes(3)), .offPool)
struct VerbosityTests {
    @Test("apply -vv logs QMP commands, answers and the QEMU command line, and never the VNC password set via passwordFrom")
    func verboseApplyNeverShowsTheSecret() async throws {
        let w = try Workspace("vv")
        defer { w.cleanUp() }
        let canary = "CANARY-vv-\(UUID().uuidString.prefix(12))"
        let secretPath = w.dir.file("vnc.pw")
        FileManager.default.createFile(atPath: secretPath, contents: Data(canary.utf8), attributes: [.posixPermissions: 0o600])
        let vms = try w.manifest("v", bareVM("v", extra: """
              display: {vnc: {listen: none, passwordFrom: {file: \(secretPath)}}}
            """))
        let quiet = try await w.qemuctl("apply", "-f", vms, "--dry-run")
        #expect(!quiet.err.contains("qmp ->"), "\(quiet.err)")
        let apply = try await w.qemuctl("apply", "-vv", "-f", vms)
        #expect(apply.status == 0, "\(apply.err)")
        // -v: the steps; -vv: the QEMU command line, and QMP commands with their answers.
        #expect(apply.err.contains("qemuctl: loading the manifests of \(vms)"), "\(apply.err)")
        #expect(apply.err.contains("qemuctl: v: create"), "\(apply.err)")
        #expect(apply.err.contains("qemuctl: exec (v): ") && apply.err.contains("qemu-system-x86_64 -name guest=v"), "\(apply.err)")
        let sent = try #require(apply.err.split(separator: "\n").first { $0.contains("qmp -> ") && $0.contains("set_password") },
                                "no set_password in \(apply.err)")
        #expect(sent.contains("\"password\":\"(sensitive)\""), "\(sent)")
        #expect(apply.err.contains("qmp <- set_password: {}"), "\(apply.err)")
        #expect(apply.err.contains("qmp <- query-status"), "\(apply.err)")
        // The password is set (VNC asks for it), and appears nowhere in the output.
        let auth = try await QMPClient.withConnection(to: "\(w.state)/v.sock") { qmp in
            try await qmp.execute("query-vnc-servers").arrayValue?.first?["auth"]?.stringValue
        }
        #expect(auth == "vnc")
        #expect(!apply.err.contains(canary) && !apply.out.contains(canary))
        // Diagnostics stay off stdout: what a script reads is unchanged.
        #expect(!apply.out.contains("qmp ->"))
        // -v on another command: get reads over QMP; -vv traces it.
        let get = try await w.qemuctl("get", "v", "-vv")
        #expect(get.status == 0)
        #expect(!get.err.contains(canary))
    }
}
