import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// `create.from` and `file.backing` through the command line (issue 16, "Images"): validate's errors at
/// file:line:col, apply making an overlay or a copy from a base and attaching the chain, the record and describe.
@Suite(.timeLimit(.minutes(3)), .offPool) struct ImageCLITests {
    static func qemuImg(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw FixtureError("qemu-img \(args) failed") }
        return text
    }

    /// A 1 MiB raw base whose bytes are all 0x11.
    static func base(_ w: Workspace) throws -> String {
        let path = w.dir.file("base.raw")
        try Data(repeating: 0x11, count: 1 << 20).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The line (1-based) of the first line of `text` containing `needle`.
    static func line(_ text: String, _ needle: String) -> Int {
        (text.components(separatedBy: "\n").firstIndex { $0.contains(needle) } ?? -10) + 1
    }

    @Test func validateNamesTheFieldOfEachImageProblem() async throws {
        let w = try Workspace("imv")
        defer { w.cleanUp() }
        let base = try Self.base(w)
        let overlay = w.dir.file("over.qcow2")
        _ = try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay])
        // Images that exist, checked as the launch would: a valid manifest whose images are refused.
        let yaml = bareVM("v", extra: """
              disks:
                - name: undeclared
                  file: {path: \(overlay), format: qcow2}
                - name: wrongfmt
                  file:
                    path: \(overlay)
                    format: qcow2
                    backing: {path: \(base), format: qcow2}
                - name: chainedbase
                  file: {path: \(w.dir.file("new.qcow2")), format: qcow2}
                  create: {from: {path: \(overlay), format: qcow2}}
            """)
        let vms = try w.manifest("v", yaml)
        let r = try await w.qemuctl("validate", "-f", vms)
        #expect(r.status == 1, "\(r.err)")
        let file = "\(vms)/v.yaml"
        #expect(r.err.contains("\(file):\(Self.line(yaml, "file: {path: \(overlay)")):14: error: VM 'v': disk undeclared: the qcow2 image \(overlay) has the backing file \(base) (raw), which the manifest does not declare"), "\(r.err)")
        #expect(r.err.contains("(declare it: file.backing: {path: \(base), format: raw})"), "\(r.err)")
        #expect(r.err.contains("\(file):\(Self.line(yaml, "create: {from: {path: \(overlay)")):23: error: VM 'v': disk chainedbase: the qcow2 image \(overlay) has a backing file of its own (\(base)); a base must be self-contained"), "\(r.err)")
        #expect(r.err.contains("\(file):\(Self.line(yaml, "backing: {path:")):9: error: VM 'v': disk wrongfmt: the qcow2 image \(overlay) declares its backing file \(base) as raw, not the manifest's qcow2"), "\(r.err)")

        // Bases that cannot be: the manifest's own errors.
        let bad = bareVM("b", extra: """
              disks:
                - name: self
                  file: {path: \(w.dir.file("self.qcow2")), format: qcow2}
                  create: {from: {path: \(w.dir.file("self.qcow2")), format: qcow2}}
                - name: nobase
                  file: {path: \(w.dir.file("new.qcow2")), format: qcow2}
                  create: {from: {path: \(w.dir.file("missing.raw")), format: raw}}
                - name: devbase
                  file: {path: \(w.dir.file("dev.qcow2")), format: qcow2}
                  create: {from: {path: /dev/null, format: raw}}
                - name: rawov
                  file: {path: \(w.dir.file("raw.raw")), format: raw}
                  create: {from: {path: \(base), format: raw}}
                - name: both
                  file: {path: \(w.dir.file("both.qcow2")), format: qcow2, backing: {path: \(base), format: raw}}
                  create: {from: {path: \(base), format: raw}}
            """)
        try FileManager.default.removeItem(atPath: file)
        let badFile = "\(try w.manifest("b", bad))/b.yaml"
        let e = try await w.qemuctl("validate", "-f", badFile)
        #expect(e.status == 1, "\(e.err)")
        let err = e.err
        #expect(err.contains("\(badFile):\(Self.line(bad, "create: {from: {path: \(w.dir.file("self.qcow2"))")):29: error: 'spec.disks[0].create.from.path' is the disk's own image"), "\(err)")
        #expect(err.contains("\(badFile):\(Self.line(bad, "missing.raw")):29: warning: base image '\(w.dir.file("missing.raw"))' cannot be used: No such file or directory (it must exist before 'apply')"), "\(err)")
        #expect(err.contains("\(badFile):\(Self.line(bad, "/dev/null")):29: error: base image '/dev/null' is not a regular file"), "\(err)")
        #expect(err.contains("\(badFile):\(Self.line(bad, "raw.raw") + 1):") && err.contains("'spec.disks[3].create.from' with mode overlay makes a qcow2 image, but 'file.format' is raw"), "\(err)")
        #expect(err.contains("\(badFile):\(Self.line(bad, "both.qcow2")):") && err.contains("'spec.disks[4].file.backing' cannot be given with 'create.from'"), "\(err)")
    }

    @Test func applyMakesAnOverlayAttachesTheChainAndRecordsIt() async throws {
        let w = try Workspace("imo")
        defer { w.cleanUp() }
        let base = try Self.base(w)
        let before = try Data(contentsOf: URL(fileURLWithPath: base))
        let root = w.dir.file("disks/o-root.qcow2"), copy = w.dir.file("disks/o-copy.raw")
        let vms = try w.manifest("o", bareVM("o", extra: """
              disks:
                - name: root
                  file: {path: \(root), format: qcow2}
                  create: {from: {path: \(base), format: raw}, size: 4MiB}
                - name: copy
                  file: {path: \(copy), format: raw}
                  create: {from: {path: \(base), format: raw}, mode: copy}
            """))
        let valid = try await w.qemuctl("validate", "-f", vms)
        #expect(valid.status == 0, "\(valid.err)")
        let applied = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(applied.status == 0, "\(applied.out)\(applied.err)")
        #expect(applied.out.contains("+ spec.disks[root]: file \"\(root)\" (qcow2) backed by \"\(base)\" (raw), virtio"), "\(applied.out)")
        #expect(applied.out.contains("+ spec.disks[copy]: file \"\(copy)\" (raw), virtio"), "\(applied.out)")
        #expect(applied.out.contains("created disk root: \(root) (qcow2, 4MiB, overlay of \(base) (raw))"), "\(applied.out)")
        #expect(applied.out.contains("created disk copy: \(copy) (raw, copy of \(base) (raw))"), "\(applied.out)")
        let info = try JSONValue(parsing: try Self.qemuImg(["info", "-U", "-f", "qcow2", "--output=json", root]))
        #expect(info["backing-filename"]?.stringValue == base && info["backing-filename-format"]?.stringValue == "raw")
        #expect(info["virtual-size"]?.intValue == 4 << 20)
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == before, "the copy holds the base's bytes")

        let nodes = try await QMPClient.withConnection(to: "\(w.state)/o.sock") { qmp in
            try await qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
        }
        func node(_ name: String) -> JSONValue? { nodes.first { $0["node-name"]?.stringValue == name } }
        #expect(node("bfmt-root")?["drv"]?.stringValue == "raw" && node("bfmt-root")?["ro"]?.boolValue == true, "\(nodes)")
        #expect(node("bfile-root")?["file"]?.stringValue == base && node("bfile-root")?["ro"]?.boolValue == true)
        #expect(node("fmt-root")?["backing_file"]?.stringValue == base)
        #expect(node("bfmt-copy") == nil, "a copy has no backing file")

        // The record holds the chain; describe shows it; a second apply changes nothing.
        let record = try String(contentsOfFile: "\(w.state)/o/record.json", encoding: .utf8)
        #expect(record.contains("createFrom") && record.contains(base.replacingOccurrences(of: "/", with: "\\/")), "\(record)")
        let described = try await w.qemuctl("describe", "o")
        #expect(described.out.contains("backing: \(base) (raw, read-only)"), "\(described.out)")
        // Only the overlay has a backing file; the copy has none.
        let object = try JSONSerialization.jsonObject(with: Data(try await w.qemuctl("describe", "o", "-o", "json").out.utf8)) as? [String: Any] ?? [:]
        let disks = Dictionary(uniqueKeysWithValues: (object["disks"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", $0) })
        #expect((disks["root"]?["backing"] as? [String: Any])?["path"] as? String == base, "\(object)")
        #expect(disks["copy"]?["backing"] is NSNull, "\(object)")
        let diff = try await w.qemuctl("diff", "-f", vms)
        #expect(diff.status == 0, "the running VM matches its manifest: \(diff.out)\(diff.err)")
        let again = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(again.status == 0 && !again.out.contains("created disk"), "\(again.out)\(again.err)")

        // Stopped: the base's bytes are as they were, many VMs may share it.
        let deleted = try await w.qemuctl("delete", "--force", "o")
        #expect(deleted.status == 0, "\(deleted.out)\(deleted.err)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: base)) == before)
        #expect(FileManager.default.fileExists(atPath: root) && FileManager.default.fileExists(atPath: copy), "images are never deleted")
    }
}

extension ImageCLITests {
    /// `apply` of a VM whose existing image names a backing file the manifest does not declare: refused before
    /// QEMU runs, naming the file and the declaration; declared, the same image starts.
    @Test func applyRefusesAnUndeclaredBackingFileAndStartsOnceDeclared() async throws {
        let w = try Workspace("imu")
        defer { w.cleanUp() }
        let base = try Self.base(w)
        let overlay = w.dir.file("over.qcow2")
        _ = try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay])
        let vms = try w.manifest("u", bareVM("u", extra: "  disks:\n    - {name: root, file: {path: \(overlay), format: qcow2}}\n"))
        let refused = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(refused.status != 0)
        #expect(refused.out.contains("disk root: the qcow2 image \(overlay) has the backing file \(base) (raw), which the manifest does not declare")
                    && refused.out.contains("file.backing: {path: \(base), format: raw}"), "\(refused.out)\(refused.err)")
        #expect(w.qemus().isEmpty, "no QEMU was started")
        try w.manifest("u", bareVM("u", extra: "  disks:\n    - {name: root, file: {path: \(overlay), format: qcow2, backing: {path: \(base), format: raw}}}\n"))
        let started = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(started.status == 0, "\(started.out)\(started.err)")
        #expect(w.qemus().count == 1)
    }

    /// A QEMU started by hand with an overlay on a base: `import` declares the backing file (path and the
    /// format QEMU opened it with), and the manifest validates against the image's header.
    @Test func importDeclaresTheBackingFileOfAnOverlay() async throws {
        let w = try Workspace("imi")
        defer { w.cleanUp() }
        let base = try Self.base(w)
        let overlay = w.dir.file("over.qcow2")
        _ = try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay])
        let socket = w.dir.file("hand.sock")
        let qemu = try await handStartedQEMU([
            "-name", "handov", "-machine", "q35", "-accel", "tcg", "-m", "64",
            "-qmp", "unix:\(socket),server=on,wait=off",
            "-blockdev", #"{"driver":"file","node-name":"bf","filename":"\#(base)","read-only":true}"#,
            "-blockdev", #"{"driver":"raw","node-name":"bq","file":"bf","read-only":true}"#,
            "-blockdev", #"{"driver":"file","node-name":"f0","filename":"\#(overlay)"}"#,
            "-blockdev", #"{"driver":"qcow2","node-name":"q0","file":"f0","backing":"bq"}"#,
            "-device", "virtio-blk-pci,drive=q0,id=root",
        ], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        let imported = try await w.qemuctl("import", "--socket", socket)
        #expect(imported.status == 0, "\(imported.err)")
        #expect(!imported.err.contains("backing") && !imported.err.contains("no guest device uses it"), "\(imported.err)")
        #expect(imported.out.contains("backing:\n          path: \(base)\n          format: raw"), "\(imported.out)")
        try imported.out.write(toFile: w.dir.file("handov.yaml"), atomically: true, encoding: .utf8)
        let valid = try await w.qemuctl("validate", "-f", w.dir.file("handov.yaml"))
        #expect(valid.status == 0, "\(valid.out)\(valid.err)")
    }
}
