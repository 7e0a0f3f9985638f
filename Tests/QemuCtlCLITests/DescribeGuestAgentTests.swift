import Foundation
import QemuCtlTestSupport
import Testing

/// `describe` with the guest agent answering: the Debian cloud guest (`make cloud-guest`) runs
/// qemu-guest-agent, so describe shows its OS and addresses.
@Suite(.timeLimit(.minutes(10)), .offPool) struct DescribeGuestAgentTests {
    @Test func theAgentTellsTheGuestsOSAndAddresses() async throws {
        let dir = (ProcessInfo.processInfo.environment["QEMUCTL_CLOUD_GUEST_DIR"] ?? (Fixtures.repoRoot + "/.cache/cloud-guest")) + "/current"
        guard FileManager.default.fileExists(atPath: dir + "/disk.qcow2") else {
            Issue.record("the cloud guest is missing at \(dir): run `make cloud-guest`")
            return
        }
        let w = try Workspace("descga")
        defer { w.cleanUp() }
        let overlay = w.dir.file("root.qcow2")
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        // A copy, not an overlay: qemuctl opens qcow2 images with `backing: null` (an image never
        // names files of the host for QEMU to open).
        made.arguments = ["convert", "-q", "-f", "qcow2", "-O", "qcow2", dir + "/disk.qcow2", overlay]
        try made.run()
        made.waitUntilExit()
        #expect(made.terminationStatus == 0)
        let cmdline = try String(contentsOfFile: dir + "/cmdline", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let vms = try w.manifest("ga", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: ga}
            spec:
              machine: {type: q35, accel: tcg}
              cpu: {model: max}
              memory: {size: 1GiB}
              boot:
                kernel: \(dir)/vmlinuz
                initrd: \(dir)/initrd.img
                cmdline: "\(cmdline)"
              disks:
                - {name: root, file: {path: \(overlay), format: qcow2}}
              networks:
                - name: net0
                  user: {restrict: true, hostfwd: ["tcp:127.0.0.1:\(Int.random(in: 30000..<60000))-:22"]}
              guestAgent: true
            """)
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        let agent = try await w.qemuctl("wait", "ga", "--for", "agent", "--timeout", "400")
        #expect(agent.status == 0, "\(agent.out)\(agent.err)")

        // The agent answers by now; the addresses come once networkd has its lease: look again for a while.
        var object: [String: Any] = [:]
        for _ in 0..<60 {
            let json = try await w.qemuctl("describe", "ga", "-o", "json")
            object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any] ?? [:]
            let interfaces = (object["guestAgent"] as? [String: Any])?["interfaces"] as? [[String: Any]] ?? []
            if interfaces.contains(where: { ($0["addresses"] as? [String] ?? []).contains("10.0.2.15/24") }) { break }
            try await Task.sleep(for: .seconds(2))
        }
        let guest = try #require(object["guestAgent"] as? [String: Any])
        #expect(guest["answered"] as? Bool == true, "\(guest)")
        #expect((guest["os"] as? String)?.contains("Debian") == true, "\(guest)")
        #expect(guest["kernel"] is String)
        let interfaces = guest["interfaces"] as? [[String: Any]] ?? []
        #expect(interfaces.contains { ($0["addresses"] as? [String] ?? []).contains("10.0.2.15/24") }, "\(interfaces)")
        let text = try await w.qemuctl("describe", "ga")
        #expect(text.out.contains("Guest (agent):") && text.out.contains("OS: Debian"), "\(text.out)")
        #expect(text.out.contains("10.0.2.15/24"), "\(text.out)")
    }
}
