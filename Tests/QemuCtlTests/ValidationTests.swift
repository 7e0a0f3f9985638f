import Foundation
import Testing
@testable import QemuCtl

private let launch = LaunchOptions(qmpSocketPath: "/run/q/qmp.sock", runtimeDirectory: "/run/q",
                                   accelerator: AcceleratorChoice(accelerator: .tcg))

private func problems(_ c: VMConfig) -> [String] { c.problems().map(\.description) }

private func commandLineProblems(_ c: VMConfig, _ l: LaunchOptions = launch) -> [ConfigProblem] {
    do throws(VMConfigError) {
        _ = try c.commandLine(l)
        return []
    } catch {
        return error.problems
    }
}

@Suite("Configuration validation")
struct ValidationTests {
    @Test(arguments: ["", "a/b", "../x", "a,b", "a=b", "x\ny", "-drive", "a b", "vm\"", String(repeating: "a", count: 64)])
    func hostileVMNamesAreRejected(_ name: String) {
        let p = VMConfig(name: name).problems()
        #expect(p.contains { $0.path == "name" }, "\(p)")
        #expect(throws: VMConfigError.self) { try VMConfig(name: name).commandLine(launch) }
    }

    @Test func goodNamesPass() {
        for n in ["web-1", "db01", "A1", String(repeating: "a", count: 63)] { #expect(VMConfig(name: n).problems() == []) }
    }

    @Test(arguments: [",snapshot=on,readonly=on", "Root", "1disk", "a.b", "x\ny", String(repeating: "d", count: 25)])
    func hostileDeviceNamesAreRejected(_ name: String) {
        var c = VMConfig(name: "vm")
        c.disks = [Disk(name: name, file: "/x.img", format: .raw)]
        c.networks = [Network(name: name, backend: .user(UserNetwork()))]
        c.serials = [Serial(name: name, backend: .null)]
        c.chardevs = [Chardev(id: name, backend: .null)]
        let paths = Set(c.problems().map(\.path))
        #expect(paths.isSuperset(of: ["disks[0].name", "networks[0].name", "serials[0].name", "chardevs[0].id"]), "\(paths)")
    }

    @Test func problemsNameTheFieldPath() {
        var c = VMConfig(name: "vm")
        c.disks = [
            Disk(name: "a", file: "/a.img", format: .raw),
            Disk(name: "b", file: "relative.img", format: .raw),
            Disk(name: "c", backend: .nbd(NBDDisk(server: .tcp(host: "nbd.example", port: 0)))),
        ]
        c.memory.sizeMiB = 0
        c.cpu.count = 0
        let p = problems(c)
        #expect(p.contains("disks[2].nbd.port: must be between 1 and 65535, got 0"))
        #expect(p.contains { $0.hasPrefix("disks[1].file.path: must be an absolute path") })
        #expect(p.contains("memory.sizeMiB: must be greater than 0, got 0"))
        #expect(p.contains("cpu.count: must be between 1 and 1024, got 0"))
        let error = VMConfigError(problems: c.problems())
        #expect(error.description.hasPrefix("invalid VM configuration (4 problems):"))
    }

    @Test func duplicateNamesAreRejected() {
        var c = VMConfig(name: "vm")
        c.disks = [Disk(name: "a", file: "/a.img", format: .raw), Disk(name: "a", file: "/b.img", format: .raw)]
        c.cdroms = [CDROM(name: "a")]
        let p = problems(c)
        #expect(p.contains("disks[1]: duplicate disk name \"a\""))
        #expect(p.contains { $0.hasPrefix("cdroms[0].name:") })
    }

    @Test func throttleRulesFollowQEMU() {
        var c = VMConfig(name: "vm")
        c.disks = [Disk(name: "a", backend: .file(FileDisk(path: "/a", format: .raw)),
                        throttle: Throttle(bpsTotal: 100, bpsRead: 5, iopsTotal: 10, iopsTotalMax: 5, bpsTotalMaxLength: 3))]
        let p = problems(c)
        // The seed sent a burst length without a burst rate, so it could never clear a throttle.
        #expect(p.contains("disks[0].throttle.bpsTotalMaxLength: needs bpsTotalMax (a burst length without a burst rate)"))
        #expect(p.contains("disks[0].throttle.iopsTotalMax: must be at least iopsTotal (10), got 5"))
        #expect(p.contains("disks[0].throttle.bpsTotal: cannot be combined with bpsRead/bpsWrite"))
    }

    @Test func interfaceRules() {
        var c = VMConfig(name: "vm")
        c.disks = [Disk(name: "a", file: "/a", format: .raw, interface: .ide, readOnly: true),
                   Disk(name: "very-long-nvme-disk-name", file: "/b", format: .raw, interface: .nvme)]
        let p = Set(c.problems().map(\.path))
        #expect(p.contains("disks[0].readOnly"))
        #expect(p.contains("disks[1].serial"))
    }

    @Test func spiceAgentNeedsSpiceAndPortsNeedChardevs() {
        var c = VMConfig(name: "vm")
        c.spiceAgent = true
        c.virtioSerialPorts = [VirtioSerialPort(name: "org.x.0", chardev: "missing")]
        let p = Set(c.problems().map(\.path))
        #expect(p.isSuperset(of: ["spiceAgent", "virtioSerialPorts[0].chardev"]))
    }

    @Test func rngAndAudioRules() {
        var c = VMConfig(name: "vm")
        c.rng = RNG(source: "urandom")
        c.audio = Audio(backend: .spice, model: .hda, wavPath: "out.wav")
        #expect(c.problems().map(\.path) == ["rng.source", "audio.backend", "audio.wavPath", "audio.wavPath"])
        c.rng = RNG()
        c.audio = Audio(backend: .wav, wavPath: "/tmp/out.wav")
        #expect(c.problems().isEmpty)
        c.arch = .arm64
        c.audio = Audio(model: .sb16)
        c.machine.accel = .tcg
        #expect(commandLineProblems(c, LaunchOptions(qmpSocketPath: "/q.sock", runtimeDirectory: "/r")).map(\.path) == ["audio.model"])
    }

    @Test func autoAcceleratorNeedsAProbeResult() {
        let c = VMConfig(name: "vm")
        let p = commandLineProblems(c, LaunchOptions(qmpSocketPath: "/q.sock", runtimeDirectory: "/r"))
        #expect(p.map(\.path) == ["machine.accel"])
    }

    @Test func explicitAcceleratorIgnoresAProbeOfAnotherOne() throws {
        var c = VMConfig(name: "vm")
        c.machine.accel = .tcg
        let probe = AcceleratorChoice(accelerator: .kvm, cpuModel: "host", cpuFeatures: ["arch-capabilities": false])
        let cmd = try c.commandLine(LaunchOptions(qmpSocketPath: "/q.sock", runtimeDirectory: "/r", accelerator: probe))
        #expect(cmd.accelerator == .tcg && cmd.cpuModel == nil)
        #expect(!cmd.arguments.contains("-cpu"))
    }

    // MARK: PCI allocation

    private func nics(_ n: Int, machine: String, hotplug: Int = 0) -> VMConfig {
        var c = VMConfig(name: "vm", arch: .amd64, machine: Machine(type: machine, hotplugPorts: hotplug))
        c.networks = (0..<n).map { Network(name: "n\($0)", backend: .user(UserNetwork())) }
        return c
    }

    private func slots(_ cmd: QEMUCommandLine) -> [String] {
        cmd.arguments.compactMap { a in
            guard let r = a.range(of: "\"addr\":\"") else { return nil }
            return String(a[r.upperBound...].prefix { $0 != "\"" })
        }
    }

    @Test func q35UsesSlots1To1eAndNever1f() throws {
        let cmd = try nics(30, machine: "q35").commandLine(launch)
        let s = slots(cmd)
        #expect(s.count == 30 && Set(s).count == 30)
        #expect(s.first == "0x1" && s.last == "0x1e" && !s.contains("0x1f"))
        #expect(cmd.arguments.allSatisfy { !$0.contains("\"bus\":\"pci.0\"") })
    }

    @Test func q35ReportsExhaustion() {
        let p = commandLineProblems(nics(31, machine: "q35"))
        #expect(p.count == 1)
        #expect(p.first?.message.hasPrefix("no free PCI slot on pcie.0: 31 devices need one, 30 are free") == true, "\(p)")
        // Hot-plug ports count against the same slots.
        #expect(!commandLineProblems(nics(27, machine: "q35", hotplug: 4)).isEmpty)
        #expect(commandLineProblems(nics(26, machine: "q35", hotplug: 4)).isEmpty)
    }

    @Test func i440fxUsesSlots2To1f() throws {
        let cmd = try nics(30, machine: "pc").commandLine(launch)
        let s = slots(cmd)
        #expect(s.first == "0x2" && s.last == "0x1f")
        #expect(!cmd.arguments.contains { $0.contains("pcie-root-port") })
        #expect(!commandLineProblems(nics(31, machine: "pc-i440fx-7.2")).isEmpty)
    }

    @Test func fixedSlotsAreChecked() {
        var c = nics(1, machine: "q35")
        c.networks[0].pciSlot = 0x1f
        #expect(commandLineProblems(c).map(\.description) == [
            "networks[0].pciSlot: slot 0x1f is not free for devices on pcie.0 (usable: 0x01–0x1e, minus slots the board or defaults use)"])
        c.networks[0].pciSlot = 0x20
        #expect(c.problems().map(\.path) == ["networks[0].pciSlot"])
        c = nics(0, machine: "q35")
        c.disks = [Disk(name: "d", backend: .file(FileDisk(path: "/d", format: .raw)), pciSlot: 5),
                   Disk(name: "e", backend: .file(FileDisk(path: "/e", format: .raw)), pciSlot: 5)]
        #expect(commandLineProblems(c).map(\.description) == ["disks[1].pciSlot: slot 0x05 on pcie.0 is already taken"])
    }

    /// Slots from an earlier launch are kept: removing the first of three NICs moves neither other NIC,
    /// a new NIC takes the freed slot, a pinned slot wins over a hint, and the plan reports each slot.
    @Test func hintedSlotsKeepDevicesWhereTheyWere() throws {
        var c = nics(3, machine: "q35")
        let first = c.pciSlotPlan()
        #expect(first.problems.isEmpty)
        #expect(first.slots["net-n0"] == 1 && first.slots["net-n1"] == 2 && first.slots["net-n2"] == 3)
        c.networks.removeFirst()
        #expect(c.pciSlotPlan().slots["net-n1"] == 1)  // without hints, renumbered
        c.pciSlotHints = first.slots
        let kept = c.pciSlotPlan().slots
        #expect(kept == ["net-n1": 2, "net-n2": 3])
        let cmd = try c.commandLine(launch)
        #expect(slots(cmd) == ["0x2", "0x3"])
        #expect(cmd.pciSlots == kept)
        c.networks.append(Network(name: "n3", backend: .user(UserNetwork())))
        #expect(c.pciSlotPlan().slots["net-n3"] == 1)
        c.networks[2].pciSlot = 2  // pins n3 onto n1's recorded slot: n1 moves, nothing clashes
        let pinned = c.pciSlotPlan()
        #expect(pinned.problems.isEmpty)
        #expect(pinned.slots["net-n3"] == 2 && pinned.slots["net-n2"] == 3 && pinned.slots["net-n1"] == 1)
        // A board where QEMU places devices itself cannot honour a fixed slot: said, not ignored.
        var microvm = nics(1, machine: "microvm")
        microvm.networks[0].pciSlot = 5
        #expect(microvm.pciSlotPlan().problems.map(\.path) == ["networks[0].pciSlot"])
    }

    @Test func ideUnitsRunOut() {
        var c = VMConfig(name: "vm", arch: .amd64, machine: Machine(hotplugPorts: 0))
        c.disks = (0..<6).map { Disk(name: "d\($0)", file: "/d\($0)", format: .raw, interface: .ide) }
        c.cdroms = [CDROM(name: "cd")]
        #expect(commandLineProblems(c).map(\.path) == ["cdroms[0].interface"])
        c.machine.type = "pc"
        c.cdroms = []
        #expect(commandLineProblems(c).map(\.path) == ["disks[4].interface", "disks[5].interface"])
    }

    // MARK: Secrets

    @Test func secretsNeverReachArgv() throws {
        var c = VMConfig(name: "vm", arch: .amd64)
        c.disks = [
            Disk(name: "r", backend: .rbd(RBDDisk(pool: "p", image: "i", user: "u", key: .value("RBD-TOPSECRET")))),
            Disk(name: "s", backend: .iscsi(ISCSIDisk(portal: "h:3260", target: "iqn.x", user: "u", password: .value("ISCSI-TOPSECRET")))),
        ]
        c.display = Display(vnc: VNC(listen: .none, password: .value("VNC-TOPSECRET")),
                            spice: SPICE(listen: .unix(path: "/s.sock"), password: .environment("SPICE_PW")))
        let cmd = try c.commandLine(launch)
        let all = cmd.arguments.joined(separator: " ")
        for s in ["TOPSECRET", "\"data\"", "SPICE_PW"] { #expect(!all.contains(s), "\(s) in argv") }
        #expect(all.contains("vnc=none,password=on"))  // the flag that makes VNC require the password set over QMP
        #expect(cmd.secretFiles.map(\.path) == ["/run/q/secret-r-key", "/run/q/secret-s-password"])
        #expect(cmd.secretFiles.map(\.secret) == [.value("RBD-TOPSECRET"), .value("ISCSI-TOPSECRET")])
        #expect(cmd.postStartActions == [.setPassword(.vnc, .value("VNC-TOPSECRET")), .setPassword(.spice, .environment("SPICE_PW"))])
        #expect(cmd.postStartActions[0].arguments(secretValue: "x") == ["protocol": "vnc", "password": "x"])
        #expect(try Secret.environment("SPICE_PW").read(environment: ["SPICE_PW": "pw"]) == "pw")
    }

    @Test func inMemorySecretsAreNeverEncodedOrPrinted() throws {
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(Secret.value("x")) }
        #expect(!"\(Secret.value("hunter2"))".contains("hunter2"))
        let data = try JSONEncoder().encode(Secret.file("/k"))
        #expect(String(decoding: data, as: UTF8.self) == #"{"file":"\/k"}"#)
    }

    // MARK: Codable

    @Test func richConfigRoundTripsThroughJSON() throws {
        var c = GoldenCase.all.first { $0.name == "chardevs-virtio-serial-guest-agent" }!.config
        c.disks = [Disk(name: "r", backend: .rbd(RBDDisk(pool: "p", image: "i", key: .file("/k"))), throttle: Throttle(bpsTotal: 1))]
        c.networks = [Network(name: "n", backend: .stream(StreamNetwork(address: .unix(path: "/s"), server: true)))]
        c.memory.backend = .file(path: "/dev/hugepages")
        c.rng = RNG()
        c.audio = Audio(backend: .wav, model: .ac97, wavPath: "/tmp/a.wav")
        let data = try JSONEncoder().encode(c)
        #expect(try JSONDecoder().decode(VMConfig.self, from: data) == c)
        let minimal = try JSONDecoder().decode(VMConfig.self, from: Data(#"{"name":"x","disks":[{"name":"d","backend":{"file":{"path":"/d","format":"raw","autoReadOnly":false}},"interface":"virtio","readOnly":false,"discard":false}]}"#.utf8))
        #expect(minimal.memory.sizeMiB == 512 && minimal.noDefaults && minimal.disks.count == 1)
    }

    @Test func derivedMACsAreStableAndValid() {
        let a = MACAddress.derived(vmName: "web-1", nicName: "net0")
        #expect(a == MACAddress.derived(vmName: "web-1", nicName: "net0"))
        #expect(a != MACAddress.derived(vmName: "web-2", nicName: "net0"))
        #expect(a.isValid && a.rawValue.hasPrefix("52:54:00:"))
        #expect(!MACAddress("01:00:5e:00:00:01").isValid)
    }

    @Test func seedSimpleConfigMapsOntoTheRichOne() {
        let c = VMConfig(name: "s", drives: [Disk(name: "d", file: "/d", format: .qcow2)], vnc: VNC(seedDisplay: ":3"))
        #expect(c.memory.sizeMiB == 512 && c.cpu.count == 1 && c.noDefaults && c.machine.accel == .auto)
        #expect(c.display.vnc?.listen == .tcp(host: "", display: 3))
    }
}

/// Values that a program QEMU hands them to would read as syntax (issue 6, item 2).
@Suite("Values QEMU's helpers would interpret")
struct InterpretedValueTests {
    /// QEMU 7.2 runs a bridge helper whose path holds a space or tab through `/bin/sh -c`.
    @Test(arguments: ["/usr/lib/qemu/h $(touch /tmp/x)", "/a\tb"])
    func bridgeHelpersWithWhitespaceAreRefused(_ helper: String) {
        var c = VMConfig(name: "vm")
        c.networks = [Network(name: "n", backend: .bridge(BridgeNetwork(bridge: "br0", helper: helper)))]
        #expect(c.problems().contains { $0.path == "networks[0].bridge.helper" && $0.message.contains("shell") })
    }

    /// libvdeplug reads `://` (plugin), `[…]` (parameters), quotes and backslashes in its argument.
    @Test(arguments: ["/run/sw[port=5]", "/run/cmd://touch", "/run/a\"b", "/run/a'b", "/run/a\\b"])
    func vdeSocketsWithURLSyntaxAreRefused(_ sock: String) {
        var c = VMConfig(name: "vm")
        c.networks = [Network(name: "n", backend: .vde(VDENetwork(socket: sock)))]
        #expect(c.problems().contains { $0.path == "networks[0].vde.socket" && $0.message.contains("plain path") })
    }

    /// Tap scripts get the interface name as an argument: no leading '-'.
    @Test func interfaceNamesStartingWithADashAreRefused() {
        var c = VMConfig(name: "vm")
        c.networks = [Network(name: "n", backend: .tap(TapNetwork(ifname: "-x"))),
                      Network(name: "b", backend: .bridge(BridgeNetwork(bridge: "-br")))]
        let paths = Set(c.problems().map(\.path))
        #expect(paths.isSuperset(of: ["networks[0].tap.ifname", "networks[1].bridge.bridge"]), "\(paths)")
        var ok = VMConfig(name: "vm")
        ok.networks = [Network(name: "n", backend: .vde(VDENetwork(socket: "/run/vde,x=y sw"))),
                       Network(name: "b", backend: .bridge(BridgeNetwork(bridge: "br-0", helper: "/usr/lib/qemu/qemu-bridge-helper")))]
        #expect(ok.problems() == [])
    }
}
