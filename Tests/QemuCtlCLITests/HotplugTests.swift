import Foundation
import QMP
import QemuCtl
import QemuCtlTestSupport
import Testing

/// Disks and NICs added to and removed from a manifest reach a running q35 VM through its
/// hot-plug root ports, without a restart; without a free port the change waits for one.
@Suite(.timeLimit(.minutes(3)), .offPool) struct HotplugTests {
    /// The test guest (so that the guest can acknowledge an unplug), under TCG.
    func guestVM(_ name: String, _ w: Workspace, ports: Int = 2, extra: String = "") -> String {
        """
        apiVersion: qemuctl/v1
        kind: VirtualMachine
        metadata: {name: \(name)}
        spec:
          machine: {type: q35, accel: tcg, hotplugPorts: \(ports)}
          memory: {size: 192MiB}
          boot:
            kernel: \(Fixtures.guestKernel)
            initrd: \(Fixtures.guestInitrd)
            cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check
          serial: {log: true}
        \(extra)
        """
    }

    func pci(_ w: Workspace, _ name: String) async throws -> JSONValue {
        try await QMPClient.withConnection(to: "\(w.state)/\(name).sock") { try await $0.execute("query-pci") }
    }

    func blockDevices(_ w: Workspace, _ name: String) async throws -> [String] {
        try await QMPClient.withConnection(to: "\(w.state)/\(name).sock") { try await $0.queryBlock().compactMap(\.qdev) }
    }

    func waitForGuest(_ w: Workspace, _ name: String) async throws {
        let log = "\(w.state)/\(name)/serial.log"
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .isoLatin1), text.contains(Fixtures.guestReadyMarker) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the guest did not boot within 60 s")
    }

    @Test func diskAndNICArePluggedAndUnpluggedLiveAndTheImageIsKept() async throws {
        let w = try Workspace("hp1")
        defer { w.cleanUp() }
        let disk = w.dir.file("data.qcow2")
        let vms = try w.manifest("g", guestVM("g", w))
        let created = try await w.qemuctl("apply", "-f", vms)
        #expect(created.status == 0, "\(created.out)\(created.err)")
        let pid = try #require(w.pid("g"))
        try await waitForGuest(w, "g")
        #expect(Instance.freeHotplugPorts(queryPCI: try await pci(w, "g")) == ["hotplug0", "hotplug1"])

        // Add a virtio disk (created on the fly) and a NIC: both go live into the two ports.
        try w.manifest("g", guestVM("g", w, extra: """
              disks:
                - {name: data, file: {path: \(disk), format: qcow2}, create: {size: 16MiB}, throttle: {iops: 500}}
              networks:
                - {name: lan, user: {}}
            """))
        let plan = try await w.qemuctl("diff", "-f", vms)
        #expect(plan.status == 1)
        #expect(plan.out.contains("spec.disks[data]") && plan.out.contains("hot-plug into a free root port"), "\(plan.out)")
        let added = try await w.qemuctl("apply", "-f", vms)
        #expect(added.status == 0, "\(added.out)\(added.err)")
        #expect(added.out.contains("+ spec.disks[data] hot-plugged (hotplug0)"), "\(added.out)")
        #expect(added.out.contains("+ spec.networks[lan] hot-plugged (hotplug1)"), "\(added.out)")
        #expect(added.out.contains("0 restart pending"), "\(added.out)")
        #expect(w.pid("g") == pid, "the VM was not relaunched")
        #expect(FileManager.default.fileExists(atPath: disk))
        let reply = try await pci(w, "g")
        #expect(Instance.freeHotplugPorts(queryPCI: reply).isEmpty)
        #expect(try await blockDevices(w, "g").contains { $0.contains("disk-data") })
        // The throttle of the hot-plugged disk is the manifest's, read back from QEMU.
        let iops = try await QMPClient.withConnection(to: "\(w.state)/g.sock") { qmp in
            try await qmp.execute("qom-get", arguments: ["path": "/objects/tg-data", "property": "limits"])["iops-total"]?.intValue
        }
        #expect(iops == 500)
        let clean = try await w.qemuctl("diff", "-f", vms)
        #expect(clean.status == 0, "\(clean.out)")

        // Remove both: the guest releases them, the ports are free again, the image stays.
        try w.manifest("g", guestVM("g", w))
        let removed = try await w.qemuctl("apply", "-f", vms)
        #expect(removed.status == 0, "\(removed.out)\(removed.err)")
        #expect(removed.out.contains("- spec.disks[data] unplugged (the image is kept)"), "\(removed.out)")
        #expect(removed.out.contains("- spec.networks[lan] unplugged"), "\(removed.out)")
        #expect(w.pid("g") == pid)
        #expect(Instance.freeHotplugPorts(queryPCI: try await pci(w, "g")) == ["hotplug0", "hotplug1"])
        #expect(try await blockDevices(w, "g").allSatisfy { !$0.contains("disk-data") })
        #expect(FileManager.default.fileExists(atPath: disk), "unplugging never deletes the image")
        let nodes = try await QMPClient.withConnection(to: "\(w.state)/g.sock") { qmp in
            try await qmp.execute("query-named-block-nodes")
        }
        #expect(!"\(nodes)".contains("fmt-data"), "the disk's nodes are released")
        #expect(try await w.qemuctl("diff", "-f", vms).status == 0)
    }

    @Test func withoutAFreePortAnAddedDiskWaitsForARestart() async throws {
        let w = try Workspace("hp2")
        defer { w.cleanUp() }
        let manifest = { (disks: String) in
            """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: b}
            spec:
              machine: {type: q35, accel: tcg, hotplugPorts: 0}
              memory: {size: 64MiB}
            \(disks)
            """
        }
        let dir = try w.manifest("b", manifest(""))
        #expect(try await w.qemuctl("apply", "-f", dir).status == 0)
        let pid = try #require(w.pid("b"))
        try w.manifest("b", manifest("""
              disks:
                - {name: data, file: {path: \(w.dir.file("d.raw")), format: raw}, create: {size: 1MiB}}
            """))
        let diff = try await w.qemuctl("diff", "-f", dir)
        #expect(diff.status == 1)
        #expect(diff.out.contains("no free hot-plug root port"), "\(diff.out)")
        let applied = try await w.qemuctl("apply", "-f", dir)
        #expect(applied.status == 3, "exit 3: applied, a restart is pending\n\(applied.out)\(applied.err)")
        #expect(applied.out.contains("1 restart pending"), "\(applied.out)")
        #expect(w.pid("b") == pid)
        #expect(try await blockDevices(w, "b").allSatisfy { !$0.contains("disk-data") })
    }

    @Test func aSCSIDiskGoesOntoTheControllerWithAFreeID() async throws {
        let w = try Workspace("hp3")
        defer { w.cleanUp() }
        let manifest = { (more: String) in
            bareVM("s", extra: """
                  disks:
                    - {name: boot, file: {path: \(w.dir.file("boot.raw")), format: raw}, create: {size: 1MiB}, interface: scsi}
                \(more)
                """)
        }
        let dir = try w.manifest("s", manifest(""))
        let first = try await w.qemuctl("apply", "-f", dir)
        #expect(first.status == 0, "\(first.out)\(first.err)")
        try w.manifest("s", manifest("    - {name: more, file: {path: \(w.dir.file("more.raw")), format: raw}, create: {size: 1MiB}, interface: scsi}"))
        let added = try await w.qemuctl("apply", "-f", dir)
        #expect(added.status == 0, "\(added.out)\(added.err)")
        #expect(added.out.contains("+ spec.disks[more] hot-plugged (scsi0, id 1)"), "\(added.out)")
        // A SCSI disk leaves at once: no guest has to acknowledge it.
        try w.manifest("s", manifest(""))
        let removed = try await w.qemuctl("apply", "-f", dir)
        #expect(removed.status == 0, "\(removed.out)\(removed.err)")
        #expect(removed.out.contains("- spec.disks[more] unplugged"), "\(removed.out)")
        #expect(try await blockDevices(w, "s").allSatisfy { !$0.contains("disk-more") })
        #expect(FileManager.default.fileExists(atPath: w.dir.file("more.raw")))
        #expect(try await w.qemuctl("diff", "-f", dir).status == 0)
    }

    @Test func vCPUsAndMemoryGrowLiveUpToTheirMaximumAndBeyondNeedsARestart() async throws {
        let w = try Workspace("hp4")
        defer { w.cleanUp() }
        let manifest = { (cpus: Int, memory: String) in
            """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: m}
            spec:
              machine: {type: q35, accel: tcg}
              cpu: {count: \(cpus), maxCount: 4}
              memory: {size: \(memory), max: 1GiB, slots: 4}
            """
        }
        let dir = try w.manifest("m", manifest(1, "128MiB"))
        #expect(try await w.qemuctl("apply", "-f", dir).status == 0)
        let pid = try #require(w.pid("m"))
        try w.manifest("m", manifest(3, "384MiB"))
        let grown = try await w.qemuctl("apply", "-f", dir)
        #expect(grown.status == 0, "\(grown.out)\(grown.err)")
        // Without a guest agent the guest's side cannot be confirmed, and the result says so.
        #expect(grown.out.contains("~ spec.cpu.count 3 (vCPUs hot-plugged, read back; not confirmed in the guest: no guest agent (spec.guestAgent))"), "\(grown.out)")
        #expect(grown.out.contains("~ spec.memory.size 384MiB (memory hot-plugged, read back; not confirmed in the guest: no guest agent (spec.guestAgent))"), "\(grown.out)")
        #expect(w.pid("m") == pid)
        let (cpus, memory) = try await QMPClient.withConnection(to: "\(w.state)/m.sock") { qmp in
            (try await qmp.execute("query-cpus-fast").arrayValue?.count,
             try await qmp.execute("query-memory-size-summary"))
        }
        #expect(cpus == 3)
        #expect((memory["base-memory"]?.intValue ?? 0) + (memory["plugged-memory"]?.intValue ?? 0) == 384 << 20)
        #expect(try await w.qemuctl("diff", "-f", dir).status == 0)
        // Below the boot value is a relaunch.
        try w.manifest("m", manifest(3, "64MiB"))
        let below = try await w.qemuctl("diff", "-f", dir)
        #expect(below.status == 1)
        #expect(below.out.contains("spec.memory.size: 384MiB -> 64MiB (restart, pending) # below the boot value 128MiB"), "\(below.out)")
    }
}
