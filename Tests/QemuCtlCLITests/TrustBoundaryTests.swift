import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Issue 14, the file-system half: qemuctl run as root against directories and files an
/// unprivileged local user controls (created with `useradd` here; CI runs as root) refuses them,
/// says which path, whose, and how to fix it, and damages nothing.
@Suite(.timeLimit(.minutes(3)), .offPool) struct TrustBoundaryTests {
    /// A root-owned file outside the state directory that an attack aims at: content, mode and an
    /// old modification time to compare afterwards.
    static func victim(_ path: String) throws -> FileFingerprint {
        try "precious root data\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(chmod(path, 0o640) == 0)
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        return try FileFingerprint(path)
    }

    /// Finding 1: a state directory another user owns (0777, with a planted VM directory that is a
    /// link to a root directory, and a planted record) is refused by apply and start, naming the path,
    /// the owner and the fix; the link's target is not touched and no QEMU starts.
    @Test func aStateDirectoryAnotherUserOwnsIsRefused() async throws {
        _ = try UnprivilegedUser.ids()
        let w = try Workspace("tb1")
        defer { w.cleanUp() }
        #expect(chmod(w.dir.path, 0o755) == 0)
        try UnprivilegedUser.makeDirectory(w.state, mode: 0o777)
        let rootDir = w.dir.file("rootdir")
        #expect(mkdir(rootDir, 0o755) == 0)
        let inside = try Self.victim(rootDir + "/keep")
        let before = try FileFingerprint(rootDir)
        try UnprivilegedUser.plantLink(w.state + "/vm1", to: rootDir)
        #expect(mkdir(w.state + "/evil", 0o755) == 0)
        try UnprivilegedUser.own(w.state + "/evil")
        try UnprivilegedUser.plantFile(w.state + "/evil/record.json", "{}", mode: 0o644)
        let vms = try w.manifest("vm1", bareVM("vm1"))
        let apply = try await w.qemuctl("apply", "--timeout", "10", "-f", vms)
        #expect(apply.status != 0)
        #expect(apply.err.contains(w.state) && apply.err.contains(UnprivilegedUser.name) && apply.err.contains("chown"), "\(apply.err)")
        #expect(!apply.err.contains("another qemuctl"), "\(apply.err)")
        let start = try await w.qemuctl("start", "evil")
        #expect(start.status != 0)
        #expect(start.err.contains("refusing state directory \(w.state)"), "\(start.err)")
        let get = try await w.qemuctl("get")
        #expect(get.status != 0 && get.err.contains(w.state), "\(get.out)\(get.err)")
        #expect(try FileFingerprint(rootDir) == before, "the planted link's target directory changed")
        #expect(try FileFingerprint(rootDir + "/keep") == inside)
        #expect(w.qemus().isEmpty)

        // Owned by root but group-writable: refused with the chmod fix.
        let loose = w.dir.file("loose")
        #expect(mkdir(loose, 0o770) == 0 && chmod(loose, 0o770) == 0)
        let looseGet = try await QemuctlBinary.run(["get", "--state-dir", loose])
        #expect(looseGet.status != 0 && looseGet.err.contains("chmod go-w \(loose)"), "\(looseGet.err)")
        // A link the other user owns on the way (they could point it elsewhere at any time): refused.
        let link = w.dir.file("link")
        #expect(mkdir(w.dir.file("real"), 0o700) == 0)
        try UnprivilegedUser.plantLink(link, to: w.dir.file("real"))
        let viaLink = try await QemuctlBinary.run(["get", "--state-dir", link])
        #expect(viaLink.status != 0 && viaLink.err.contains("\(link) is a symbolic link owned by uid"), "\(viaLink.err)")
        // Ours, but below a directory the other user owns (who could swap it): refused, naming that parent.
        let theirs = w.dir.file("theirs")
        try UnprivilegedUser.makeDirectory(theirs, mode: 0o755)
        #expect(mkdir(theirs + "/s", 0o700) == 0)
        let below = try await QemuctlBinary.run(["apply", "-f", vms, "--state-dir", theirs + "/s"])
        #expect(below.status != 0 && below.err.contains("\(theirs), a parent of"), "\(below.err)")
        #expect(!FileManager.default.fileExists(atPath: theirs + "/s/vm1"))
        // A directory below the state directory that others can write: refused too, not tightened.
        let s2 = w.dir.file("s2")
        #expect(mkdir(s2, 0o700) == 0 && mkdir(s2 + "/vm1", 0o777) == 0 && chmod(s2 + "/vm1", 0o777) == 0)
        let openVM = try await QemuctlBinary.run(["apply", "--timeout", "10", "-f", vms, "--state-dir", s2])
        #expect(openVM.status != 0 && (openVM.out + openVM.err).contains("\(s2)/vm1 is writable by group or others (mode 0777)"), "\(openVM.out)\(openVM.err)")
        var st = stat()
        #expect(stat(s2 + "/vm1", &st) == 0 && st.st_mode & 0o777 == 0o777)
        #expect(w.qemus().isEmpty)
    }

    /// The hidden case of issue 14: for each file of the state directory, a planted symbolic link
    /// (to a root file outside it) or a file another user owns is refused by `apply`, which names
    /// the path; the link's target (or the foreign file) keeps its content, mode and modification
    /// time, and no QEMU runs.
    @Test(arguments: ["NAME/", "NAME.sock", "record.json", "qemu.pid", "journal.log", "qemu.log", "serial.log",
                      "console.sock", "events.sock", ".apply.lock"])
    func aPlantedLinkOrForeignFileIsRefusedAndItsTargetUntouched(_ file: String) async throws {
        _ = try UnprivilegedUser.ids()
        for variant in ["symlink", "foreign"] {
            let w = try Workspace("tbh")
            defer { w.cleanUp() }
            let vms = try w.manifest("v", bareVM("v", extra: "  serial: {log: true}\n"))
            #expect(mkdir(w.state, 0o700) == 0)
            #expect(mkdir(w.state + "/v", 0o700) == 0)
            let planted: String = switch file {
            case "NAME/": w.state + "/v"
            case "NAME.sock": w.state + "/v.sock"
            case ".apply.lock": w.state + "/.apply.lock"
            default: w.state + "/v/" + file
            }
            let target: String
            if variant == "symlink" {
                if file == "NAME/" {
                    #expect(rmdir(planted) == 0)
                    target = w.dir.file("rootdir")
                    #expect(mkdir(target, 0o750) == 0)
                    _ = try Self.victim(target + "/keep")
                } else {
                    target = w.dir.file("victim")
                    _ = try Self.victim(target)
                }
                try UnprivilegedUser.plantLink(planted, to: target)
            } else {
                target = planted
                if file == "NAME/" {
                    try UnprivilegedUser.own(planted)
                    #expect(chmod(planted, 0o755) == 0)
                    try UnprivilegedUser.plantFile(planted + "/record.json", "{\"planted\": true}", mode: 0o644)
                } else {
                    try UnprivilegedUser.plantFile(planted, "another user's data\n", mode: 0o644)
                }
                var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
                #expect(utimensat(AT_FDCWD, planted, &times, AT_SYMLINK_NOFOLLOW) == 0)
            }
            let before = try FileFingerprint(target)
            let inner = file == "NAME/" ? try FileFingerprint(target + (variant == "symlink" ? "/keep" : "/record.json")) : nil
            let apply = try await w.qemuctl("apply", "--timeout", "10", "-f", vms)
            #expect(apply.status != 0, "\(variant) \(file): apply succeeded: \(apply.out)")
            // Refused for what it is: the path, and a link or the other user's ownership.
            let why = variant == "symlink" ? "\(planted) is a symbolic link" : "\(planted) is owned by uid \(try UnprivilegedUser.ids().uid)"
            #expect((apply.out + apply.err).contains(why), "\(variant) \(file): \(apply.out)\(apply.err)")
            #expect(try FileFingerprint(target) == before, "\(variant) \(file): \(target) changed")
            if let inner {
                #expect(try FileFingerprint(target + (variant == "symlink" ? "/keep" : "/record.json")) == inner)
            }
            var st = stat()
            #expect(lstat(planted, &st) == 0, "\(variant) \(file): the planted entry was removed instead of refused")
            #expect(w.qemus().isEmpty, "\(variant) \(file): a QEMU was started")
        }
    }

    /// Finding 8: read commands create nothing (a missing directory holds no VMs); an unusable
    /// path is an error naming the call, the path and errno's text; an unwritable state directory
    /// says EACCES's text, not that another qemuctl holds the lock.
    @Test func readCommandsCreateNothingAndErrorsSayWhy() async throws {
        let ids = try UnprivilegedUser.ids()
        let w = try Workspace("tb8")
        defer { w.cleanUp() }
        let vms = try w.manifest("r", bareVM("r"))
        for args in [["get"], ["describe", "r"], ["diff", "-f", vms], ["plan", "-f", vms]] {
            let r = try await QemuctlBinary.run(args, environment: w.env, directory: w.dir.path)
            #expect(!FileManager.default.fileExists(atPath: w.state), "\(args) created \(w.state)")
            if args == ["get"] { #expect(r.status == 0 && r.out.contains("No VMs"), "\(r.out)\(r.err)") }
        }
        let bad = try await QemuctlBinary.run(["get", "--state-dir", "/etc/passwd/x"])
        #expect(bad.status != 0)
        #expect(bad.err.contains("stat(/etc/passwd/x) failed: Not a directory"), "\(bad.err)")

        // The other user's own directory, made read-only: its apply says so.
        #expect(chmod(w.dir.path, 0o755) == 0)
        let home = w.dir.file("home")
        try UnprivilegedUser.makeDirectory(home, mode: 0o755)
        try UnprivilegedUser.makeDirectory(home + "/s", mode: 0o500)
        try UnprivilegedUser.makeDirectory(home + "/vms", mode: 0o755)
        try UnprivilegedUser.plantFile(home + "/vms/r.yaml", bareVM("r"), mode: 0o644)
        let binary = try UnprivilegedUser.executableCopy(of: QemuctlBinary.path, in: home)
        let r = try UnprivilegedUser.runAs([binary, "apply", "-f", home + "/vms", "--state-dir", home + "/s"],
                                           environment: ["HOME": home, "PATH": "/usr/bin:/bin"])
        #expect(r.status != 0)
        #expect(r.output.contains("\(home)/s/.apply.lock") && r.output.contains("Permission denied"), "\(r.output)")
        #expect(!r.output.contains("another qemuctl"), "\(r.output)")
        _ = ids
    }

    /// Finding 15: without HOME and without a passwd entry, the default state directory is an error
    /// (no `getpwuid` in the static binary, no shared fallback such as /tmp/.cache/qemuctl).
    @Test func noHomeIsAClearErrorNotASharedDirectory() async throws {
        let shared = "/tmp/.cache/qemuctl"
        let existed = FileManager.default.fileExists(atPath: shared)
        let dir = try TempDir("tbn")
        defer { dir.remove() }
        let binary = try UnprivilegedUser.executableCopy(of: QemuctlBinary.path, in: dir.path)
        let r = try UnprivilegedUser.run(["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "/usr/bin/setpriv", "--reuid=54329", "--regid=54329",
                                          "--clear-groups", binary, "get"])
        #expect(r.status == 2, "\(r.output)")
        #expect(r.output.contains("HOME is not set") && r.output.contains("--state-dir"), "\(r.output)")
        #expect(FileManager.default.fileExists(atPath: shared) == existed)
    }

    /// Findings 4 and 15: one secret policy. A FIFO does not hang apply (it returns within its
    /// timeout with a clear error); an oversized, empty, group-readable, linked or foreign secret
    /// file and an empty variable are refused with the file and the fix; nothing starts.
    @Test func secretsAreReadWithOnePolicy() async throws {
        _ = try UnprivilegedUser.ids()
        let w = try Workspace("tbs")
        defer { w.cleanUp() }
        let fifo = w.dir.file("fifo.pw")
        #expect(mkfifo(fifo, 0o600) == 0)
        let big = w.dir.file("big.pw")
        #expect(FileManager.default.createFile(atPath: big, contents: Data(repeating: 0x61, count: 64 * 1024 + 1), attributes: [.posixPermissions: 0o600]))
        let empty = w.dir.file("empty.pw")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data("\n".utf8), attributes: [.posixPermissions: 0o600]))
        let loose = w.dir.file("loose.pw")
        #expect(FileManager.default.createFile(atPath: loose, contents: Data("pw".utf8), attributes: [.posixPermissions: 0o640]))
        let real = w.dir.file("real.pw")
        #expect(FileManager.default.createFile(atPath: real, contents: Data("pw".utf8), attributes: [.posixPermissions: 0o600]))
        let link = w.dir.file("link.pw")
        #expect(symlink(real, link) == 0)
        let foreign = w.dir.file("foreign.pw")
        try UnprivilegedUser.plantFile(foreign, "pw", mode: 0o600)
        let cases: [(String, String, [String])] = [
            (fifo, "{file: \(fifo)}", ["\(fifo) is not a regular file"]),
            (big, "{file: \(big)}", ["\(big) is 65537 bytes", "64 KiB"]),
            (empty, "{file: \(empty)}", ["\(empty) is empty"]),
            (loose, "{file: \(loose)}", ["mode 0640", "chmod 600 \(loose)"]),
            (link, "{file: \(link)}", ["\(link) is a symbolic link"]),
            (foreign, "{file: \(foreign)}", [UnprivilegedUser.name, "chown"]),
            ("QEMUCTL_TEST_EMPTY_PW", "{env: QEMUCTL_TEST_EMPTY_PW}", ["QEMUCTL_TEST_EMPTY_PW is empty"]),
        ]
        for (what, reference, expected) in cases {
            let vms = try w.manifest("s", bareVM("s", extra: "  display: {vnc: {listen: none, passwordFrom: \(reference)}}\n"))
            let clock = ContinuousClock()
            let started = clock.now
            let r = try await QemuctlBinary.run(["apply", "--timeout", "5", "-f", vms],
                                                environment: w.env.merging(["QEMUCTL_TEST_EMPTY_PW": ""]) { _, n in n }, directory: w.dir.path)
            #expect(clock.now - started < .seconds(20), "\(what): apply took \(clock.now - started)")
            #expect(r.status != 0, "\(what): \(r.out)")
            for e in expected { #expect(r.err.contains(e), "\(what): expected \(e) in: \(r.err)") }
            #expect(w.qemus().isEmpty)
        }
        // The same file at mode 0600 is accepted (the refusals are about the policy, not the manifest).
        let vms = try w.manifest("s", bareVM("s", extra: "  display: {vnc: {listen: none, passwordFrom: {file: \(real)}}}\n"))
        let ok = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(ok.status == 0, "\(ok.out)\(ok.err)")
    }

    /// Finding 2: an image is never created through what stands at its final path. A link planted
    /// there (by the other user in a sticky shared directory, or a dangling one in a private
    /// directory) is refused and its target untouched; a directory the other user owns, or one
    /// writable by others without the sticky bit, is refused; a created image is whole and 0600
    /// and nothing of the work directory is left.
    @Test func imagesAreNeverCreatedThroughAPlantedPath() async throws {
        _ = try UnprivilegedUser.ids()
        let w = try Workspace("tbi")
        defer { w.cleanUp() }
        #expect(chmod(w.dir.path, 0o755) == 0)
        func disk(_ path: String) throws -> String {
            try w.manifest("i", bareVM("i", extra: """
                  disks:
                    - name: d
                      file: {path: \(path), format: qcow2}
                      create: {size: 1MiB}
                """))
        }
        let victim = w.dir.file("victim")
        let before = try Self.victim(victim)

        let shared = w.dir.file("shared")
        #expect(mkdir(shared, 0o777) == 0 && chmod(shared, 0o1777) == 0)
        try UnprivilegedUser.plantLink(shared + "/d.qcow2", to: victim)
        let r1 = try await w.qemuctl("apply", "--timeout", "10", "-f", try disk(shared + "/d.qcow2"))
        #expect(r1.status != 0 && (r1.out + r1.err).contains("\(shared)/d.qcow2"), "\(r1.out)\(r1.err)")
        #expect(try FileFingerprint(victim) == before)

        let privateDir = w.dir.file("private")
        #expect(mkdir(privateDir, 0o700) == 0)
        let missing = w.dir.file("would-be-created")
        #expect(symlink(missing, privateDir + "/d.qcow2") == 0)
        let r2 = try await w.qemuctl("apply", "--timeout", "10", "-f", try disk(privateDir + "/d.qcow2"))
        #expect(r2.status != 0 && (r2.out + r2.err).contains("symbolic link to a missing file"), "\(r2.out)\(r2.err)")
        #expect(!FileManager.default.fileExists(atPath: missing), "an image was created through the dangling link")

        let theirs = w.dir.file("theirs")
        try UnprivilegedUser.makeDirectory(theirs, mode: 0o755)
        let r3 = try await w.qemuctl("apply", "--timeout", "10", "-f", try disk(theirs + "/d.qcow2"))
        #expect(r3.status != 0 && (r3.out + r3.err).contains("disk directory \(theirs) is owned by"), "\(r3.out)\(r3.err)")
        #expect(!FileManager.default.fileExists(atPath: theirs + "/d.qcow2"))

        // Root's own directory, but below one the other user owns (who could rename it away and put
        // a directory of links in its place): refused, naming that parent.
        #expect(mkdir(theirs + "/sub", 0o755) == 0)
        let r3b = try await w.qemuctl("apply", "--timeout", "10", "-f", try disk(theirs + "/sub/d.qcow2"))
        #expect(r3b.status != 0 && (r3b.out + r3b.err).contains("\(theirs), a parent of"), "\(r3b.out)\(r3b.err)")
        #expect(!FileManager.default.fileExists(atPath: theirs + "/sub/d.qcow2"))

        let open = w.dir.file("open")
        #expect(mkdir(open, 0o777) == 0 && chmod(open, 0o777) == 0)
        let r4 = try await w.qemuctl("apply", "--timeout", "10", "-f", try disk(open + "/d.qcow2"))
        #expect(r4.status != 0 && (r4.out + r4.err).contains("without the sticky bit"), "\(r4.out)\(r4.err)")
        #expect(!FileManager.default.fileExists(atPath: open + "/d.qcow2"))
        #expect(w.qemus().isEmpty)

        // In the shared sticky directory, an image of our own is created there and used.
        let r5 = try await w.qemuctl("apply", "--timeout", "30", "-f", try disk(shared + "/mine.qcow2"))
        #expect(r5.status == 0, "\(r5.out)\(r5.err)")
        var st = stat()
        #expect(lstat(shared + "/mine.qcow2", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_mode & 0o777 == 0o600 && st.st_uid == 0)
        #expect(Array((FileManager.default.contents(atPath: shared + "/mine.qcow2") ?? Data()).prefix(4)) == [0x51, 0x46, 0x49, 0xFB])
        let left = try FileManager.default.contentsOfDirectory(atPath: shared).filter { $0.contains("qemuctl.tmp") }
        #expect(left.isEmpty, "work directories left: \(left)")
    }

    /// Finding 15: a disk inside the state directory (the secret-marker key, a record) is refused
    /// when planning, before anything is created or started.
    @Test func aDiskInsideTheStateDirectoryIsRefusedAtPlanTime() async throws {
        let w = try Workspace("tbd")
        defer { w.cleanUp() }
        let a = try w.manifest("a", bareVM("a"))
        #expect(try await w.qemuctl("apply", "--timeout", "30", "-f", a).status == 0)
        let keyBefore = try FileFingerprint(w.state + "/.marker-key")
        for path in [w.state + "/.marker-key", w.state + "/a/record.json", w.state + "/./a/../.marker-key"] {
            let vms = try w.manifest("k", bareVM("k", extra: """
                  disks:
                    - name: d
                      file: {path: \(path), format: raw}
                """))
            try? FileManager.default.removeItem(atPath: w.dir.file("vms/a.yaml"))
            let plan = try await w.qemuctl("plan", "-f", vms)
            #expect(plan.status != 0 && plan.err.contains("is inside the state directory"), "\(plan.out)\(plan.err)")
            let apply = try await w.qemuctl("apply", "--timeout", "10", "-f", vms)
            #expect(apply.status != 0 && apply.err.contains("is inside the state directory"), "\(apply.out)\(apply.err)")
        }
        #expect(try FileFingerprint(w.state + "/.marker-key") == keyBefore)
        #expect(!FileManager.default.fileExists(atPath: w.state + "/k"))
    }

    /// Finding 15: the stale-temporary sweep removes only the names qemuctl makes, whose writer is
    /// gone, and never through a link or outside the state directory.
    @Test func theSweepRemovesOnlyQemuctlsOwnTemporaries() async throws {
        let w = try Workspace("tbw")
        defer { w.cleanUp() }
        let a = try w.manifest("a", bareVM("a"))
        #expect(try await w.qemuctl("apply", "--timeout", "30", "-f", a).status == 0)
        let dead: Int32 = 4_194_000  // above any pid in use here
        #expect(kill(dead, 0) != 0)
        let ours = w.state + "/a/.record.json.qemuctl.tmp.\(dead).0123456789abcdef"
        let oursTop = w.state + "/.marker-key.qemuctl.tmp.\(dead).fedcba9876543210"
        let live = w.state + "/a/.record.json.qemuctl.tmp.\(getpid()).0123456789abcdef"
        let users = [w.state + "/a/root.qcow2.tmp.20241201", w.state + "/record.json.tmp.\(dead)"]
        for p in [ours, oursTop, live] + users { #expect(FileManager.default.createFile(atPath: p, contents: Data("x".utf8))) }
        // A link in the state directory to a directory outside it holding a name the sweep would take.
        let outside = w.dir.file("outside")
        #expect(mkdir(outside, 0o700) == 0)
        let bait = outside + "/.record.json.qemuctl.tmp.\(dead).0123456789abcdef"
        #expect(FileManager.default.createFile(atPath: bait, contents: Data("x".utf8)))
        #expect(symlink(outside, w.state + "/linked") == 0)
        let again = try await w.qemuctl("apply", "--timeout", "30", "-f", a)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(!FileManager.default.fileExists(atPath: ours) && !FileManager.default.fileExists(atPath: oursTop), "stale temporaries stayed")
        #expect(FileManager.default.fileExists(atPath: live), "a running writer's temporary was removed")
        for p in users { #expect(FileManager.default.fileExists(atPath: p), "\(p) is not qemuctl's and was removed") }
        #expect(FileManager.default.fileExists(atPath: bait), "the sweep followed a link out of the state directory")
    }
}
