import Manifest
import Testing
@testable import Reconcile

// MARK: - The table

extension PlanCase {
    static let web = vm("web")

    /// (desired, actual) → expected plan, one row per rule of the planner.
    static let all: [PlanCase] = [
        // Lifecycle
        PlanCase("create from nothing", desired: [web], actual: [], [Expected("web", .create, nil)]),
        PlanCase(
            "VMs sorted by name", desired: [vm("b"), vm("a")], actual: [],
            [Expected("a", .create, nil), Expected("b", .create, nil)]),
        PlanCase("no-op when equal", desired: [web], actual: [running(web)], [Expected("web", .noOp)]),
        PlanCase(
            "gone VM is created again (not a restart)", desired: [web], actual: [gone(web)],
            [Expected("web", .create, nil)]),
        PlanCase(
            "stopped and not running: nothing to do", desired: [vm("web") { $0.runState = .stopped }], actual: [],
            [Expected("web", .noOp)]),
        PlanCase(
            "stopped and gone: nothing to do", desired: [vm("web") { $0.runState = .stopped }], actual: [gone(web)],
            [Expected("web", .noOp)]),
        PlanCase(
            "stopped while running: a live stop and nothing else",
            desired: [vm("web") { $0.runState = .stopped; $0.cpu.model = "max" }], actual: [running(web)],
            [Expected("web", .update, ["spec.runState: running -> stopped (live)"])]),

        // runState
        PlanCase(
            "running -> paused is a live update", desired: [vm("web") { $0.runState = .paused }],
            actual: [running(web)], [Expected("web", .update, ["spec.runState: running -> paused (live)"])]),
        PlanCase(
            "paused out of band -> resumed", desired: [web], actual: [running(web) { $0.runStatus = .paused }],
            [Expected("web", .update, ["spec.runState: paused -> running (live)"])]),
        PlanCase(
            "prelaunch satisfies paused", desired: [vm("web") { $0.runState = .paused }],
            actual: [running(web) { $0.runStatus = .prelaunch }], [Expected("web", .noOp)]),
        PlanCase(
            "guest shut down inside a live QEMU", desired: [web], actual: [running(web) { $0.runStatus = .shutdown }],
            [Expected("web", .update, ["spec.runState: shutdown -> running (live)"])]),

        // Live fields and drift
        PlanCase(
            "throttle drift: QMP differs from the manifest", desired: [web],
            actual: [running(web) { $0.disks![0].throttle!.bps = 50 * mib }],
            [Expected("web", .update, ["spec.disks[root].throttle.bps: 50MiB -> 100MiB (live)"])]),
        PlanCase(
            "throttle removed by hand", desired: [web], actual: [running(web) { $0.disks![0].throttle = nil }],
            [Expected("web", .update, [
                "spec.disks[root].throttle.bps: null -> 100MiB (live)",
                "spec.disks[root].throttle.iops: null -> 1000 (live)",
            ])]),
        PlanCase(
            "throttle edited in the manifest", desired: [vm("web") { $0.disks[0].throttle!.iops = 2000 }],
            actual: [running(web)], [Expected("web", .update, ["spec.disks[root].throttle.iops: 1000 -> 2000 (live)"])]),
        PlanCase(
            "CD media inserted", desired: [vm("web") { $0.cdroms[0].path = "/isos/install.iso" }],
            actual: [running(web)], [Expected("web", .update, ["spec.cdroms[cd0].path: null -> \"/isos/install.iso\" (live)"])]),
        PlanCase(
            "CD media ejected by hand", desired: [vm("web") { $0.cdroms[0].path = "/isos/install.iso" }],
            actual: [running(vm("web") { $0.cdroms[0].path = "/isos/install.iso" }) { $0.cdroms![0].media = nil }],
            [Expected("web", .update, ["spec.cdroms[cd0].path: null -> \"/isos/install.iso\" (live)"])]),
        PlanCase(
            "NIC link down", desired: [vm("web") { $0.networks[0].link = .down }], actual: [running(web)],
            [Expected("web", .update, ["spec.networks[net0].link: up -> down (live)"])]),
        PlanCase(
            "VNC password changed (markers differ)", desired: [web],
            actual: [running(web, secrets: ["spec.display.vnc.passwordFrom": SecretMarker("gen-1")])],
            options: PlanOptions(secretMarkers: ["web": ["spec.display.vnc.passwordFrom": SecretMarker("gen-2")]]),
            [Expected("web", .update, ["spec.display.vnc.passwordFrom: (sensitive) -> (sensitive) (live)"])]),
        PlanCase(
            "VNC password unchanged (markers equal)", desired: [web],
            actual: [running(web, secrets: ["spec.display.vnc.passwordFrom": SecretMarker("gen-2")])],
            options: PlanOptions(secretMarkers: ["web": ["spec.display.vnc.passwordFrom": SecretMarker("gen-2")]]),
            [Expected("web", .noOp)]),
        PlanCase(
            "VNC password reference changed", desired: [vm("web") { $0.display.vnc!.passwordFrom = .env("VNC_PW") }],
            actual: [running(web)],
            [Expected("web", .update, ["spec.display.vnc.passwordFrom: (sensitive) -> (sensitive) (live)"])]),
        PlanCase(
            "labels are metadata: record only", desired: [vm("web", labels: ["role": "web"])], actual: [running(web)],
            [Expected("web", .update, ["metadata.labels[role]: null -> \"web\" (metadata)"])]),
        PlanCase(
            "create.size is metadata", desired: [vm("web") { $0.disks[0].createSize = 10 * gib }],
            actual: [running(web)], [Expected("web", .update, ["spec.disks[root].create.size: null -> 10GiB (metadata)"])]),
        PlanCase(
            "create.from is a restart (an overlay's base is the backing file it is attached with)",
            desired: [vm("web") { $0.disks[0].createFrom = .init(path: "/img/base.qcow2", format: .qcow2) }],
            actual: [running(web)], [Expected("web", .restart, pending: true, [
                "spec.disks[root].create.from.path: null -> \"/img/base.qcow2\" (restart)",
                "spec.disks[root].create.from.format: null -> qcow2 (restart)",
                "spec.disks[root].create.mode: null -> overlay (restart)",
            ])]),
        PlanCase(
            "file.backing is a restart", desired: [vm("web") { $0.disks[0].backing = .init(path: "/img/base.raw", format: .raw) }],
            actual: [running(web)], [Expected("web", .restart, pending: true, [
                "spec.disks[root].file.backing.path: null -> \"/img/base.raw\" (restart)",
                "spec.disks[root].file.backing.format: null -> raw (restart)",
            ])]),

        // CPUs and memory within and beyond their maximums
        PlanCase(
            "cpu.count within maxCount is live", desired: [vm("web") { $0.cpu.count = 3 }], actual: [running(web)],
            [Expected("web", .update, ["spec.cpu.count: 2 -> 3 (live)"])]),
        PlanCase(
            "cpu.count beyond maxCount needs a restart",
            desired: [vm("web") { $0.cpu.count = 6; $0.cpu.maxCount = 8 }], actual: [running(web)],
            [Expected("web", .restart, pending: true, [
                "spec.cpu.count: 2 -> 6 (restart)", "spec.cpu.maxCount: 4 -> 8 (restart)",
            ])]),
        PlanCase(
            "cpu.count below the boot count needs a restart", desired: [vm("web") { $0.cpu.count = 1 }],
            actual: [running(web)], [Expected("web", .restart, pending: true, ["spec.cpu.count: 2 -> 1 (restart)"])]),
        PlanCase(
            "memory.size within max is live", desired: [vm("web") { $0.memory.size = 2 * gib }], actual: [running(web)],
            [Expected("web", .update, ["spec.memory.size: 1GiB -> 2GiB (live)"])]),
        PlanCase(
            "memory.size without max needs a restart",
            desired: [vm("nomax") { $0.memory.max = nil; $0.memory.size = 2 * gib }],
            actual: [running(vm("nomax") { $0.memory.max = nil })],
            [Expected("nomax", .restart, pending: true, ["spec.memory.size: 1GiB -> 2GiB (restart)"])]),

        // Restart-class edits, pending and revert
        PlanCase(
            "restart-class edit with --restart=never: pending", desired: [vm("web") { $0.cpu.model = "max" }],
            actual: [running(web)],
            [Expected("web", .restart, pending: true, ["spec.cpu.model: \"host\" -> \"max\" (restart)"])]),
        PlanCase(
            "restart-class edit with --restart=if-needed: restart", desired: [vm("web") { $0.cpu.model = "max" }],
            actual: [running(web)], options: PlanOptions(restart: .ifNeeded),
            [Expected("web", .restart, ["spec.cpu.model: \"host\" -> \"max\" (restart)"])]),
        PlanCase(
            "pending restart keeps its live changes",
            desired: [vm("web") { $0.cpu.model = "max"; $0.disks[0].throttle!.bps = 50 * mib }], actual: [running(web)],
            [Expected("web", .restart, pending: true, [
                "spec.cpu.model: \"host\" -> \"max\" (restart)",
                "spec.disks[root].throttle.bps: 100MiB -> 50MiB (live)",
            ])]),
        PlanCase(
            "revert clears a pending restart", desired: [web], actual: [running(web, restartPending: true)],
            [Expected("web", .noOp)]),
        PlanCase(
            "machine, firmware, kernel, cmdline are restart-class",
            desired: [vm("web") {
                $0.machine.type = "pc-q35-9.0"; $0.firmware.type = .efi
                $0.boot.kernel = "/boot/vmlinuz"; $0.boot.cmdline = "console=ttyS0"
            }], actual: [running(web)],
            [Expected("web", .restart, pending: true, [
                "spec.machine.type: null -> \"pc-q35-9.0\" (restart)", "spec.firmware.type: bios -> efi (restart)",
                "spec.boot.kernel: null -> \"/boot/vmlinuz\" (restart)",
                "spec.boot.cmdline: null -> \"console=ttyS0\" (restart)",
            ])]),
        PlanCase(
            "SPICE added is restart-class, its children not listed",
            desired: [vm("web") { $0.display.spice = .init() }], actual: [running(web)],
            [Expected("web", .restart, pending: true, ["spec.display.spice: null -> {listen: \"unix\"} (restart)"])]),

        // Hot-plug
        PlanCase(
            "disk added on q35 with a free root port: live", desired: [vm("web") { $0.disks.append(disk("data")) }],
            actual: [running(web, ports: 1)],
            [Expected("web", .update, ["spec.disks[data]: null -> file \"/images/data.qcow2\" (qcow2), virtio (live)"])]),
        PlanCase(
            "disk added on q35 without a free root port: restart",
            desired: [vm("web") { $0.disks.append(disk("data")) }], actual: [running(web, ports: 0)],
            [Expected("web", .restart, pending: true, [
                "spec.disks[data]: null -> file \"/images/data.qcow2\" (qcow2), virtio (restart)",
            ])]),
        PlanCase(
            "disk added on i440fx: restart",
            desired: [vm("old") { $0.machine.type = "pc"; $0.disks.append(disk("data")) }],
            actual: [running(vm("old") { $0.machine.type = "pc" }, ports: nil)],
            [Expected("old", .restart, pending: true, [
                "spec.disks[data]: null -> file \"/images/data.qcow2\" (qcow2), virtio (restart)",
            ])]),
        PlanCase(
            "IDE disk added on q35: restart", desired: [vm("web") { $0.disks.append(disk("data", .ide)) }],
            actual: [running(web)],
            [Expected("web", .restart, pending: true, [
                "spec.disks[data]: null -> file \"/images/data.qcow2\" (qcow2), ide (restart)",
            ])]),
        PlanCase(
            "SCSI disk added next to a SCSI controller: live without a root port",
            desired: [vm("web") { $0.disks += [disk("s0", .scsi), disk("s1", .scsi)] }],
            actual: [running(vm("web") { $0.disks.append(disk("s0", .scsi)) }, ports: 0)],
            [Expected("web", .update, ["spec.disks[s1]: null -> file \"/images/s1.qcow2\" (qcow2), scsi (live)"])]),
        PlanCase(
            "SCSI disk added without a SCSI controller: restart",
            desired: [vm("web") { $0.disks.append(disk("s1", .scsi)) }], actual: [running(web)],
            [Expected("web", .restart, pending: true, [
                "spec.disks[s1]: null -> file \"/images/s1.qcow2\" (qcow2), scsi (restart)",
            ])]),
        PlanCase(
            "USB device added next to the USB controller: live",
            desired: [vm("web") { $0.usbTablet = true; $0.usb.devices = [.init(name: "kbd", type: .keyboard)] }],
            actual: [running(vm("web") { $0.usbTablet = true })],
            [Expected("web", .update, ["spec.usb.devices[kbd]: null -> keyboard (live)"])]),
        PlanCase(
            "USB device added without a USB controller: restart",
            desired: [vm("web") { $0.usb.devices = [.init(name: "kbd", type: .keyboard)] }], actual: [running(web)],
            [Expected("web", .restart, pending: true, ["spec.usb.devices[kbd]: null -> keyboard (restart)"])]),
        PlanCase(
            "ports used in field order: two disks fit, the NIC does not",
            desired: [vm("web") { $0.disks += [disk("d1"), disk("d2")]; $0.networks.append(nic("net1")) }],
            actual: [running(web, ports: 2)],
            [Expected("web", .restart, pending: true, [
                "spec.disks[d1]: null -> file \"/images/d1.qcow2\" (qcow2), virtio (live)",
                "spec.disks[d2]: null -> file \"/images/d2.qcow2\" (qcow2), virtio (live)",
                "spec.networks[net1]: null -> user, virtio-net-pci, mac 52:54:00:aa:bb:02 (restart)",
            ])]),
        PlanCase(
            "NIC added on q35 with a free root port: live", desired: [vm("web") { $0.networks.append(nic("net1")) }],
            actual: [running(web)],
            [Expected("web", .update, ["spec.networks[net1]: null -> user, virtio-net-pci, mac 52:54:00:aa:bb:02 (live)"])]),
        PlanCase(
            "hot-plugged disk removed: live", desired: [web],
            actual: [running(vm("web") { $0.disks.append(disk("data")) }) { $0.disks![1].hotplugged = true }],
            [Expected("web", .update, ["spec.disks[data]: file \"/images/data.qcow2\" (qcow2), virtio -> null (live)"])]),
        PlanCase(
            "disk plugged at launch removed: restart", desired: [web],
            actual: [running(vm("web") { $0.disks.append(disk("data")) })],
            [Expected("web", .restart, pending: true, [
                "spec.disks[data]: file \"/images/data.qcow2\" (qcow2), virtio -> null (restart)",
            ])]),
        PlanCase(
            "disk unplugged by hand: plugged back", desired: [web], actual: [running(web) { $0.disks = [] }],
            [Expected("web", .update, ["spec.disks[root]: null -> file \"/images/web.qcow2\" (qcow2), virtio (live)"])]),
        PlanCase(
            "CD-ROM drive added: restart (cdroms are restart-class)",
            desired: [vm("web") { $0.cdroms.append(.init(name: "cd1")) }], actual: [running(web)],
            [Expected("web", .restart, pending: true, ["spec.cdroms[cd1]: null -> ide, empty (restart)"])]),

        // Prune, ownership, health
        PlanCase(
            "prune deletes only managed VMs", desired: [web],
            actual: [
                running(web), running(vm("orphan")),
                ObservedVM(name: "stranger", ownership: .foreign, liveness: .alive),
            ], options: PlanOptions(prune: true),
            [Expected("orphan", .delete), Expected("web", .noOp)]),
        PlanCase(
            "without prune nothing is deleted", desired: [web], actual: [running(web), running(vm("orphan"))],
            [Expected("web", .noOp)]),
        PlanCase(
            "unresponsive VM: no create, no plan",
            desired: [vm("web") { $0.cpu.model = "max" }],
            actual: [ObservedVM(
                name: "web", liveness: .unresponsive, detail: "QMP did not answer within 2s",
                record: LaunchRecord(uuid: fixtureUUID, spec: web.spec))],
            [Expected("web", .unresponsive)]),
        PlanCase(
            "unresponsive VM is not pruned",
            desired: [], actual: [ObservedVM(name: "wedged", liveness: .unresponsive)],
            options: PlanOptions(prune: true), [Expected("wedged", .unresponsive)]),
        PlanCase(
            "a foreign QEMU of a declared name is not touched", desired: [web],
            actual: [ObservedVM(name: "web", ownership: .foreign, liveness: .alive)], [Expected("web", .unmanaged)]),
    ]
}

// MARK: - Tests

@Suite("Planner")
struct PlannerTests {
    @Test(arguments: PlanCase.all)
    func producesExpectedActions(_ c: PlanCase) {
        let plan = c.plan
        #expect(plan.vms.map(\.name) == c.expected.map(\.name))
        for (got, want) in zip(plan.vms, c.expected) {
            var g = Expected(got)
            if want.changes == nil { g.changes = nil }
            #expect(g == want)
        }
    }

    @Test(arguments: PlanCase.all)
    func declaredClassesComeFromTheFieldTable(_ c: PlanCase) {
        for vm in c.plan.vms {
            for change in vm.changes {
                let path = change.path
                let fromTable = FieldTable.changeClass(at: path)
                    ?? FieldTable.changeClass(at: String(path[..<path.lastIndex(of: "[")!]))
                #expect(fromTable != nil, "unknown path \(path)")
                #expect(change.declaredClass == fromTable, "\(path)")
                if change.changeClass != change.declaredClass {
                    #expect(change.declaredClass == .live && change.changeClass == .restart, "\(path)")
                }
            }
        }
    }

    @Test func revertClearsThePendingRestart() {
        let edited = vm("web") { $0.cpu.model = "max" }
        let first = plan(desired: [edited], actual: [running(PlanCase.web)], options: PlanOptions())
        #expect(first["web"]?.action == .restart && first["web"]?.restartPending == true)
        // apply --restart=never leaves the record alone and sets the flag; the user reverts.
        let after = running(PlanCase.web, restartPending: true)
        let second = plan(desired: [PlanCase.web], actual: [after], options: PlanOptions())
        #expect(second["web"]?.action == .noOp)
        #expect(second["web"]?.restartPending == false)
        #expect(second["web"]?.pendingRestartCleared == true)
        #expect(!second.hasChanges)
    }

    @Test func pendingRestartExecutesOnlyLiveChanges() {
        let edited = vm("web") { $0.cpu.model = "max"; $0.disks[0].throttle!.bps = 50 * mib }
        let never = plan(desired: [edited], actual: [running(PlanCase.web)], options: PlanOptions())["web"]!
        #expect(never.executedChanges.map(\.path) == ["spec.disks[root].throttle.bps"])
        #expect(never.deferredChanges.map(\.path) == ["spec.cpu.model"])
        #expect(!never.relaunches)
        let ifNeeded = plan(
            desired: [edited], actual: [running(PlanCase.web)], options: PlanOptions(restart: .ifNeeded))["web"]!
        #expect(ifNeeded.relaunches)
        #expect(ifNeeded.executedChanges.isEmpty && ifNeeded.deferredChanges.isEmpty)
    }

    @Test func throttleDriftNamesTheFieldAndBothValues() throws {
        let p = plan(
            desired: [PlanCase.web], actual: [running(PlanCase.web) { $0.disks![0].throttle!.bps = 50 * mib }],
            options: PlanOptions())
        let change = try #require(p["web"]?.changes.first)
        #expect(change.path == "spec.disks[root].throttle.bps")
        #expect(change.old == "50MiB" && change.new == "100MiB")
        #expect(change.drift)
        #expect(change.reason.contains("block_set_io_throttle"))
        #expect(p.diffExitCode == 1)
    }

    @Test func manifestEditIsNotDrift() throws {
        let p = plan(
            desired: [vm("web") { $0.disks[0].throttle!.bps = 50 * mib }], actual: [running(PlanCase.web)],
            options: PlanOptions())
        #expect(try #require(p["web"]?.changes.first).drift == false)
    }

    @Test func createKeepsTheRecordedUUID() {
        let p = plan(desired: [PlanCase.web], actual: [gone(PlanCase.web)], options: PlanOptions())
        #expect(p["web"]?.uuid == fixtureUUID)
        let fresh = plan(desired: [PlanCase.web], actual: [], options: PlanOptions())
        #expect(fresh["web"]?.uuid == nil)
        #expect(fresh["web"]?.desired == PlanCase.web)
    }

    @Test func restartKeepsUUIDAndDesiredSpec() {
        let edited = vm("web") { $0.cpu.model = "max" }
        let p = plan(desired: [edited], actual: [running(PlanCase.web)], options: PlanOptions(restart: .ifNeeded))
        #expect(p["web"]?.uuid == fixtureUUID)
        #expect(p["web"]?.desired?.spec == edited.spec)
    }

    @Test func aCloudInitChangeIsARestartWithItsReasonAndReadinessIsRecordOnly() throws {
        let launched = vm("web") { $0.cloudInit = .init(); $0.cloudInit!.sshAuthorizedKeys = ["ssh-ed25519 AAAA one"] }
        let keys = vm("web") { $0.cloudInit = .init(); $0.cloudInit!.sshAuthorizedKeys = ["ssh-ed25519 AAAA two"] }
        let p = plan(desired: [keys], actual: [running(launched)], options: PlanOptions(restart: .ifNeeded))
        let change = try #require(p["web"]?.changes.first { $0.path == "spec.cloudInit.sshAuthorizedKeys" })
        #expect(change.changeClass == .restart)
        #expect(change.reason == "cloud-init runs at first boot; a new instance-id re-runs it")
        #expect(p["web"]?.action == .restart)

        // User-data from a file: compared by its marker, shown as (sensitive), a restart with the same reason.
        let secret = vm("web") { $0.cloudInit = .init(); $0.cloudInit!.userData = .secret(.file("/s/user-data")) }
        let edited = plan(desired: [secret], actual: [running(secret, secrets: ["spec.cloudInit.userData": SecretMarker("hmac-sha256:aa")])],
                          options: PlanOptions(secretMarkers: ["web": ["spec.cloudInit.userData": SecretMarker("hmac-sha256:bb")]]))
        let userData = try #require(edited["web"]?.changes.first { $0.path == "spec.cloudInit.userData" })
        #expect(userData.sensitive && userData.changeClass == .restart)
        #expect(userData.reason == "cloud-init runs at first boot; a new instance-id re-runs it")

        // Inline user-data: compared by length and digest, never shown.
        let inline = vm("web") { $0.cloudInit = .init(); $0.cloudInit!.userData = .inline("#cloud-config\nhostname: a\n") }
        let inline2 = vm("web") { $0.cloudInit = .init(); $0.cloudInit!.userData = .inline("#cloud-config\nhostname: b\n") }
        let text = try #require(plan(desired: [inline2], actual: [running(inline)], options: PlanOptions())["web"]?.changes.first)
        #expect(text.path == "spec.cloudInit.userData" && text.changeClass == .restart)
        #expect(!(text.new ?? "").contains("hostname") && (text.new ?? "").hasPrefix("inline, 26 bytes, sha256 "), "\(text)")

        // Readiness is how qemuctl probes, not the VM: recorded only.
        let ready = vm("web") { $0.readiness = .guestAgent; $0.guestAgent = true }
        let probe = vm("web") { $0.readiness = .tcpPort(22); $0.guestAgent = true }
        let r = plan(desired: [probe], actual: [running(ready)], options: PlanOptions())
        #expect(r["web"]?.action == .update)
        #expect(r["web"]?.changes.allSatisfy { $0.changeClass == .metadata } == true, "\(r["web"]?.changes ?? [])")
    }

    @Test func createListsWhatTheManifestSets() {
        let p = plan(desired: [vm("web", labels: ["role": "web"])], actual: [], options: PlanOptions())
        #expect(p["web"]!.changes.map(Expected.line) == [
            "metadata.labels[role]: null -> \"web\" (metadata)",
            "spec.runState: null -> running (live)",
            "spec.cpu.model: null -> \"host\" (restart)",
            "spec.cpu.count: null -> 2 (live)",
            "spec.cpu.maxCount: null -> 4 (restart)",
            "spec.memory.size: null -> 1GiB (live)",
            "spec.memory.max: null -> 4GiB (restart)",
            "spec.disks[root]: null -> file \"/images/web.qcow2\" (qcow2), virtio (live)",
            // #19 item 2: a create shows the disk's throttle (and create size, port forwards).
            "spec.disks[root].throttle.bps: null -> 100MiB (live)",
            "spec.disks[root].throttle.iops: null -> 1000 (live)",
            "spec.cdroms[cd0]: null -> ide, empty (restart)",
            "spec.networks[net0]: null -> user, virtio-net-pci, mac 52:54:00:aa:bb:01 (live)",
            "spec.display.vnc.listen: null -> \"none\" (restart)",
            "spec.display.vnc.passwordFrom: null -> (sensitive) (live)",
            "spec.display.video: null -> std (restart)",
        ])
    }

    @Test func changesFollowFieldTableOrder() {
        let edited = vm("web", labels: ["a": "1"]) {
            $0.cpu.features = ["+avx2"]; $0.rtc.base = .localtime; $0.networks[0].link = .down
            $0.disks[0].throttle!.iops = 5; $0.cpu.model = "max"; $0.runState = .paused; $0.machine.accel = .tcg
        }
        let p = plan(desired: [edited], actual: [running(PlanCase.web)], options: PlanOptions())
        #expect(p["web"]!.changes.map(\.path) == [
            "metadata.labels[a]", "spec.runState", "spec.machine.accel", "spec.cpu.model", "spec.cpu.features",
            "spec.disks[root].throttle.iops", "spec.networks[net0].link", "spec.rtc.base",
        ])
    }

    @Test func hasChangesAndSummary() {
        let p = plan(
            desired: [vm("a"), vm("b") { $0.runState = .paused }, vm("c") { $0.cpu.model = "max" }, PlanCase.web],
            actual: [running(vm("b")), running(vm("c")), running(PlanCase.web), running(vm("z"))],
            options: PlanOptions(prune: true))
        #expect(p.summary == {
            var s = Plan.Summary([])
            s.create = 1; s.update = 1; s.restartPending = 1; s.delete = 1; s.noOp = 1
            return s
        }())
        #expect(p.hasChanges)
        let none = plan(desired: [PlanCase.web], actual: [running(PlanCase.web)], options: PlanOptions())
        #expect(!none.hasChanges)
    }
}

// MARK: - Flattening against the field table

@Suite("Flattening")
struct FlatteningTests {
    /// A spec with every optional group present and one element in every collection.
    static func fullSpec() -> VirtualMachineSpec {
        var s = baseSpec()
        s.display.spice = .init()
        s.audio = .init()
        s.usb.devices = [.init(name: "tab", type: .tablet)]
        s.cpu.features = ["+avx2"]
        s.disks[0].backing = .init(path: "/img/base.raw", format: .raw)
        s.disks[0].createFrom = .init(path: "/img/base.raw", format: .raw)
        s.cloudInit = .init()
        s.readiness = .guestAgent
        return s
    }

    @Test func everyPathIsInTheFieldTableInItsOrder() {
        let flat = FlatSpec(labels: ["k": "v"], spec: Self.fullSpec(), secrets: [:])
        var paths = flat.labels.map(\.path)
        for item in flat.items {
            switch item {
            case .leaf(let l): paths.append(l.path)
            case .collection(let p, let elements):
                paths.append(p)
                for e in elements { paths += e.leaves.map(\.path) }
            }
        }
        let order = Dictionary(uniqueKeysWithValues: FieldTable.all.enumerated().map { ($1.path, $0) })
        var last = -1
        for path in paths {
            var normalized = FieldTable.field(at: path) != nil ? path : String(path[..<path.lastIndex(of: "[")!])
            if let i = normalized.firstIndex(of: "[") {
                // spec.disks[root].throttle.bps -> spec.disks[].throttle.bps
                let close = normalized[i...].firstIndex(of: "]")!
                normalized.replaceSubrange(normalized.index(after: i)..<close, with: "")
            }
            let index = order[normalized]
            #expect(index != nil, "\(path) is not in the field table")
            if let index {
                #expect(index > last, "\(path) out of field-table order")
                last = index
            }
        }
    }

    @Test func everyTableFieldUnderSpecIsFlattened() {
        let flat = FlatSpec(labels: [:], spec: Self.fullSpec(), secrets: [:])
        var seen: Set<String> = ["spec.runState"]
        func norm(_ p: String) -> String {
            var out = "", skipping = false
            for ch in p {
                if ch == "[" { skipping = true; out.append("[") } else if ch == "]" { skipping = false; out.append("]") }
                else if !skipping { out.append(ch) }
            }
            return out
        }
        for item in flat.items {
            switch item {
            case .leaf(let l): seen.insert(l.path)
            case .collection(let p, let elements):
                seen.insert(p)
                for e in elements { for l in e.leaves { seen.insert(norm(l.path)) } }
            }
        }
        for (path, field) in FieldTable.all where path.hasPrefix("spec.") {
            if case .object = field.type, !seen.contains(path) { continue }  // containers
            if path.hasSuffix(".name") && path.contains("[]") { continue }     // element keys
            if path.hasSuffix(".file") || path.hasSuffix(".env") || path.hasSuffix(".inline") { continue }  // inside a secret reference or cloud-init source
            if path.hasPrefix("spec.cpu.features[]") || path.hasPrefix("spec.cloudInit.sshAuthorizedKeys[]")
                || path.contains("hostfwd[]") { continue }                      // items of scalar lists
            #expect(seen.contains(path), "\(path) is never compared")
        }
    }
}
