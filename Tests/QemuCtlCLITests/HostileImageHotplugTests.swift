import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Hot-plugged disks get the launch's image rules (issue 6, item 7): a backing file named in a qcow2 header is
/// not opened, and an image that names an external data file is refused.
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
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", overlay, "1M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(secret)", dataFile, "1M"])
        func vm(_ disks: String) -> String {
            bareVM("h", extra: "  machine: {type: q35, accel: tcg, hotplugPorts: 2}\n" + disks)
                .replacingOccurrences(of: "  machine: {type: q35, accel: tcg}\n", with: "")
        }
        let vms = try w.manifest("h", vm(""))
        let created = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")

        try w.manifest("h", vm("  disks:\n    - {name: over, file: {path: \(overlay), format: qcow2}}\n"))
        let plugged = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(plugged.status == 0, "\(plugged.out)\(plugged.err)")
        #expect(plugged.out.contains("+ spec.disks[over] hot-plugged"), "\(plugged.out)")
        let nodes = try await QMPClient.withConnection(to: "\(w.state)/h.sock") { qmp in
            try await qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
        }
        let names = Set(nodes.compactMap { $0["node-name"]?.stringValue })
        #expect(names == ["file-over", "fmt-over"], "\(names)")
        #expect(nodes.first { $0["node-name"]?.stringValue == "fmt-over" }?["drv"]?.stringValue == "qcow2")
        #expect(nodes.allSatisfy { $0["backing_file_depth"]?.intValue == 0 && $0["file"]?.stringValue != secret })

        try w.manifest("h", vm("  disks:\n    - {name: over, file: {path: \(overlay), format: qcow2}}\n"
                               + "    - {name: df, file: {path: \(dataFile), format: qcow2}}\n"))
        let refused = try await w.qemuctl("apply", "--timeout", "30", "-f", vms)
        #expect(refused.status != 0)
        #expect(refused.out.contains("disk df: the qcow2 image \(dataFile) names an external data file"), "\(refused.out)\(refused.err)")
        let after = try await QMPClient.withConnection(to: "\(w.state)/h.sock") { qmp in
            try await qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
        }
        #expect(!after.contains { $0["file"]?.stringValue == secret || $0["node-name"]?.stringValue == "fmt-df" })
    }
}
