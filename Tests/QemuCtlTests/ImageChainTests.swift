import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Images made from a base (overlay or copy) and declared backing chains, with the real qemu-img and QEMU (issue 16,
/// "Images").
@Suite(.timeLimit(.minutes(3)), .offPool) struct ImageChainTests {
    /// `qemu-img ARGS`, failing the test with its stderr when it fails; returns its standard output.
    @discardableResult
    static func qemuImg(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard p.terminationStatus == 0 else { throw FixtureError("qemu-img \(args.joined(separator: " ")): \(errText)") }
        return text
    }

    /// `qemu-img info --output=json` of `path` read as `format`.
    static func info(_ path: String, _ format: String) throws -> JSONValue {
        try JSONValue(parsing: try qemuImg(["info", "-U", "-f", format, "--output=json", path]))
    }

    /// The bytes of a (small) file, to compare before and after.
    static func digest(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// A 2 MiB raw base whose first MiB is 0x11 and a qcow2 copy of it.
    static func bases(in dir: TempDir) throws -> (raw: String, qcow2: String) {
        let raw = dir.file("base.raw"), qcow2 = dir.file("base.qcow2")
        var bytes = Data(repeating: 0x11, count: 1 << 20)
        bytes.append(Data(repeating: 0, count: 1 << 20))
        try bytes.write(to: URL(fileURLWithPath: raw))
        try qemuImg(["convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2])
        return (raw, qcow2)
    }

    /// Runs a qemu-io command on block node `node` of `vm` through the human monitor; returns its output.
    static func qemuIO(_ vm: Instance, _ node: String, _ command: String) async throws -> String {
        let r = try await vm.qmp.execute("human-monitor-command", arguments: ["command-line": .string("qemu-io -d \(node) \"\(command)\"")])
        return r.stringValue ?? ""
    }

    @Test func overlayIsAQcow2BackedByTheBaseWithItsFormatRecorded() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (raw, qcow2) = try Self.bases(in: dir)
        for (base, format) in [(raw, DiskFormat.raw), (qcow2, .qcow2)] {
            let before = try Self.digest(base)
            let overlay = dir.file("vm-\(format.rawValue)/root.qcow2")
            let made = try await ImageCreation.createIfMissing(path: overlay, format: "qcow2", size: nil,
                                                               from: .init(path: base, format: format, mode: .overlay))
            #expect(made)
            let info = try Self.info(overlay, "qcow2")
            #expect(info["format"]?.stringValue == "qcow2")
            #expect(info["backing-filename"]?.stringValue == base)
            #expect(info["backing-filename-format"]?.stringValue == format.rawValue)
            #expect(info["virtual-size"]?.intValue == 2 << 20, "an overlay without create.size has the base's size")
            #expect(try Self.digest(base) == before)
            // What the header names is what the check reads.
            #expect(try ImageHeader.backing(path: overlay, format: .qcow2).get() == .init(path: base, format: format.rawValue))
            #expect(HostFileCheck.imageProblem(path: overlay, format: .qcow2, backing: BackingFile(path: base, format: format)) == nil)
            // Made once: a second call leaves it.
            #expect(try await ImageCreation.createIfMissing(path: overlay, format: "qcow2", size: nil,
                                                            from: .init(path: base, format: format, mode: .overlay)) == false)
        }
    }

    /// A base reached through a link (`current/disk.qcow2`): the overlay's header names the real file, so the
    /// declaration through the link holds while the link points there, and an overlay is refused, not read over
    /// another base, once the link is re-pointed (a rebuilt base).
    @Test func overlayOfALinkedBaseNamesTheRealFileAndIsRefusedWhenTheLinkMoves() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (raw, _) = try Self.bases(in: dir)
        try FileManager.default.createDirectory(atPath: dir.file("v1"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("v2"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: raw, toPath: dir.file("v1/disk.raw"))
        try FileManager.default.copyItem(atPath: raw, toPath: dir.file("v2/disk.raw"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("current"), withDestinationPath: "v1")
        let declared = dir.file("current/disk.raw")
        let overlay = dir.file("o.qcow2")
        #expect(try await ImageCreation.createIfMissing(path: overlay, format: "qcow2", size: nil,
                                                        from: .init(path: declared, format: .raw, mode: .overlay)))
        #expect(try Self.info(overlay, "qcow2")["backing-filename"]?.stringValue == dir.file("v1/disk.raw"))
        #expect(HostFileCheck.imageProblem(path: overlay, format: .qcow2, backing: BackingFile(path: declared, format: .raw)) == nil)
        try FileManager.default.removeItem(atPath: dir.file("current"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("current"), withDestinationPath: "v2")
        let problem = HostFileCheck.imageProblem(path: overlay, format: .qcow2, backing: BackingFile(path: declared, format: .raw))
        #expect(problem?.contains("has the backing file \(dir.file("v1/disk.raw")), not the declared \(declared)") == true, "\(problem ?? "")")
    }

    /// Many VMs share one base: each opens it read-only below its own overlay, at the same time, and an
    /// overlay can still be made from it while they run.
    @Test func manyVMsShareOneBase() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (_, qcow2) = try Self.bases(in: dir)
        let before = try Self.digest(qcow2)
        var vms: [Instance] = []
        defer { for vm in vms { Task { try? await vm.forceStop() } } }
        for i in 0..<3 {
            let overlay = dir.file("vm\(i).qcow2")
            #expect(try await ImageCreation.createIfMissing(path: overlay, format: "qcow2", size: nil,
                                                            from: .init(path: qcow2, format: .qcow2, mode: .overlay)))
            let disk = Disk(name: "root", backend: .file(FileDisk(path: overlay, format: .qcow2, backing: BackingFile(path: qcow2, format: .qcow2))))
            vms.append(try await Instance.start(TestVMs.bare("share\(i)", disks: [disk]),
                                                options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30))))
        }
        for vm in vms {
            let nodes = try await vm.qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
            #expect(nodes.contains { $0["node-name"]?.stringValue == "bfmt-root" && $0["ro"]?.boolValue == true })
        }
        for vm in vms { try await vm.forceStop() }
        #expect(try Self.digest(qcow2) == before)
    }

    @Test func sizeMayGrowTheNewImageButNeverShrinkIt() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (_, qcow2) = try Self.bases(in: dir)
        let grown = dir.file("grown.qcow2")
        #expect(try await ImageCreation.createIfMissing(path: grown, format: "qcow2", size: 8 << 20,
                                                        from: .init(path: qcow2, format: .qcow2, mode: .overlay)))
        #expect(try Self.info(grown, "qcow2")["virtual-size"]?.intValue == 8 << 20)
        let copy = dir.file("grown-copy.raw")
        #expect(try await ImageCreation.createIfMissing(path: copy, format: "raw", size: 4 << 20,
                                                        from: .init(path: qcow2, format: .qcow2, mode: .copy)))
        #expect(try Self.info(copy, "raw")["virtual-size"]?.intValue == 4 << 20)
        let small = dir.file("small.qcow2")
        let error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: small, format: "qcow2", size: 1 << 20,
                                                        from: .init(path: qcow2, format: .qcow2, mode: .overlay))
        }
        #expect(error?.message.contains("its base \(qcow2) is 2097152 bytes") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: small))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["base.qcow2", "base.raw", "grown-copy.raw", "grown.qcow2"],
                "a refused creation leaves nothing behind")
    }

    @Test func copyIsIndependentOfTheBase() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (raw, qcow2) = try Self.bases(in: dir)
        let copy = dir.file("copy.qcow2")
        #expect(try await ImageCreation.createIfMissing(path: copy, format: "qcow2", size: nil,
                                                        from: .init(path: raw, format: .raw, mode: .copy)))
        let info = try Self.info(copy, "qcow2")
        #expect(info["backing-filename"] == nil, "\(info)")
        #expect(info["virtual-size"]?.intValue == 2 << 20)
        // Same content as the base, and still the same after the base is gone.
        _ = try Self.qemuImg(["compare", "-q", "-f", "raw", "-F", "qcow2", raw, copy])
        try FileManager.default.removeItem(atPath: raw)
        try FileManager.default.removeItem(atPath: qcow2)
        _ = try Self.qemuImg(["check", "-q", "-f", "qcow2", copy])
        let map = try Self.qemuImg(["map", "-f", "qcow2", "--output=json", copy])
        #expect(map.contains("\"data\": true"), "\(map)")
    }

    @Test func refusedBases() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (raw, _) = try Self.bases(in: dir)
        // Missing.
        var error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("a.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: dir.file("missing.raw"), format: .raw, mode: .overlay))
        }
        #expect(error?.message.contains("cannot open the base image \(dir.file("missing.raw"))") == true, "\(error?.message ?? "")")
        // Not a regular file, for an overlay.
        error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("b.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: "/dev/null", format: .raw, mode: .overlay))
        }
        #expect(error?.message.contains("/dev/null is not a regular file") == true, "\(error?.message ?? "")")
        // The image itself.
        error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("c.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: dir.file("c.qcow2"), format: .qcow2, mode: .overlay))
        }
        #expect(error?.message.contains("is the image itself") == true, "\(error?.message ?? "")")
        // A base that names a backing file of its own: never followed, by an overlay or a copy.
        let chained = dir.file("chained.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", chained])
        for mode in [ImageCreation.Base.Mode.overlay, .copy] {
            error = await #expect(throws: ImageCreation.Failure.self) {
                _ = try await ImageCreation.createIfMissing(path: dir.file("d-\(mode).qcow2"), format: "qcow2", size: nil,
                                                            from: .init(path: chained, format: .qcow2, mode: mode))
            }
            #expect(error?.message.contains("refusing the base image \(chained): the qcow2 image \(chained) has a backing file of its own (\(raw)); a base must be self-contained") == true,
                    "\(error?.message ?? "")")
        }
        // In a directory others can write (no sticky bit): another user could swap the base under the overlays.
        try FileManager.default.createDirectory(atPath: dir.file("open"), withIntermediateDirectories: true)
        #expect(chmod(dir.file("open"), 0o777) == 0)
        try FileManager.default.copyItem(atPath: raw, toPath: dir.file("open/base.raw"))
        error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("f.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: dir.file("open/base.raw"), format: .raw, mode: .overlay))
        }
        #expect(error?.message.contains("its directory \(dir.file("open")) is writable by group or others without the sticky bit") == true,
                "\(error?.message ?? "")")
        // Or through a link into such a directory.
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.raw"), withDestinationPath: dir.file("open/base.raw"))
        error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("g.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: dir.file("link.raw"), format: .raw, mode: .overlay))
        }
        #expect(error?.message.contains("writable by group or others without the sticky bit") == true, "\(error?.message ?? "")")
        // Declared with the wrong format: qemu-img cannot read it as that.
        error = await #expect(throws: ImageCreation.Failure.self) {
            _ = try await ImageCreation.createIfMissing(path: dir.file("e.qcow2"), format: "qcow2", size: nil,
                                                        from: .init(path: raw, format: .qcow2, mode: .overlay))
        }
        #expect(error?.message.contains("qemu-img cannot read the base image \(raw) as qcow2") == true, "\(error?.message ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["base.qcow2", "base.raw", "chained.qcow2", "link.raw", "open"])
    }

    @Test func configurationRefusesBackingFilesItCannotAttach() {
        func problems(_ f: FileDisk) -> [String] { TestVMs.bare("v", disks: [Disk(name: "d", backend: .file(f))]).problems().map(\.message) }
        #expect(problems(FileDisk(path: "/i.raw", format: .raw, backing: BackingFile(path: "/b.raw", format: .raw)))
                    .contains("a declared backing file needs a qcow2 image, not raw"))
        #expect(problems(FileDisk(path: "/i.qcow2", format: .qcow2, backing: BackingFile(path: "/i.qcow2", format: .qcow2)))
                    .contains("the image cannot be its own backing file"))
        #expect(!problems(FileDisk(path: "/i.qcow2", format: .qcow2, backing: BackingFile(path: "b.raw", format: .raw))).isEmpty,
                "a relative backing path")
        #expect(problems(FileDisk(path: "/i.qcow2", format: .qcow2, backing: BackingFile(path: "/b.raw", format: .raw))).isEmpty)
    }

    @Test func headerNamesAreResolvedBesideTheImage() throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (raw, _) = try Self.bases(in: dir)
        try FileManager.default.createDirectory(atPath: dir.file("sub"), withIntermediateDirectories: true)
        let overlay = dir.file("sub/rel.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", "../base.raw", "-F", "raw", overlay, "2M"])
        #expect(try ImageHeader.backing(path: overlay, format: .qcow2).get() == .init(path: raw, format: "raw"))
        #expect(HostFileCheck.imageProblem(path: overlay, format: .qcow2, backing: BackingFile(path: raw, format: .raw)) == nil)
        #expect(ImageHeader.resolved("json:{}", beside: overlay) == "json:{}")
        #expect(ImageHeader.resolved("nbd://h/x", beside: overlay) == "nbd://h/x")
        #expect(ImageHeader.resolved("./a/../b", beside: "/x/y/z.qcow2") == "/x/y/b")
        let qed = dir.file("o.qed")
        try Self.qemuImg(["create", "-q", "-f", "qed", "-b", raw, "-F", "raw", qed])
        #expect(try ImageHeader.backing(path: qed, format: .qed).get() == .init(path: raw, format: "raw"))
        #expect(try ImageHeader.backing(path: raw, format: .qcow2).get() == nil, "not a qcow2: names nothing")
    }

    /// The declared chain is attached with both formats explicit and the base read-only; the guest (here qemu-io
    /// in QEMU) sees the base's data through the overlay, and what it writes lands in the overlay, never the base.
    @Test func declaredChainIsAttachedWithTheBaseReadOnlyAndNeverWritten() async throws {
        let dir = try TempDir("ich")
        defer { dir.remove() }
        let (_, qcow2) = try Self.bases(in: dir)
        let overlay = dir.file("root.qcow2")
        #expect(try await ImageCreation.createIfMissing(path: overlay, format: "qcow2", size: nil,
                                                        from: .init(path: qcow2, format: .qcow2, mode: .overlay)))
        let before = try Self.digest(qcow2)
        let disk = Disk(name: "root", backend: .file(FileDisk(path: overlay, format: .qcow2, backing: BackingFile(path: qcow2, format: .qcow2))))
        let config = TestVMs.bare("ich1", disks: [disk])
        let argv = try config.commandLine(LaunchOptions(qmpSocketPath: dir.file("q.sock"), runtimeDirectory: dir.path)).arguments.joined(separator: " ")
        #expect(argv.contains(#"{"driver":"file","node-name":"bfile-root","filename":"\#(qcow2)","read-only":true}"#), "\(argv)")
        #expect(argv.contains(#"{"driver":"qcow2","node-name":"bfmt-root","file":"bfile-root","backing":null,"read-only":true}"#), "\(argv)")
        #expect(argv.contains(#"{"driver":"qcow2","node-name":"fmt-root","file":"file-root","backing":"bfmt-root"}"#), "\(argv)")
        let vm = try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        defer { Task { try? await vm.forceStop() } }
        let nodes = try await vm.qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
        func node(_ name: String) -> JSONValue? { nodes.first { $0["node-name"]?.stringValue == name } }
        #expect(node("bfmt-root")?["drv"]?.stringValue == "qcow2")
        #expect(node("bfmt-root")?["ro"]?.boolValue == true)
        #expect(node("bfile-root")?["ro"]?.boolValue == true)
        #expect(node("bfile-root")?["file"]?.stringValue == qcow2)
        #expect(node("fmt-root")?["ro"]?.boolValue == false)
        #expect(node("fmt-root")?["backing_file"]?.stringValue == qcow2)
        #expect(node("fmt-root")?["image"]?["backing-filename-format"]?.stringValue == "qcow2")
        let block = try await vm.qmp.execute("query-block").arrayValue ?? []
        let root = block.first { $0["qdev"]?.stringValue == "/machine/peripheral/disk-root/virtio-backend" || $0["qdev"]?.stringValue == "disk-root" }
        #expect(root?["inserted"]?["image"]?["backing-image"]?["format"]?.stringValue == "qcow2", "\(block)")

        // A write of 4 KiB through the guest's device: copy-on-write fills the rest of the overlay's 64 KiB cluster
        // from the base, which QEMU reads through the declared chain; the base itself is never written.
        // (qemu-io prints its results on QEMU's stdout, so the effect is read from the files.)
        let wrote = try await Self.qemuIO(vm, "/machine/peripheral/disk-root/virtio-backend", "write -P 0x5a 0 4k")
        #expect(!wrote.contains("rror"), "\(wrote)")
        _ = try await Self.qemuIO(vm, "/machine/peripheral/disk-root/virtio-backend", "flush")
        try await vm.forceStop()
        #expect(try Self.digest(qcow2) == before, "the base was written")
        let map = try JSONValue(parsing: try Self.qemuImg(["map", "-U", "-f", "qcow2", "--output=json", overlay])).arrayValue ?? []
        let first = try #require(map.first { $0["start"]?.intValue == 0 }, "\(map)")
        #expect(first["depth"]?.intValue == 0, "the written cluster is the overlay's: \(map)")
        let offset = try #require(first["offset"]?.intValue, "\(map)")
        let file = try Self.digest(overlay)
        let cluster = file[offset..<offset + 65536]
        #expect(cluster.prefix(4096).allSatisfy { $0 == 0x5a }, "the guest's write")
        #expect(cluster.dropFirst(4096).allSatisfy { $0 == 0x11 }, "the rest of the cluster, read from the base")
    }
}
