import Foundation
import QemuCtlTestSupport
import Testing

/// A VM whose QEMU refuses to start (here: its port forward's host port is taken) leaves nothing
/// in the state directory that `get` would hide and `delete` refuse; its new disk image is kept.
@Suite(.timeLimit(.minutes(2)), .offPool) struct FailedLaunchTests {
    @Test func aRefusedLaunchLeavesNoDebrisAndKeepsTheNewImage() async throws {
        let w = try Workspace("fail")
        defer { w.cleanUp() }
        // Someone else holds the host port the manifest forwards.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        var listening = true
        defer { if listening { close(listener) } }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        try #require(bound == 0 && listen(listener, 1) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let image = w.dir.file("img/clash.qcow2")
        let vms = try w.manifest("clash", bareVM("clash", extra: """
              disks:
                - name: root
                  file: {path: \(image), format: qcow2}
                  create: {size: 16MiB}
              networks:
                - name: net0
                  user: {restrict: true, hostfwd: ["tcp:127.0.0.1:\(port)-:22"]}
            """))
        let failed = try await w.qemuctl("apply", "-f", vms)
        #expect(failed.status == 1, "\(failed.out)\(failed.err)")
        #expect(failed.out.contains("nothing of clash was left in the state directory (disk images kept: \(image))"), "\(failed.out)")
        // No debris: no runtime directory, no socket; get lists nothing, delete says it is not managed.
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/clash"))
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/clash.sock"))
        #expect(w.qemus().isEmpty)
        let get = try await w.qemuctl("get", "-o", "json")
        #expect(!get.out.contains("clash"), "\(get.out)")
        // The image this apply created is kept (never deleted unless asked for by name).
        #expect(FileManager.default.fileExists(atPath: image))
        // Once the port is free, the same apply launches it with that image.
        close(listener)
        listening = false
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(w.pid("clash") != nil)
        #expect(!again.out.contains("created disk root"), "the kept image is used, not made again: \(again.out)")
    }
}
