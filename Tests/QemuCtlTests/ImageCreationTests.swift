import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Finding 2 of issue 14, at the function: qemu-img never gets the final path (it works in a
/// private directory reached through this process's descriptor) and the image appears at the final
/// path only once complete.
@Suite struct ImageCreationTests {
    @Test func qemuImgNeverSeesTheFinalPathAndTheImageAppearsWhole() async throws {
        let dir = try TempDir("imc")
        defer { dir.remove() }
        let final = dir.file("disks/d.qcow2")
        let log = dir.file("argv.log")
        // A qemu-img that records its arguments and whether the final path exists while it works,
        // then runs the real one.
        let fake = try dir.script("qemu-img", """
        #!/bin/sh
        printf '%s\\n' "$@" > \(log)
        if [ -e \(final) ]; then echo final-exists >> \(log); else echo final-absent >> \(log); fi
        exec /usr/bin/qemu-img "$@"
        """)
        let created = try await ImageCreation.createIfMissing(path: final, format: "qcow2", size: 1 << 20, qemuImg: fake)
        #expect(created)
        let argv = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(!argv.contains { $0.contains(final) }, "qemu-img was given the final path: \(argv)")
        #expect(argv.contains { $0.hasPrefix("/proc/\(getpid())/fd/") && $0.hasSuffix("/d.qcow2") }, "\(argv)")
        #expect(argv.last == "final-absent", "the final path existed before the image was complete")
        var st = stat()
        #expect(lstat(final, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_mode & 0o777 == 0o600)
        #expect(Array((FileManager.default.contents(atPath: final) ?? Data()).prefix(4)) == [0x51, 0x46, 0x49, 0xFB])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("disks")) == ["d.qcow2"], "work directory left behind")
        // A second call finds it and creates nothing.
        #expect(try await ImageCreation.createIfMissing(path: final, format: "qcow2", size: 1 << 20, qemuImg: fake) == false)
    }

    @Test func somethingAppearingAtTheFinalPathMeanwhileIsNeverReplaced() async throws {
        let dir = try TempDir("imr")
        defer { dir.remove() }
        let final = dir.file("d.raw")
        let target = dir.file("target")
        try "keep".write(toFile: target, atomically: false, encoding: .utf8)
        // The "attacker" wins the race: a link appears at the final path while qemu-img runs.
        let fake = try dir.script("qemu-img", "#!/bin/sh\nln -s \(target) \(final)\nexec /usr/bin/qemu-img \"$@\"\n")
        await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: final, format: "raw", size: 1 << 20, qemuImg: fake)
        }
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: final) == target)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["d.raw", "qemu-img", "target"])
    }
}
