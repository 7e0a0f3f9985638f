import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Images whose headers point at other host files: QEMU must open exactly the declared file with exactly the
/// declared format driver, and nothing the header names (issue 6, item 7).
@Suite(.timeLimit(.minutes(2)), .offPool) struct HostileImageTests {
    /// Runs `qemu-img ARGS` in `dir` and fails the test with its stderr when it fails.
    static func qemuImg(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard p.terminationStatus == 0 else { throw FixtureError("qemu-img \(args.joined(separator: " ")): \(text)") }
    }

    /// A host file that must never be opened by QEMU: a "secret" of 1 MiB.
    static func secretFile(in dir: TempDir) throws -> String {
        let path = dir.file("host-secret")
        try Data(repeating: 0x53, count: 1 << 20).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The block nodes QEMU has open: name → (driver, file name, read-only, backing depth).
    static func nodes(_ vm: Instance) async throws -> [String: (drv: String, file: String, ro: Bool, depth: Int)] {
        let list = try await vm.qmp.execute("query-named-block-nodes", arguments: ["flat": true])
        var out: [String: (String, String, Bool, Int)] = [:]
        for n in list.arrayValue ?? [] {
            out[n["node-name"]?.stringValue ?? "?"] = (n["drv"]?.stringValue ?? "?", n["file"]?.stringValue ?? "?",
                                                        n["ro"]?.boolValue ?? true, n["backing_file_depth"]?.intValue ?? -1)
        }
        return out
    }

    /// A qcow2 whose backing file is a host file (a secret, /etc/shadow, a `json:` pseudo-file name) that the
    /// configuration does not declare: refused before QEMU runs, naming the backing file and how to declare it;
    /// nothing is opened, not even the overlay.
    @Test(arguments: ["secret", "/etc/shadow", "json"])
    func undeclaredQcow2BackingFileIsRefused(_ target: String) async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let hidden = target == "/etc/shadow" ? "/etc/shadow" : secret
        let backing = target == "json" ? #"json:{"driver":"file","filename":"\#(secret)"}"# : hidden
        let image = dir.file("over.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", image, "1M"])
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h1", disks: [Disk(name: "root", file: image, format: .qcow2)]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.code == .invalidConfig)
        let message = error?.message ?? ""
        #expect(message.contains("disk root: the qcow2 image \(image) has the backing file \(backing) (raw), which the manifest does not declare"), "\(message)")
        #expect(message.contains("file.backing: {path: \(backing), format: raw}"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("s/h1/qemu.pid")), "QEMU must not have been started")
    }

    /// A qcow2 whose declared backing file differs from its header's (another path, or another format): refused,
    /// naming both.
    @Test func mismatchedBackingDeclarationIsRefused() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let base = dir.file("base.raw"), other = dir.file("other.raw"), image = dir.file("over.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "raw", base, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "raw", other, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", image])
        for (declared, expected) in [(BackingFile(path: other, format: .raw), "has the backing file \(base), not the declared \(other)"),
                                     (BackingFile(path: base, format: .qcow2), "declares its backing file \(base) as raw, not the manifest's qcow2")] {
            let disk = Disk(name: "root", backend: .file(FileDisk(path: image, format: .qcow2, backing: declared)))
            let error = await #expect(throws: InstanceError.self) {
                try await Instance.start(TestVMs.bare("h8", disks: [disk]),
                                         options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
            }
            #expect(error?.code == .invalidConfig)
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        }
        // Declaring a backing file for an image that names none is refused too.
        let plain = dir.file("plain.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", plain, "1M"])
        let disk = Disk(name: "root", backend: .file(FileDisk(path: plain, format: .qcow2, backing: BackingFile(path: base, format: .raw))))
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h9", disks: [disk]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.message.contains("header names none") == true, "\(error?.message ?? "")")
    }

    /// A declared backing file that itself names a backing file (a chain deeper than the declaration) is refused.
    @Test func backingFileWithABackingFileOfItsOwnIsRefused() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let middle = dir.file("middle.qcow2"), image = dir.file("over.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", middle, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", middle, "-F", "qcow2", image, "1M"])
        let disk = Disk(name: "root", backend: .file(FileDisk(path: image, format: .qcow2, backing: BackingFile(path: middle, format: .qcow2))))
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h10", disks: [disk]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.message.contains("backing file of \(image): the qcow2 image \(middle) has a backing file of its own (\(secret))") == true,
                "\(error?.message ?? "")")
    }

    /// A qed image with an undeclared backing file: refused too.
    @Test func undeclaredQedBackingFileIsRefused() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let image = dir.file("over.qed")
        try Self.qemuImg(["create", "-q", "-f", "qed", "-u", "-b", secret, "-F", "raw", image, "1M"])
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h2", disks: [Disk(name: "root", file: image, format: .qed)]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.message.contains("the qed image \(image) has the backing file \(secret) (raw)") == true, "\(error?.message ?? "")")
    }

    /// A file holding a qcow2 header (with a backing file) declared raw: the guest sees the bytes, nothing is
    /// probed or followed.
    @Test func qcow2HeaderDeclaredRawIsOpenedRaw() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let image = dir.file("looks-like.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", image, "1M"])
        let vm = try await Instance.start(TestVMs.bare("h3", disks: [Disk(name: "root", file: image, format: .raw)]),
                                          options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        defer { Task { try? await vm.forceStop() } }
        let nodes = try await Self.nodes(vm)
        #expect(Set(nodes.keys) == ["file-root", "fmt-root"], "\(nodes)")
        #expect(nodes["fmt-root"]?.drv == "raw")
        #expect(nodes["fmt-root"]?.file == image)
        #expect(!nodes.values.contains { $0.file == secret })
    }

    /// A raw file declared qcow2: QEMU refuses it (the declared driver finds no qcow2 header), and says so at once.
    @Test func rawDeclaredQcow2IsRefusedByQEMU() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let image = try Self.secretFile(in: dir)
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h4", disks: [Disk(name: "root", file: image, format: .qcow2)]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.code == .startFailed)
        #expect(error?.message.contains("not in qcow2 format") == true, "\(error?.message ?? "")")
        #expect(clock.now - start < .seconds(20))
    }

    /// A qcow2 with an external data file (QEMU 7.2 would open the file its header names): refused before QEMU
    /// runs, naming the image and the fix.
    @Test func qcow2WithExternalDataFileIsRefused() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let image = dir.file("data-file.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(secret)", image, "1M"])
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h5", disks: [Disk(name: "root", file: image, format: .qcow2)]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains("disk root: the qcow2 image \(image) names an external data file") == true,
                "\(error?.message ?? "")")
        #expect(error?.message.contains("qemu-img convert") == true)
        #expect(!FileManager.default.fileExists(atPath: dir.file("s/h5/qemu.pid")), "QEMU must not have been started")
    }

    /// A VMDK descriptor whose extent is a host file: refused; a self-contained sparse VMDK is opened with the
    /// vmdk driver.
    @Test func vmdkDescriptorIsRefusedAndSparseVMDKIsOpened() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let secret = try Self.secretFile(in: dir)
        let descriptor = dir.file("desc.vmdk")
        try """
            # Disk DescriptorFile
            version=1
            CID=fffffffe
            parentCID=ffffffff
            createType="monolithicFlat"

            RW 2048 FLAT "\(secret)" 0

            ddb.virtualHWVersion = "4"
            """.write(toFile: descriptor, atomically: true, encoding: .utf8)
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(TestVMs.bare("h6", disks: [Disk(name: "root", file: descriptor, format: .vmdk)]),
                                     options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.message.contains("the VMDK image \(descriptor) is a descriptor") == true, "\(error?.message ?? "")")

        let sparse = dir.file("sparse.vmdk")
        try Self.qemuImg(["create", "-q", "-f", "vmdk", sparse, "1M"])
        let vm = try await Instance.start(TestVMs.bare("h7", disks: [Disk(name: "root", file: sparse, format: .vmdk)]),
                                          options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        defer { Task { try? await vm.forceStop() } }
        let nodes = try await Self.nodes(vm)
        #expect(Set(nodes.keys) == ["file-root", "fmt-root"], "\(nodes)")
        #expect(nodes["fmt-root"]?.drv == "vmdk")
    }

    /// A VDE "socket" that is a regular file: libvdeplug would read a switch URL from its first line, and a
    /// `cmd://` URL runs a command. Refused before QEMU runs.
    @Test func vdeSocketThatIsARegularFileIsRefused() async throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        let marker = dir.file("ran")
        let file = dir.file("switch")
        try "cmd://touch \(marker)\n".write(toFile: file, atomically: true, encoding: .utf8)
        var config = TestVMs.bare("h8")
        config.networks = [Network(name: "n", backend: .vde(VDENetwork(socket: file)))]
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("s"), startPaused: true, timeout: .seconds(30)))
        }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains("network n: \(file) is a regular file") == true, "\(error?.message ?? "")")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!FileManager.default.fileExists(atPath: marker), "libvdeplug ran the command")
    }

    /// The header checks on synthetic headers: the feature bit and the VMDK variants decide, nothing else.
    @Test func headerChecksReadTheRightBits() throws {
        let dir = try TempDir("himg")
        defer { dir.remove() }
        func write(_ bytes: [UInt8]) throws -> String {
            let p = dir.file("h-\(bytes.count)-\(bytes.reduce(0) { $0 &+ Int($1) })")
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            return p
        }
        var qcow3 = [UInt8](repeating: 0, count: 104)
        qcow3.replaceSubrange(0..<8, with: [0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3])
        #expect(HostFileCheck.imageProblem(path: try write(qcow3), format: .qcow2) == nil)
        qcow3[79] = 0x04  // incompatible feature bit 2: external data file
        #expect(HostFileCheck.imageProblem(path: try write(qcow3), format: .qcow2) != nil)
        #expect(HostFileCheck.imageProblem(path: try write(qcow3), format: .raw) == nil)  // declared raw: never parsed
        qcow3[79] = 0x03  // dirty + corrupt bits: not this check's business
        #expect(HostFileCheck.imageProblem(path: try write(qcow3), format: .qcow2) == nil)
        var vmdk4 = [UInt8](repeating: 0, count: 512)
        vmdk4.replaceSubrange(0..<4, with: [0x4B, 0x44, 0x4D, 0x56])
        vmdk4[12] = 0x08  // capacity 8 sectors
        #expect(HostFileCheck.imageProblem(path: try write(vmdk4), format: .vmdk) == nil)
        vmdk4[12] = 0; vmdk4[28] = 1  // capacity 0, embedded descriptor at sector 1
        #expect(HostFileCheck.imageProblem(path: try write(vmdk4), format: .vmdk) != nil)
        #expect(HostFileCheck.imageProblem(path: dir.file("missing"), format: .qcow2) == nil)  // QEMU reports it
    }
}
