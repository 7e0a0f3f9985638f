import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// The library as another package uses it: `examples/library-consumer` depends on qemuctl by
/// URL and version, built against a tagged clone of this repository (a remote dependency to
/// SwiftPM, so unsafe build flags or a missing product would fail it), then run against a
/// real QEMU: attach by name, read the state, set a disk throttle that QMP reads back.
@Suite("Library consumer", .serialized)
struct LibraryConsumerTests {
    @Test("a package depending on qemuctl by version builds and controls a real QEMU")
    func consumerBuildsFromATaggedCloneAndRuns() async throws {
        let dir = try TempDir("consumer")
        defer { dir.remove() }
        let git = "/usr/bin/git"
        // A clone of what is committed, tagged as a release.
        let clone = dir.file("qemuctl")
        var (status, output) = try await runTool(git, ["clone", "--quiet", "--no-hardlinks", Fixtures.repoRoot, clone])
        try #require(status == 0, "git clone: \(output)")
        (status, output) = try await runTool(git, ["-C", clone, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "0.1.0", "-m", "test release"])
        try #require(status == 0, "git tag: \(output)")

        // The example package, pointed at the clone instead of the public URL.
        let consumer = dir.file("vmstatus")
        try FileManager.default.createDirectory(atPath: consumer + "/Sources/vmstatus", withIntermediateDirectories: true)
        let example = Fixtures.repoRoot + "/examples/library-consumer"
        let manifest = try String(contentsOfFile: example + "/Package.swift", encoding: .utf8)
        let publicURL = "https://github.com/qemuctl/qemuctl.git"
        try #require(manifest.contains("url: \"\(publicURL)\", from: \"0.1.0\""), "the example depends on qemuctl by version")
        try manifest.replacingOccurrences(of: publicURL, with: "file://" + clone)
            .write(toFile: consumer + "/Package.swift", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: example + "/Sources/vmstatus/main.swift",
                                         toPath: consumer + "/Sources/vmstatus/main.swift")

        (status, output) = try await runTool("/usr/bin/env", ["swift", "build", "--package-path", consumer,
                                                             "--scratch-path", consumer + "/.build"])
        #expect(status == 0, "swift build of the consumer package: \(output)")
        #expect(!output.contains("unsafe"), "\(output)")
        let binary = consumer + "/.build/debug/vmstatus"
        try #require(FileManager.default.isExecutableFile(atPath: binary))

        // A real QEMU with a second monitor at DIR/vm1.sock (the library's NAME.sock layout)
        // and one disk, `disk-data`.
        let sockets = dir.file("run")
        try FileManager.default.createDirectory(atPath: sockets, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        let qemu = try QEMUProcess(args: [
            "-machine", "q35", "-accel", "tcg", "-m", "64",
            "-qmp", "unix:\(sockets)/vm1.sock,server=on,wait=off",
            "-blockdev", #"{"driver":"null-co","node-name":"n0","size":1048576}"#,
            "-device", #"{"driver":"virtio-blk-pci","drive":"n0","id":"disk-data"}"#,
        ])
        defer { qemu.kill() }

        (status, output) = try await runTool(binary, ["vm1", "--dir", sockets, "--throttle", "data", "2097152"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("vm1: prelaunch (pid \(qemu.pid))"), "\(output)")
        #expect(output.contains("/machine/peripheral/disk-data/virtio-backend: null-co, bps limit 2097152"), "\(output)")

        // Read back by our own client, not by the program under test.
        let client = try await QMPClient.connect(to: qemu.socketPath)
        defer { client.close() }
        let disk = try await client.queryBlock().first { $0.qdev?.contains("disk-data") == true }
        #expect(disk?.inserted?.throttle.bps == 2_097_152)

        // A wrong name is an error, not a crash.
        (status, output) = try await runTool(binary, ["nosuchvm", "--dir", sockets])
        #expect(status == 1)
        #expect(output.contains("vmstatus: "), "\(output)")
    }
}
