import Manifest
import Testing
@testable import Reconcile

/// The one table of live changes: every field ``FieldTable`` calls live has a handler (so `plan`
/// never promises what `apply` cannot do), and the handlers classify per VM.
@Suite struct LiveChangeTableTests {
    @Test func everyLiveFieldOfTheTableHasAHandler() {
        let live = FieldTable.all.filter { $0.field.change == .live }.map(\.path)
        #expect(live.count > 10, "the table lost its live fields")
        for path in live {
            #expect(LiveChanges.handler(for: path) != nil, "FieldTable calls \(path) live, but no LiveChange handles it")
        }
    }

    @Test func everyHandledFieldIsLiveInTheTable() {
        for handler in LiveChanges.table {
            #expect(!handler.fields.isEmpty, "\(type(of: handler)) owns no field")
            for field in handler.fields {
                #expect(FieldTable.changeClass(at: field) == .live, "\(type(of: handler)) handles \(field), which FieldTable does not call live")
            }
        }
    }

    @Test(arguments: [
        ("spec.disks[data].throttle.bps", "DiskThrottleChange"), ("spec.disks[data]", "DiskHotplug"),
        ("spec.usb.devices[kbd]", "USBHotplug"), ("spec.display.spice.passwordFrom", "DisplayPasswordChange"),
        ("spec.cdroms[cd0].path", "CDROMMediaChange"), ("spec.cpu.count", "VCPUCountChange"),
    ])
    func concretePathsFindTheirHandler(_ path: String, _ handler: String) throws {
        let found = try #require(LiveChanges.handler(for: path))
        #expect(String(describing: type(of: found)) == handler)
    }

    @Test func diskBackendSecretsAreRestartClassInTheTable() {
        #expect(FieldTable.changeClass(at: "spec.disks[].rbd.keyFrom") == .restart)
        #expect(FieldTable.changeClass(at: "spec.disks[].iscsi.passwordFrom.file") == .restart)
    }

    @Test func theSchemaStatesTheConditionOfAPerVMClass() {
        #expect(FieldTable.field(at: "spec.cpu.count")?.changeText
                == "live within cpu.maxCount set at launch and not below the boot count; restart otherwise")
        #expect(FieldTable.field(at: "spec.disks[].throttle.bps")?.changeText == "live")
        #expect(ManifestSchema.jsonSchema().contains("live with a USB controller present at launch; restart otherwise"))
    }

    // MARK: - Classification per VM

    func change(_ plan: Plan, _ path: String) -> FieldChange? {
        plan.vms.first?.changes.first { $0.path == path }
    }

    @Test func aUSBDeviceIsLiveOnlyWithAControllerAtLaunch() throws {
        let kbd = VirtualMachineSpec.USB.Device(name: "kbd", type: .keyboard)
        let mouse = VirtualMachineSpec.USB.Device(name: "mouse", type: .mouse)
        let withUSB = vm("u") { $0.usb.devices = [kbd] }
        let added = PlanCase("", desired: [vm("u") { $0.usb.devices = [kbd, mouse] }], actual: [running(withUSB)], []).plan
        let live = try #require(change(added, "spec.usb.devices[mouse]"))
        #expect(live.changeClass == .live && live.reason == "hot-plug onto the USB controller")
        let removed = PlanCase("", desired: [vm("u")], actual: [running(withUSB)], []).plan
        #expect(change(removed, "spec.usb.devices[kbd]")?.changeClass == .live)

        let without = PlanCase("", desired: [vm("n") { $0.usb.devices = [mouse] }], actual: [running(vm("n"))], []).plan
        let restart = try #require(change(without, "spec.usb.devices[mouse]"))
        #expect(restart.changeClass == .restart && restart.reason == "no USB controller at launch")
    }

    @Test func aVNCPasswordChangesLiveButCannotBeSwitchedOnOrOffLive() throws {
        let markers = ["spec.display.vnc.passwordFrom": SecretMarker("old")]
        var options = PlanOptions()
        options.secretMarkers["w"] = ["spec.display.vnc.passwordFrom": SecretMarker("new")]
        let changed = PlanCase("", desired: [vm("w")], actual: [running(vm("w"), secrets: markers)], options: options, []).plan
        #expect(change(changed, "spec.display.vnc.passwordFrom")?.changeClass == .live)

        let removed = PlanCase("", desired: [vm("w") { $0.display.vnc?.passwordFrom = nil }],
                               actual: [running(vm("w"), secrets: markers)], []).plan
        let off = try #require(change(removed, "spec.display.vnc.passwordFrom"))
        #expect(off.changeClass == .restart && off.reason.contains("cannot switch VNC password auth off live"))

        let launchedWithout = vm("w") { $0.display.vnc?.passwordFrom = nil }
        let added = PlanCase("", desired: [vm("w")], actual: [running(launchedWithout)], []).plan
        let on = try #require(change(added, "spec.display.vnc.passwordFrom"))
        #expect(on.changeClass == .restart && on.reason.contains("launched without password auth"))
    }

    @Test func removingASPICEPasswordIsLive() throws {
        let spice = { (s: inout VirtualMachineSpec) in
            var sp = VirtualMachineSpec.Display.SPICE()
            sp.passwordFrom = .file("/secrets/spice")
            s.display.spice = sp
        }
        let launched = vm("s", spice)
        let removed = PlanCase("", desired: [vm("s") { spice(&$0); $0.display.spice?.passwordFrom = nil }],
                               actual: [running(launched)], []).plan
        let c = try #require(change(removed, "spec.display.spice.passwordFrom"))
        #expect(c.changeClass == .live && c.reason.contains("expired"))
    }

    @Test func aMemoryShrinkIsLiveOnlyByWholeHotpluggedDIMMs() throws {
        // Launched with 1 GiB (max 4 GiB), one 512 MiB DIMM plugged since.
        let launched = vm("m")
        let grown = { (live: inout LiveState) in
            live.memorySize = gib + 512 * mib
            live.dimmSizes = [512 * mib]
        }
        let whole = PlanCase("", desired: [vm("m")], actual: [running(launched, grown)], []).plan
        let live = try #require(change(whole, "spec.memory.size"))
        #expect(live.changeClass == .live, "\(live.reason)")
        let part = PlanCase("", desired: [vm("m") { $0.memory.size = gib + 256 * mib }], actual: [running(launched, grown)], []).plan
        let restart = try #require(change(part, "spec.memory.size"))
        #expect(restart.changeClass == .restart && restart.reason.contains("whole hot-plugged DIMMs"), "\(restart.reason)")
    }

    @Test func vCPUsAreLiveWithinMaxCountOnly() throws {
        let within = PlanCase("", desired: [vm("c") { $0.cpu.count = 4 }], actual: [running(vm("c"))], []).plan
        #expect(change(within, "spec.cpu.count")?.changeClass == .live)
        let beyond = PlanCase("", desired: [vm("c") { $0.cpu.count = 5; $0.cpu.maxCount = 5 }], actual: [running(vm("c"))], []).plan
        let c = try #require(change(beyond, "spec.cpu.count"))
        #expect(c.changeClass == .restart && c.reason == "beyond maxCount 4 set at launch")
        let fixed = vm("f") { $0.cpu.maxCount = 2 }
        let none = PlanCase("", desired: [vm("f") { $0.cpu.count = 1; $0.cpu.maxCount = 2 }], actual: [running(fixed)], []).plan
        #expect(change(none, "spec.cpu.count")?.reason.contains("cpu.maxCount") == true)
    }
}
