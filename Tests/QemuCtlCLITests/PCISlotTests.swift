import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// Issue 20, item 3: a device keeps its PCI slot across restarts (so the guest keeps its name
/// for a NIC: enp0s6), a manifest can pin one with `pciAddress`, and a clash is a validate error.
@Suite(.timeLimit(.minutes(4)), .offPool) struct PCISlotTests {
    /// The root-bus slot of each device with an id, as QEMU reports it (`query-pci`).
    static func slots(_ w: Workspace, _ name: String) async throws -> [String: Int] {
        let buses = try await QMPClient.withConnection(to: "\(w.state)/\(name).sock") { try await $0.execute("query-pci") }
        var out: [String: Int] = [:]
        for bus in buses.arrayValue ?? [] where bus["bus"]?.intValue == 0 {
            for d in bus["devices"]?.arrayValue ?? [] {
                if let id = d["qdev_id"]?.stringValue, !id.isEmpty, let slot = d["slot"]?.intValue { out[id] = slot }
            }
        }
        return out
    }

    /// A q35 VM without hot-plug ports (so removing a disk is a restart), with a virtio disk
    /// `data` before the NICs when `disk`, and `nics` (name and optional `pciAddress`).
    func manifest(_ w: Workspace, disk: Bool, nics: [(String, String?)]) -> String {
        var spec = "  machine: {type: q35, accel: tcg, hotplugPorts: 0}\n  memory: {size: 64MiB}\n"
        if disk {
            spec += "  disks:\n    - {name: data, file: {path: \(w.dir.file("data.qcow2")), format: qcow2}, create: {size: 16MiB}}\n"
        }
        spec += "  networks:\n"
        for (name, slot) in nics {
            spec += "    - {name: \(name), user: {}\(slot.map { ", pciAddress: \"\($0)\"" } ?? "")}\n"
        }
        return "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: p}\nspec:\n" + spec
    }

    @Test func nicsKeepTheirSlotsWhenADeviceBeforeThemGoesAndTheFreedSlotIsReused() async throws {
        let w = try Workspace("pci1")
        defer { w.cleanUp() }
        var vms = try w.manifest("p", manifest(w, disk: true, nics: [("lan", nil), ("wan", nil)]))
        let created = try await w.qemuctl("apply", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")
        let first = try await Self.slots(w, "p")
        let (disk, lan, wan) = (try #require(first["disk-data"]), try #require(first["net-lan"]), try #require(first["net-wan"]))
        #expect(disk < lan && lan < wan, "\(first)")  // the disk comes first: without the record, the NICs would move down

        // The disk goes: a restart, after which both NICs are where they were.
        vms = try w.manifest("p", manifest(w, disk: false, nics: [("lan", nil), ("wan", nil)]))
        let restarted = try await w.qemuctl("apply", "-f", vms, "--restart", "if-needed", "--stop-timeout", "1")
        #expect(restarted.status == 0, "\(restarted.out)\(restarted.err)")
        #expect(restarted.out.contains("restarted"), "\(restarted.out)")
        let second = try await Self.slots(w, "p")
        #expect(second["disk-data"] == nil)
        #expect(second["net-lan"] == lan && second["net-wan"] == wan, "\(first) → \(second)")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)

        // A new NIC takes a free slot (the disk's, the lowest) and moves no other.
        vms = try w.manifest("p", manifest(w, disk: false, nics: [("lan", nil), ("wan", nil), ("dmz", nil)]))
        let added = try await w.qemuctl("apply", "-f", vms, "--restart", "if-needed", "--stop-timeout", "1")
        #expect(added.status == 0, "\(added.out)\(added.err)")
        let third = try await Self.slots(w, "p")
        #expect(third["net-lan"] == lan && third["net-wan"] == wan && third["net-dmz"] == disk, "\(third)")

        // A QEMU that died is launched again by the next apply, every device in its slot.
        let pid = try #require(w.pid("p"))
        kill(pid, SIGKILL)
        for _ in 0..<200 where kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let again = try await w.qemuctl("apply", "-f", vms)
        #expect(again.status == 0, "\(again.out)\(again.err)")
        #expect(try await Self.slots(w, "p") == third)
    }

    @Test func aPinnedAddressIsUsedAndAClashIsAValidateErrorWithItsPlace() async throws {
        let w = try Workspace("pci2")
        defer { w.cleanUp() }
        let vms = try w.manifest("p", manifest(w, disk: false, nics: [("lan", nil), ("wan", "0x10")]))
        #expect(try await w.qemuctl("validate", "-f", vms).status == 0)
        let created = try await w.qemuctl("apply", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")
        let slots = try await Self.slots(w, "p")
        #expect(slots["net-wan"] == 0x10 && slots["net-lan"] == 1, "\(slots)")

        // Two NICs on one slot: refused by validate, with the file, line and column of the second.
        let clash = try w.manifest("clash", manifest(w, disk: false, nics: [("lan", "0x10"), ("wan", "0x10")])
            .replacingOccurrences(of: "name: p}", with: "name: clash}"))
        let invalid = try await w.qemuctl("validate", "-f", "\(clash)/clash.yaml")
        #expect(invalid.status != 0)
        #expect(invalid.err.contains("clash.yaml:9:"), "\(invalid.err)")
        #expect(invalid.err.contains("first used at line 8"), "\(invalid.err)")
        #expect(invalid.err.contains("PCI slot 0x10 on the root bus is already taken in this VM"), "\(invalid.err)")

        // On a disk that is not a PCI device, or outside the slots: refused too.
        let ide = try w.manifest("ide", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: ide}
            spec:
              disks:
                - {name: d, file: {path: /d.raw, format: raw}, interface: ide, pciAddress: "0x05"}
                - {name: e, file: {path: /e.raw, format: raw}, pciAddress: "0x00"}
            """)
        let refused = try await w.qemuctl("validate", "-f", "\(ide)/ide.yaml")
        #expect(refused.status != 0)
        #expect(refused.err.contains("ide.yaml:6:") && refused.err.contains("an ide disk is not a PCI device"), "\(refused.err)")
        #expect(refused.err.contains("ide.yaml:7:") && refused.err.contains("PCI slot 0x00 is not a device slot"), "\(refused.err)")
    }

    /// An adopted QEMU's device slots are recorded at adoption: qemuctl's relaunch puts each NIC
    /// where the hand-made command line had it, not where qemuctl would have put it.
    @Test func anAdoptedVMsRelaunchKeepsTheSlotsItWasStartedWith() async throws {
        let w = try Workspace("pci3")
        defer { w.cleanUp() }
        let socket = w.dir.file("hand.sock")
        let qemu = try await handStartedQEMU([
            "-name", "hand9", "-machine", "q35", "-accel", "tcg", "-m", "64", "-S",
            "-qmp", "unix:\(socket),server=on,wait=off",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,id=nic0,addr=0x7",
            "-netdev", "user,id=n1", "-device", "e1000,netdev=n1,id=net-wan,addr=0x3",
        ], socket: socket)
        defer { kill(qemu.processIdentifier, SIGKILL) }
        let adopted = try await w.qemuctl("import", "--socket", socket, "--adopt")
        #expect(adopted.status == 0, "\(adopted.err)")
        try FileManager.default.createDirectory(atPath: w.dir.file("vms"), withIntermediateDirectories: true)
        try adopted.out.write(toFile: w.dir.file("vms/hand9.yaml"), atomically: true, encoding: .utf8)
        kill(qemu.processIdentifier, SIGKILL)
        qemu.waitUntilExit()
        let relaunched = try await w.qemuctl("apply", "-f", w.dir.file("vms/hand9.yaml"))
        #expect(relaunched.status == 0, "\(relaunched.out)\(relaunched.err)")
        let slots = try await Self.slots(w, "hand9")
        #expect(slots["net-nic0"] == 7 && slots["net-wan"] == 3, "\(slots)")
    }
}
