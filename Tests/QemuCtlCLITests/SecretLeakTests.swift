import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Canary secrets given by file and by environment variable never appear anywhere but in QEMU's memory
/// (issue 6, item 5).
@Suite(.timeLimit(.minutes(2)), .offPool) struct SecretLeakTests {
    /// A canary that cannot occur by chance.
    static func canary(_ tag: String) -> String { "CANARY-\(tag)-\(UUID().uuidString.prefix(12))" }

    /// Writes `value` to `path` with `mode`.
    static func writeSecret(_ path: String, _ value: String, mode: Int) throws {
        try (value + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// Every regular file under `dir` (recursively) whose bytes contain `needle`.
    static func filesContaining(_ needle: String, under dir: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return [] }
        var hits: [String] = []
        let bytes = Data(needle.utf8)
        var checked = 0
        for case let rel as String in walker {
            let path = dir + "/" + rel
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            checked += 1
            if data.range(of: bytes) != nil { hits.append(path) }
        }
        #expect(checked >= 4, "the state directory should hold records, journals, pid files, serial logs")
        return hits
    }

    @Test func canaryPasswordsNeverLeak() async throws {
        let w = try Workspace("sec")
        defer { w.cleanUp() }
        let fileCanary = Self.canary("file"), envCanary = Self.canary("env")
        let secretPath = w.dir.file("vnc.pw")
        try Self.writeSecret(secretPath, fileCanary, mode: 0o600)
        let vms = try w.manifest("f", bareVM("f", extra: """
              display: {vnc: {listen: none, passwordFrom: {file: \(secretPath)}}}
              serial: {log: true}
            """))
        try w.manifest("e", bareVM("e", extra: """
              display:
                vnc: {listen: none, passwordFrom: {env: QEMUCTL_TEST_VNC_PW}}
                spice: {listen: unix, passwordFrom: {env: QEMUCTL_TEST_VNC_PW}}
              serial: {log: true}
            """))
        let env = w.env.merging(["QEMUCTL_TEST_VNC_PW": envCanary]) { _, n in n }
        func run(_ args: String...) async throws -> QemuctlBinary.Run {
            try await QemuctlBinary.run(args, environment: env, directory: w.dir.path)
        }
        var outputs: [(String, QemuctlBinary.Run)] = []
        let apply = try await run("apply", "--timeout", "30", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        outputs.append(("apply", apply))
        // The passwords are really set: VNC requires password authentication, SPICE a ticket (not vacuous).
        for name in ["f", "e"] {
            let auth = try await QMPClient.withConnection(to: "\(w.state)/\(name).sock") { qmp in
                try await qmp.execute("query-vnc-servers").arrayValue?.first?["auth"]?.stringValue
            }
            #expect(auth == "vnc", "VM \(name)")
        }
        let spice = try await QMPClient.withConnection(to: "\(w.state)/e.sock") { try await $0.execute("query-spice") }
        #expect(spice["auth"]?.stringValue == "spice")
        for (label, args) in [("plan --json", ["plan", "--json", "-f", vms]), ("plan", ["plan", "-f", vms]),
                              ("diff", ["diff", "-f", vms]), ("describe f", ["describe", "f"]),
                              ("describe e -o json", ["describe", "e", "-o", "json"]), ("describe f -o yaml", ["describe", "f", "-o", "yaml"]),
                              ("describe e", ["describe", "e"]), ("get -o json", ["get", "-o", "json"]),
                              ("get -o yaml", ["get", "-o", "yaml"]), ("validate", ["validate", "-f", vms]),
                              ("apply again", ["apply", "--timeout", "30", "-f", vms])] {
            let r = try await QemuctlBinary.run(args, environment: env, directory: w.dir.path)
            #expect(r.status == 0 || label == "plan", "\(label): \(r.err)")
            outputs.append((label, r))
        }
        // A live password change (the file's content changes): applied over QMP, reported without the value.
        let newCanary = Self.canary("file2")
        try Self.writeSecret(secretPath, newCanary, mode: 0o600)
        let change = try await run("apply", "--timeout", "30", "-f", vms)
        #expect(change.status == 0, "\(change.err)")
        #expect(change.out.contains("spec.display.vnc.passwordFrom set (sensitive)"), "\(change.out)")
        outputs.append(("apply (password change)", change))
        for canary in [fileCanary, envCanary, newCanary] {
            for (label, r) in outputs {
                #expect(!r.out.contains(canary) && !r.err.contains(canary), "\(label) printed a secret")
            }
            #expect(Self.filesContaining(canary, under: w.state) == [], "state directory")
            for name in ["f", "e"] {
                let pid = try #require(w.pid(name))
                for part in ["cmdline", "environ"] {
                    let data = try #require(FileManager.default.contents(atPath: "/proc/\(pid)/\(part)"), "/proc/\(pid)/\(part)")
                    #expect(!data.isEmpty)
                    #expect(data.range(of: Data(canary.utf8)) == nil, "QEMU's \(part) (VM \(name))")
                }
            }
        }
        // The journal exists and says what was done, without the value.
        let journal = try String(contentsOfFile: "\(w.state)/f/journal.log", encoding: .utf8)
        #expect(journal.contains("passwordFrom set (sensitive)"))
    }

    /// Group- or world-readable secret files, or files of another user, are refused with the file and the fix;
    /// a failing VM's error does not echo its secret either.
    @Test func looseSecretFilesAreRefusedAndErrorsStayClean() async throws {
        let w = try Workspace("sec2")
        defer { w.cleanUp() }
        let canary = Self.canary("loose")
        let secretPath = w.dir.file("vnc.pw")
        let vms = try w.manifest("l", bareVM("l", extra: """
              display: {vnc: {listen: none, passwordFrom: {file: \(secretPath)}}}
            """))
        for mode in [0o644, 0o640, 0o604] {
            try Self.writeSecret(secretPath, canary, mode: mode)
            for command in ["apply", "plan", "diff"] {
                let r = try await w.qemuctl(command, "-f", vms)
                #expect(r.status != 0, "\(command) with mode \(String(mode, radix: 8))")
                #expect(r.err.contains("secret file \(secretPath) is readable by group or others"), "\(r.err)")
                #expect(r.err.contains("chmod 600 \(secretPath)"))
                #expect(!r.out.contains(canary) && !r.err.contains(canary))
            }
            #expect(w.qemus().isEmpty, "nothing may start with a loose secret")
        }
        // Owned by someone else (nobody): refused too.
        try Self.writeSecret(secretPath, canary, mode: 0o600)
        #expect(chown(secretPath, 65534, 65534) == 0)
        let foreign = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(foreign.status != 0)
        #expect(foreign.err.contains("secret file \(secretPath) is not owned by this user"), "\(foreign.err)")
        #expect(chown(secretPath, getuid(), getgid()) == 0)
        // A VM that QEMU refuses (a missing disk image): QEMU's error is shown, the secret is not.
        let broken = try w.manifest("l", bareVM("l", extra: """
              display: {vnc: {listen: none, passwordFrom: {file: \(secretPath)}}}
              disks:
                - name: gone
                  file: {path: \(w.dir.file("missing.raw")), format: raw}
            """))
        let failed = try await w.qemuctl("apply", "--timeout", "30", "-f", broken)
        #expect(failed.status != 0)
        #expect(failed.out.contains("missing.raw") || failed.err.contains("missing.raw"), "\(failed.out)\(failed.err)")
        #expect(!failed.out.contains(canary) && !failed.err.contains(canary))
        // A secret QEMU reads from a file (the iSCSI CHAP password): written into the private runtime directory
        // for the start, removed when the start fails (no iSCSI target listens on port 1).
        let chap = w.dir.file("chap.pw")
        try Self.writeSecret(chap, canary, mode: 0o600)
        let iscsi = try w.manifest("l", bareVM("l", extra: """
              disks:
                - name: lun
                  iscsi: {portal: "127.0.0.1:1", target: "iqn.2024-01.test:t", user: u, passwordFrom: {file: \(chap)}}
            """))
        let noTarget = try await w.qemuctl("apply", "--timeout", "30", "-f", iscsi)
        #expect(noTarget.status != 0, "\(noTarget.out)")
        #expect(!noTarget.out.contains(canary) && !noTarget.err.contains(canary))
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/l/secret-lun-password"), "the secret file outlived the start")
        let leaked = (FileManager.default.enumerator(atPath: w.state)?.allObjects as? [String] ?? []).filter {
            (FileManager.default.contents(atPath: w.state + "/" + $0)?.range(of: Data(canary.utf8))) != nil
        }
        #expect(leaked.isEmpty, "\(leaked)")
    }
}
