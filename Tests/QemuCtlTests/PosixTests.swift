import Foundation
import QemuCtl
import QemuCtlTestSupport
import Testing

@Suite struct PosixTests {
    @Test func utcTimestampIsISO8601AsFoundationWritesIt() {
        // Around a second boundary the two may differ by one second: take Foundation's before and after.
        let before = ISO8601DateFormatter().string(from: Date())
        let ours = Posix.utcTimestamp()
        let after = ISO8601DateFormatter().string(from: Date())
        #expect(ours == before || ours == after, "\(ours) vs \(before)…\(after)")
        #expect(ours.count == 20 && ours.hasSuffix("Z"))
    }

    @Test func aWrittenTimestampParsesBackAsFoundationReadsIt() {
        let text = Posix.utcTimestamp()
        let parsed = Posix.parseUTCTimestamp(text)
        #expect(parsed == ISO8601DateFormatter().date(from: text)?.timeIntervalSince1970)
        #expect(Posix.parseUTCTimestamp("2026-11-26T07:32:17Z") == 1_795_678_337)
        for bad in ["", "2026-11-26 07:32:17Z", "2026-11-26T07:32:17", "2026-1x-26T07:32:17Z", "2026-11-26T07:32:17Z "] {
            #expect(Posix.parseUTCTimestamp(bad) == nil, "\(bad)")
        }
    }

    @Test func millisecondTimestampsAreWrittenAndParsedBack() {
        let before = Date().timeIntervalSince1970
        let text = Posix.utcTimestampMilliseconds()
        let after = Date().timeIntervalSince1970
        #expect(text.count == 24 && text.hasSuffix("Z") && text.dropFirst(19).first == ".", "\(text)")
        let parsed = try? #require(Posix.parseUTCTimestamp(text))
        #expect(parsed.map { $0 >= (before * 1000).rounded(.down) / 1000 && $0 <= after } == true, "\(text)")
        #expect(Posix.parseUTCTimestamp("2026-11-26T07:32:17.250Z") == 1_795_678_337.25)
        for bad in ["2026-11-26T07:32:17.25Z", "2026-11-26T07:32:17.2500Z", "2026-11-26T07:32:17,250Z", "2026-11-26T07:32:17.x50Z"] {
            #expect(Posix.parseUTCTimestamp(bad) == nil, "\(bad)")
        }
    }

    @Test func runFeedsInputAndCollectsBothStreams() {
        // The child reads its input, echoes it on stdout and writes a line on stderr; more
        // than a pipe buffer of stderr while stdout is also open must not hang.
        let r = Posix.run("/bin/sh", ["-c", "cat; head -c 100000 /dev/zero | tr '\\0' e >&2; exit 3"],
                          environment: ["PATH=/usr/bin:/bin"], input: Array("hello\n".utf8), collectOutput: true,
                          deadline: 10_000_000_000)
        #expect(r.spawnError == nil && !r.timedOut)
        #expect(r.status == 3)
        #expect(r.stdout == "hello\n")
        #expect(r.stderr.utf8.count == 100_000 && r.stderr.allSatisfy { $0 == "e" })
    }

    @Test func runKillsAChildPastItsDeadlineAndReportsASpawnFailure() {
        let start = ContinuousClock.now
        let r = Posix.run("/bin/sleep", ["5"], environment: [], deadline: 200_000_000)
        #expect(r.timedOut && r.status == 128 + 9)
        #expect(ContinuousClock.now - start < .seconds(3))
        let missing = Posix.run("/nonexistent/qemu-img", [], environment: [])
        #expect(missing.spawnError?.contains("cannot execute /nonexistent/qemu-img") == true)
        #expect(missing.status == -1)
    }
    /// `linkNoReplace` puts a file in place without ever replacing what stands there: by `linkat`,
    /// or, on a file system without hard links, by `renameat2(RENAME_NOREPLACE)`; where neither
    /// exists nothing is put in place. This host's file systems have both, so the failures of
    /// the others are injected (debug builds).
    @Test func linkNoReplaceFallsBackToRenameNoReplaceAndNeverReplaces() throws {
        let dir = try TempDir("lnr")
        let fd = open(dir.path, O_RDONLY | O_DIRECTORY)
        try #require(fd >= 0)
        defer { close(fd) }
        func make(_ name: String, _ text: String) throws {
            try text.write(toFile: dir.file(name), atomically: false, encoding: .utf8)
        }
        func read(_ name: String) -> String? { try? String(contentsOfFile: dir.file(name), encoding: .utf8) }
        let target = "image-\(getpid()).qcow2"

        // Hard links: both names exist afterwards.
        try make("work1", "one")
        #expect(Posix.linkNoReplace(from: fd, "work1", to: fd, target, path: dir.file(target)) == nil)
        #expect(read(target) == "one" && read("work1") == "one")
        try FileManager.default.removeItem(atPath: dir.file(target))

        // No hard links (linkat: EPERM, as on vfat): renamed, without replacing.
        try make("work2", "two")
        Posix.injectFailure(.linkat, giving: target, errno: EPERM)
        #expect(Posix.linkNoReplace(from: fd, "work2", to: fd, target, path: dir.file(target)) == nil)
        #expect(read(target) == "two")
        #expect(read("work2") == nil, "renamed, so the old name is gone")

        // Something stands at the name: neither call replaces it.
        try make("work3", "three")
        Posix.injectFailure(.linkat, giving: target, errno: EPERM)
        let appeared = Posix.linkNoReplace(from: fd, "work3", to: fd, target, path: dir.file(target))
        #expect(appeared?.contains("appeared while the image was being created") == true, "\(appeared ?? "nil")")
        #expect(read(target) == "two" && read("work3") == "three")
        #expect(Posix.linkNoReplace(from: fd, "work3", to: fd, target, path: dir.file(target))?.contains("appeared") == true)
        #expect(read(target) == "two")

        // Neither hard links nor RENAME_NOREPLACE (EINVAL): nothing is put in place.
        try FileManager.default.removeItem(atPath: dir.file(target))
        Posix.injectFailure(.linkat, giving: target, errno: EPERM)
        Posix.injectFailure(.renameNoReplace, giving: target, errno: EINVAL)
        let neither = Posix.linkNoReplace(from: fd, "work3", to: fd, target, path: dir.file(target))
        #expect(neither?.contains("supports neither") == true, "\(neither ?? "nil")")
        #expect(read(target) == nil && read("work3") == "three")
        // Another failure of linkat is reported as it is, with no fallback.
        Posix.injectFailure(.linkat, giving: target, errno: EACCES)
        #expect(Posix.linkNoReplace(from: fd, "work3", to: fd, target, path: dir.file(target))?.hasPrefix("linkat(") == true)
        #expect(read(target) == nil)
        #expect(!Posix.hasInjectedFailures)
    }
}
