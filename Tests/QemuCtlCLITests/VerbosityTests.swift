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

    @Test("every verb accepts -v/--verbose: its help lists it, and the verbs without a VM run with it")
    func everyVerbAcceptsVerbose() async throws {
        let verbs = try await HelpConventionsTests.verbs()
        #expect(verbs.count >= 20, "\(verbs)")
        for verb in verbs {
            // `export` only groups its engines: the verb that runs is `export kubevirt`.
            let command = verb == "export" ? [verb, "kubevirt"] : [verb]
            let help = try await QemuctlBinary.run(command + ["--help"])
            #expect(help.status == 0, "\(command)")
            #expect(help.out.contains("-v, --verbose"), "\(command) --help has no -v, --verbose:\n\(help.out)")
        }
        #expect(try await QemuctlBinary.run(["import", "kubevirt", "--help"]).out.contains("-v, --verbose"))
        let version = try await QemuctlBinary.run(["version", "-v"])
        #expect(version.status == 0 && version.out.hasPrefix("qemuctl "), "\(version.err)")
        let schema = try await QemuctlBinary.run(["schema", "-v"])
        #expect(schema.status == 0 && schema.out.contains("\"$schema\""), "\(schema.err)")
        let completion = try await QemuctlBinary.run(["completion", "bash", "-vv"])
        #expect(completion.status == 0 && completion.out.contains("qemuctl"), "\(completion.err)")
    }

    @Test("stop -v, start -v and delete -v say each step on standard error (the ladder's steps too), never the VNC password")
    func stopStartAndDeleteSayTheirSteps() async throws {
        let w = try Workspace("vsd")
        defer { w.cleanUp() }
        let canary = "CANARY-vsd-\(UUID().uuidString.prefix(12))"
        let secretPath = w.dir.file("vnc.pw")
        FileManager.default.createFile(atPath: secretPath, contents: Data(canary.utf8), attributes: [.posixPermissions: 0o600])
        let vms = try w.manifest("s", bareVM("s", extra: """
              display: {vnc: {listen: none, passwordFrom: {file: \(secretPath)}}}
            """))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let pid = try #require(w.pid("s"))

        // The read commands and the raw monitor say what they read, too.
        let get = try await w.qemuctl("get", "s", "-v")
        #expect(get.err.contains("qemuctl: reading the VMs of \(w.state) over QMP"), "\(get.err)")
        let describe = try await w.qemuctl("describe", "s", "-v")
        #expect(describe.err.contains("qemuctl: s: reading it over QMP"), "\(describe.err)")
        let qmp = try await w.qemuctl("qmp", "s", "query-status", "-v")
        #expect(qmp.status == 0, "\(qmp.err)")
        #expect(qmp.err.contains("qemuctl: s: connecting to QEMU's monitor at \(w.state)/s.sock")
                && qmp.err.contains("qemuctl: s: connected to QEMU pid \(pid)"), "\(qmp.err)")
        for out in [get.out, get.err, describe.out, describe.err, qmp.err] { #expect(!out.contains(canary)) }

        // A guest without an OS ignores the power button: after 1 s the ladder goes on to quit.
        let stop = try await w.qemuctl("stop", "s", "-v", "--stop-timeout", "1")
        #expect(stop.status == 0, "\(stop.err)")
        #expect(stop.out.contains("s: stopped by quit"), "\(stop.out)")
        for step in ["qemuctl: taking the lock of \(w.state)",
                     "qemuctl: s: connecting to QEMU's monitor at \(w.state)/s.sock",
                     "qemuctl: s: stopping QEMU pid \(pid) by the ladder",
                     "qemuctl: s: trying the ACPI power button (QMP system_powerdown)",
                     "qemuctl: s: trying QMP quit",
                     "qemuctl: s: QEMU is gone (quit after"] {
            #expect(stop.err.contains(step), "no '\(step)' in:\n\(stop.err)")
        }
        #expect(!stop.err.contains("trying SIGTERM"), "quit ended it: \(stop.err)")
        #expect(!stop.out.contains("qemuctl: "), "the steps stay off standard output: \(stop.out)")
        let quiet = try await w.qemuctl("start", "s")
        #expect(quiet.status == 0 && !quiet.err.contains("qemuctl: s: "), "without -v nothing is said: \(quiet.err)")
        #expect(try await w.qemuctl("stop", "s", "--force").status == 0)

        let start = try await w.qemuctl("start", "s", "-v")
        #expect(start.status == 0, "\(start.err)")
        #expect(start.err.contains("qemuctl: s: launching QEMU from its launch record"), "\(start.err)")
        let restarted = try #require(w.pid("s"))

        let delete = try await w.qemuctl("delete", "s", "-v", "--stop-timeout", "1")
        #expect(delete.status == 0, "\(delete.err)")
        for step in ["qemuctl: deleting s from \(w.state): each is stopped by the ladder (up to 1 s for the guest)",
                     "qemuctl: s: stopping QEMU pid \(restarted) by the ladder",
                     "qemuctl: s: trying the ACPI power button",
                     "qemuctl: s: trying QMP quit",
                     "qemuctl: s: deleted (disk images kept)"] {
            #expect(delete.err.contains(step), "no '\(step)' in:\n\(delete.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/s"), "delete removed the runtime files")
        for out in [stop.out, stop.err, start.out, start.err, delete.out, delete.err] {
            #expect(!out.contains(canary))
        }
    }
}
