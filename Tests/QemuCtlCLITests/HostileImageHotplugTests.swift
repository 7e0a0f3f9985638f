import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Hot-plugged disks get the launch's image rules (issue 6, item 7; issue 16): a backing file named in a qcow2
/// header is refused unless the manifest declares it, a declared one is attached read-only below the image, and an
/// image that names an external data file is refused.
@Suite(.timeLimit(.minutes(2)), .offPool) struct HostileImageHotplugTests {
    static func qemuImg(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw FixtureError("qemu-img \(args) failed") }
    }

    @Test func hotPluggedImagesOpenNothingTheirHeaderNames() async throws {
        let w = try Workspace("hih")
        defer { w.cleanUp() }
        let secret = w.dir.file("host-secret")
        try Data(repeating: 0x53, count: 1 << 20).write(to: URL(fileURLWithPath: secret))
        let overlay = w.dir.file("over.qcow2"), dataFile = w.dir.file("data-file.qcow2")
        let base = w.dir.file("base.raw"), declared = w.dir.file("declared.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", overlay, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(secret)", dataFile, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "raw", base, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", declared])
        func vm(_ disks: String) -> String {
            bareVM("h", extra: "  machine: {type: q35, accel: tcg, hotplugPorts: 3}\n" + disks)
                .replacingOccurrences(of: "  machine: {type: q35, accel: tcg}\n", with: "")
        }
        func nodes() async throws -> [JSONValue] {
            try await QMPClient.withConnection(to: "\(w.state)/h.sock") { qmp in
                try await qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
            }
        }
        let vms = try w.manifest("h", vm(""))
        let created = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")

        // An overlay whose backing file the manifest does not declare: refused, naming it and the way to declare it.
        try w.manifest("h", vm("  disks:\n    - {name: over, file: {path: \(overlay), format: qcow2}}\n"))
        let undeclared = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(undeclared.status != 0)
        #expect(undeclared.out.contains("disk over: the qcow2 image \(overlay) has the backing file \(secret) (raw), which the manifest does not declare"),
                "\(undeclared.out)\(undeclared.err)")
        #expect(undeclared.out.contains("file.backing: {path: \(secret), format: raw}"), "\(undeclared.out)")
        #expect(try await nodes().allSatisfy { $0["file"]?.stringValue != secret && $0["node-name"]?.stringValue != "fmt-over" })

        // A declared chain is hot-plugged with the base read-only below the overlay; so is an overlay made from the
        // base by the hot-plug itself.
        let made = w.dir.file("made.qcow2")
        try w.manifest("h", vm("  disks:\n    - {name: dec, file: {path: \(declared), format: qcow2, backing: {path: \(base), format: raw}}}\n"
                               + "    - {name: new, file: {path: \(made), format: qcow2}, create: {from: {path: \(base), format: raw}}}\n"))
        let plugged = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(plugged.status == 0, "\(plugged.out)\(plugged.err)")
        #expect(plugged.out.contains("+ spec.disks[dec] hot-plugged"), "\(plugged.out)")
        #expect(plugged.out.contains("created disk new: \(made) (qcow2, overlay of \(base) (raw))"), "\(plugged.out)")
        #expect(plugged.out.contains("+ spec.disks[new] hot-plugged"), "\(plugged.out)")
        let list = try await nodes()
        func node(_ name: String) -> JSONValue? { list.first { $0["node-name"]?.stringValue == name } }
        #expect(Set(list.compactMap { $0["node-name"]?.stringValue })
                    == ["bfile-dec", "bfmt-dec", "file-dec", "fmt-dec", "bfile-new", "bfmt-new", "file-new", "fmt-new"], "\(list)")
        #expect(node("bfmt-new")?["ro"]?.boolValue == true && node("fmt-new")?["backing_file"]?.stringValue == base)
        #expect(node("bfmt-dec")?["drv"]?.stringValue == "raw")
        #expect(node("bfmt-dec")?["ro"]?.boolValue == true)
        #expect(node("bfile-dec")?["file"]?.stringValue == base)
        #expect(node("fmt-dec")?["backing_file"]?.stringValue == base)
        #expect(node("fmt-dec")?["ro"]?.boolValue == false)
        // The record keeps the chain, and describe shows it.
        let described = try await w.qemuctl("describe", "h")
        #expect(described.out.contains("backing: \(base) (raw, read-only)"), "\(described.out)")

        try w.manifest("h", vm("  disks:\n    - {name: dec, file: {path: \(declared), format: qcow2, backing: {path: \(base), format: raw}}}\n"
                               + "    - {name: new, file: {path: \(made), format: qcow2}, create: {from: {path: \(base), format: raw}}}\n"
                               + "    - {name: df, file: {path: \(dataFile), format: qcow2}}\n"))
        let refused = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(refused.status != 0)
        #expect(refused.out.contains("disk df: the qcow2 image \(dataFile) names an external data file"), "\(refused.out)\(refused.err)")
        let after = try await nodes()
        #expect(!after.contains { $0["file"]?.stringValue == secret || $0["node-name"]?.stringValue == "fmt-df" })

    }
}
