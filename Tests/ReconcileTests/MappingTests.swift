import Foundation
import Manifest
import QemuCtl
import QemuCtlTestSupport
import Reconcile
import Testing

// MARK: - Support

/// The repository root, found from this file's path (Tests/ReconcileTests/MappingTests.swift).
private let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A manifest with `spec` lines appended (2-space indent), for VM `name`.
private func manifest(_ spec: String, name: String = "vm1") -> String {
    "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: \(name)\nspec:\n" + spec
}

/// Loads one VM from YAML text (relative paths resolve against `/base`); records an issue on diagnostics.
private func loadVM(_ yaml: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> VirtualMachine {
    let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "t.yaml", baseDirectory: "/base")
    #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))", sourceLocation: sourceLocation)
    return try #require(set.virtualMachines.first, sourceLocation: sourceLocation)
}

/// The socket directory the tests map with; the runtime directory is `/run/qc/NAME`.
private let socketDir = "/run/qc"

/// Maps YAML spec lines to a configuration.
private func mapped(_ spec: String, name: String = "vm1", sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> VMConfig {
    let vm = try loadVM(manifest(spec, name: name), sourceLocation: sourceLocation)
    return try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
}

/// The mapping error for YAML spec lines (an issue when the mapping succeeds).
private func mappingError(_ spec: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> MappingError {
    let vm = try loadVM(manifest(spec), sourceLocation: sourceLocation)
    do {
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        Issue.record("expected a MappingError, got \(c)", sourceLocation: sourceLocation)
        throw CancellationError()
    } catch let e as MappingError {
        return e
    }
}

/// Launch options as the launcher would pass them, with TCG probed.
private func launch(_ c: VMConfig) -> LaunchOptions {
    let layout = RuntimeLayout(name: c.name, socketDirectory: c.socketDirectory ?? socketDir)
    return LaunchOptions(qmpSocketPath: layout.socketPath, runtimeDirectory: layout.runtimeDirectory,
                         pidFile: layout.pidFile, daemonize: true, accelerator: AcceleratorChoice(accelerator: .tcg))
}

/// The argv for a configuration.
private func argv(_ c: VMConfig) throws -> [String] { try c.commandLine(launch(c)).arguments }

/// The values following each occurrence of option `name` in argv.
private func values(of name: String, in args: [String]) -> [String] {
    zip(args, args.dropFirst()).filter { $0.0 == name }.map(\.1)
}

/// The JSON objects of every `name` option (`-blockdev`, `-device`, `-netdev`, `-object`).
private func jsonValues(of name: String, in args: [String]) -> [[String: Any]] {
    values(of: name, in: args).compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// Splits QEMU's `key=value,…` syntax at single commas (`,,` is an escaped comma) into unescaped parts.
private func qemuOptsParts(_ s: String) -> [String] {
    var parts: [String] = []
    var cur = ""
    var chars = Array(s)[...]
    while let c = chars.popFirst() {
        if c == "," {
            if chars.first == "," { chars.removeFirst(); cur.append(",") } else { parts.append(cur); cur = "" }
        } else {
            cur.append(c)
        }
    }
    parts.append(cur)
    return parts
}

/// Every string anywhere inside a decoded JSON value.
private func allStrings(_ v: Any) -> [String] {
    switch v {
    case let s as String: [s]
    case let d as [String: Any]: d.values.flatMap(allStrings)
    case let a as [Any]: a.flatMap(allStrings)
    default: []
    }
}

// MARK: - Examples

@Suite("VMConfigMapping: examples")
struct MappingExampleTests {
    static var exampleFiles: [String] {
        let dir = repoRoot + "/examples"
        let e = FileManager.default.enumerator(atPath: dir)
        var out: [String] = []
        while let f = e?.nextObject() as? String {
            if f.hasSuffix(".yaml") || f.hasSuffix(".yml") { out.append(dir + "/" + f) }
        }
        return out.sorted()
    }

    @Test func everyExampleFileIsFound() {
        let names = Self.exampleFiles.map { String($0.dropFirst(repoRoot.count + 1)) }
        #expect(names.contains("examples/hello.yaml"))
        #expect(names.contains("examples/server.yaml"))
        #expect(names.contains("examples/fleet/db/db-1.yml"))
        #expect(names.count >= 6)
    }

    @Test(arguments: exampleFiles.map { String($0.dropFirst(repoRoot.count + 1)) })
    func exampleMapsValidatesAndRenders(_ file: String) throws {
        let set = ManifestLoader().load(paths: [repoRoot + "/" + file])
        #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))")
        #expect(!set.virtualMachines.isEmpty)
        // Every example maps as written: no manifest feature they use lacks a QEMU counterpart.
        for vm in set.virtualMachines {
            let c = try VMConfigMapping.config(for: vm, uuid: "5f0c8e2a-3b1d-4c6e-9a7f-0123456789ab",
                                               socketDirectory: socketDir)
            try c.validate()
            let cmd = try c.commandLine(launch(c))
            #expect(cmd.arguments.contains("-nodefaults"))
            #expect(c.extraArgs.isEmpty)
            #expect(values(of: "-uuid", in: cmd.arguments) == ["5f0c8e2a-3b1d-4c6e-9a7f-0123456789ab"])
        }
    }

    @Test func helloMapsFieldByField() throws {
        let vm = try #require(ManifestLoader().load(paths: [repoRoot + "/examples/hello.yaml"]).virtualMachines.first)
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.name == "hello")
        #expect(c.machine.type == "q35")
        #expect(c.machine.accel == .tcg)  // hello.yaml pins tcg: Linux hangs under nested KVM here
        #expect(c.cpu.count == 1)
        #expect(c.memory.sizeMiB == 256)
        #expect(c.memory.backend == nil)
        #expect(c.boot?.kernel == repoRoot + "/.cache/guest/current/vmlinuz")
        #expect(c.boot?.initrd == repoRoot + "/.cache/guest/current/initrd.img")
        #expect(c.boot?.append == "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check")
        #expect(c.serials == [Serial(name: "console", backend: .unix(path: "/run/qc/hello/console.sock", server: true),
                                     logFile: "/run/qc/hello/serial.log")])
        #expect(c.guestAgent)
        #expect(c.disks.isEmpty && c.networks.isEmpty && c.usb == nil && c.balloon == nil)
        let args = try argv(c)
        #expect(values(of: "-accel", in: args) == ["tcg"])
        #expect(values(of: "-chardev", in: args).contains(
            "socket,id=serial-console,path=/run/qc/hello/console.sock,server=on,wait=off,logfile=/run/qc/hello/serial.log"))
        #expect(values(of: "-serial", in: args) == ["chardev:serial-console"])
    }

    @Test func serverMapsFieldByField() throws {
        let vm = try #require(ManifestLoader().load(paths: [repoRoot + "/examples/server.yaml"]).virtualMachines.first)
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.arch == .amd64)
        #expect(c.machine == Machine(type: "q35", accel: .kvm, dumpGuestCore: false, hotplugPorts: 4))
        #expect(c.cpu == CPU(count: 2, maxCount: 4, sockets: 1, cores: 4, threads: 1))
        #expect(c.memory == Memory(sizeMiB: 2048, maxSizeMiB: 4096, slots: 4))
        #expect(c.firmware == nil)
        #expect(c.disks.count == 2)
        #expect(c.disks[0].backend == .file(FileDisk(path: repoRoot + "/examples/images/web-1.qcow2", format: .qcow2)))
        #expect(c.disks[0].bootIndex == 1)
        #expect(c.disks[1].cache == DiskCache.none && c.disks[1].discard)
        #expect(c.disks[1].throttle == Throttle(bpsRead: 200 << 20, bpsWrite: 100 << 20, iopsTotal: 2000,
                                                iopsTotalMax: 4000, iopsTotalMaxLength: 10))
        #expect(c.cdroms == [CDROM(name: "installer")])
        guard case .user(let u) = c.networks.first?.backend else { Issue.record("no user network"); return }
        #expect(u.hostForwards == [.tcp(hostAddress: "127.0.0.1", hostPort: 2222, guestPort: 22),
                                   .tcp(hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80)])
        #expect(c.networks[0].mac?.rawValue == vm.spec.networks[0].mac)
        #expect(c.display.vnc == VNC(listen: .none, password: .file(repoRoot + "/examples/secrets/vnc-password")))
        #expect(c.display.video == .vga)
        #expect(c.guestAgent && c.usbTablet)
        #expect(c.usb == USB(controller: .xhci, devices: []))
        #expect(c.balloon == Balloon())
        #expect(c.rng == RNG())
        #expect(c.audio == nil)
        let cmd = try c.commandLine(launch(c))
        #expect(values(of: "-object", in: cmd.arguments).contains(#"{"qom-type":"rng-random","id":"rng0","filename":"/dev/urandom"}"#))
        #expect(values(of: "-device", in: cmd.arguments).contains { $0.hasPrefix(#"{"driver":"virtio-rng-pci","id":"rng0-dev","rng":"rng0","bus":"pcie.0","addr":"#) })
        #expect(cmd.postStartActions == [.setPassword(.vnc, .file(repoRoot + "/examples/secrets/vnc-password"))])
    }
}

// MARK: - Machine, CPU, memory, firmware, boot

@Suite("VMConfigMapping: machine, CPU, memory, firmware, boot")
struct MappingMachineTests {
    @Test func machineAndCPU() throws {
        let c = try mapped("""
          arch: amd64
          emulator: /opt/qemu/bin
          machine: {type: pc, accel: tcg, hotplugPorts: 2, dumpGuestCore: true}
          cpu: {model: qemu64, count: 2, maxCount: 4, sockets: 2, cores: 2, threads: 1, features: [+avx2, -x2apic, pdpe1gb]}
        """)
        #expect(c.arch == .amd64)
        #expect(c.qemuPath == "/opt/qemu/bin")
        #expect(c.machine == Machine(type: "pc", accel: .tcg, dumpGuestCore: true, hotplugPorts: 2))
        #expect(c.cpu == CPU(model: "qemu64", features: ["avx2": true, "x2apic": false, "pdpe1gb": true], count: 2,
                             maxCount: 4, sockets: 2, cores: 2, threads: 1))
        let args = try argv(c)
        #expect(values(of: "-cpu", in: args) == ["qemu64,avx2=on,pdpe1gb=on,x2apic=off"])
        #expect(values(of: "-smp", in: args) == ["cpus=2,maxcpus=4,sockets=2,cores=2,threads=1"])
    }

    @Test func limitsNarrowerThanTheManifestsAreReportedAtTheManifestField() throws {
        // The manifest allows 28 hot-plug ports and USB host address 0; QemuCtl allows 24 and 1…127.
        let e = try mappingError("""
          machine: {type: q35, hotplugPorts: 28}
          usb: {devices: [{name: port, type: host, bus: 1, address: 0}]}
        """)
        #expect(e.fields == ["spec.machine.hotplugPorts", "spec.usb.devices[0].address"])
        #expect(e.description.contains("(QEMU configuration field usb.devices[0].hostAddress.address)"))
    }

    @Test func contradictoryCPUFeaturesAreRefused() throws {
        let e = try mappingError("  cpu: {model: max, features: [+avx2, -avx2]}\n")
        #expect(e.fields == ["spec.cpu.features[1]"])
    }

    @Test(arguments: Architecture.allCases)
    func everyArchitectureMaps(_ arch: Architecture) throws {
        var vm = try loadVM(manifest("  machine: {type: virt}\n"))
        vm.spec.arch = arch
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.arch?.rawValue == arch.rawValue)
    }

    @Test func memoryBackends() throws {
        let file = try mapped("  memory: {size: 1GiB, max: 4GiB, slots: 4, backend: file, path: /dev/hugepages, share: true, prealloc: true, lock: true}\n")
        #expect(file.memory == Memory(sizeMiB: 1024, maxSizeMiB: 4096, slots: 4, backend: .file(path: "/dev/hugepages"),
                                      share: true, prealloc: true, lock: true))
        let memfd = try mapped("  memory: {size: 512MiB, backend: memfd}\n")
        // QEMU's memfd shares by default; the manifest's share: false is passed explicitly.
        #expect(memfd.memory == Memory(sizeMiB: 512, backend: .memfd, share: false))
        #expect(jsonValues(of: "-object", in: try argv(memfd)).first?["share"] as? Bool == false)
        let ram = try mapped("  memory: {size: 512MiB}\n")
        #expect(ram.memory == Memory(sizeMiB: 512))
        let ramPrealloc = try mapped("  memory: {size: 512MiB, prealloc: true}\n")
        #expect(ramPrealloc.memory == Memory(sizeMiB: 512, backend: .ram, share: false, prealloc: true))
        // Slots without max are the manifest's default (8) and mean nothing without hot-plug.
        #expect(try mapped("  memory: {size: 1GiB}\n").memory.slots == nil)
    }

    @Test func sizesThatAreNotWholeMiBAreRefused() throws {
        let e = try mappingError("  memory: {size: 1000000KiB, max: 1.5GiB}\n")
        #expect(e.fields == ["spec.memory.size"])
        #expect(e.problems.first?.description.hasPrefix("spec.memory.size: 1024000000 bytes is not a whole number of MiB") == true)
        // Below the manifest's minimum, but a spec built in code can hold it.
        var vm = try loadVM(manifest("  memory: {size: 1MiB}\n"))
        vm.spec.memory.size = 1_000_000
        do {
            _ = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
            Issue.record("1000000 bytes was mapped")
        } catch {
            #expect(error.problems.map(\.description) == [
                "spec.memory.size: 1000000 bytes is not a whole number of MiB (QEMU gets memory sizes in MiB and they are never rounded; nearest: 1MiB)"])
        }
        let e2 = try mappingError("  memory: {size: 1GiB, max: 2097153KiB}\n")
        #expect(e2.fields == ["spec.memory.max"])
        #expect(e2.description.contains("2147484672 bytes is not a whole number of MiB"))
        #expect(e2.description.contains("t.yaml:4:"))
    }

    @Test func firmware() throws {
        // No firmware descriptors: the manifest's paths are all there is (FirmwareMappingTests has descriptors).
        try VMConfigMapping.$firmwareDirectories.withValue([]) {
            #expect(try mapped("  firmware: {type: bios}\n").firmware == nil)
            let efi = try mapped("  firmware: {type: efi, code: /usr/share/OVMF/OVMF_CODE.fd, vars: vars.fd}\n")
            #expect(efi.firmware == Firmware(code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/base/vars.fd"))
            let noVars = try mappingError("  firmware: {type: efi, code: /usr/share/OVMF/OVMF_CODE.fd}\n")
            #expect(noVars.fields == ["spec.firmware.vars"])
            let e = try mappingError("  firmware: {type: efi}\n")
            #expect(e.fields == ["spec.firmware.code"])
        }
    }

    @Test func boot() throws {
        let c = try mapped("""
          boot: {kernel: k/vmlinuz, initrd: k/initrd, cmdline: "console=ttyS0 root=/dev/vda", order: cdn, menu: true, strict: true}
        """)
        #expect(c.boot == Boot(order: "cdn", menu: true, strict: true, kernel: "/base/k/vmlinuz",
                               initrd: "/base/k/initrd", append: "console=ttyS0 root=/dev/vda"))
        let args = try argv(c)
        #expect(values(of: "-boot", in: args) == ["order=cdn,menu=on,strict=on"])
        #expect(values(of: "-append", in: args) == ["console=ttyS0 root=/dev/vda"])
        #expect(try mapped("  boot: {menu: false}\n").boot == nil)
    }

    @Test func identityAndRuntimeDirectory() throws {
        let vm = try loadVM(manifest("  serial: {log: true}\n", name: "web"))
        let c = try VMConfigMapping.config(for: vm, uuid: "5f0c8e2a-3b1d-4c6e-9a7f-0123456789ab",
                                           socketDirectory: "/var/lib/qc")
        #expect(c.uuid == "5f0c8e2a-3b1d-4c6e-9a7f-0123456789ab")
        #expect(c.socketDirectory == "/var/lib/qc")
        let layout = RuntimeLayout(name: "web", socketDirectory: "/var/lib/qc")
        #expect(c.serials.first?.logFile == layout.serialLog)
        #expect(c.serials.first?.backend == .unix(path: layout.runtimeDirectory + "/console.sock", server: true))
        #expect(c.noDefaults && c.extraArgs.isEmpty)
        let explicit = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: nil, runtimeDirectory: "/r")
        #expect(explicit.serials.first?.logFile == "/r/serial.log")
        #expect(explicit.socketDirectory == nil)
    }

    @Test func serialWithoutLogIsStillAConsole() throws {
        let c = try mapped("  serial: {log: false}\n")
        #expect(c.serials == [Serial(name: "console", backend: .unix(path: "/run/qc/vm1/console.sock", server: true))])
    }

    @Test func tooLongSocketPathsAreRefused() throws {
        let vm = try loadVM(manifest("  display: {spice: {listen: unix}}\n"))
        let dir = "/" + String(repeating: "d", count: 100)
        #expect(throws: MappingError.self) { try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: dir) }
        do {
            _ = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: dir)
        } catch {
            #expect(error.fields == ["spec.display.spice.listen", "spec.serial"])
        }
    }
}

// MARK: - Disks and CD-ROMs

@Suite("VMConfigMapping: disks and CD-ROMs")
struct MappingDiskTests {
    @Test func fileDisksWithEveryOption() throws {
        let c = try mapped("""
          disks:
            - name: root
              file: {path: images/root.qcow2, format: qcow2}
              interface: nvme
              serial: ROOT-1
              cache: directsync
              discard: true
              bootIndex: 1
            - name: data
              file: {path: /dev/sdb, format: raw}
              interface: scsi
              readOnly: true
              cache: unsafe
            - name: legacy
              file: {path: /srv/legacy.vmdk, format: vmdk}
              interface: ide
        """)
        #expect(c.disks == [
            Disk(name: "root", backend: .file(FileDisk(path: "/base/images/root.qcow2", format: .qcow2)),
                 interface: .nvme, cache: .directsync, discard: true, serial: "ROOT-1", bootIndex: 1),
            Disk(name: "data", backend: .file(FileDisk(path: "/dev/sdb", format: .raw)), interface: .scsi,
                 readOnly: true, cache: .unsafe),
            Disk(name: "legacy", backend: .file(FileDisk(path: "/srv/legacy.vmdk", format: .vmdk)), interface: .ide,
                 cache: .writeback),
        ])
        _ = try argv(c)
    }

    @Test(arguments: VirtualMachineSpec.Disk.Format.allCases)
    func everyFormatMaps(_ f: VirtualMachineSpec.Disk.Format) throws {
        let c = try mapped("  disks:\n    - {name: d, file: {path: /d.img, format: \(f.rawValue)}}\n")
        #expect(c.disks.first?.backend == .file(FileDisk(path: "/d.img", format: DiskFormat(rawValue: f.rawValue)!)))
    }

    @Test(arguments: VirtualMachineSpec.Disk.Cache.allCases)
    func everyCacheModeMaps(_ m: VirtualMachineSpec.Disk.Cache) throws {
        let c = try mapped("  disks:\n    - {name: d, file: {path: /d.img, format: raw}, cache: \(m.rawValue)}\n")
        #expect(c.disks.first?.cache?.rawValue == m.rawValue)
    }

    @Test func nbd() throws {
        let c = try mapped("""
          disks:
            - {name: a, nbd: {unix: /run/nbd.sock, export: vol1}}
            - {name: b, nbd: {host: nbd.example, port: 10810}}
        """)
        #expect(c.disks.map(\.backend) == [
            .nbd(NBDDisk(server: .unix(path: "/run/nbd.sock"), export: "vol1")),
            .nbd(NBDDisk(server: .tcp(host: "nbd.example", port: 10810))),
        ])
        let server = jsonValues(of: "-blockdev", in: try argv(c)).compactMap { $0["server"] as? [String: Any] }
        #expect(server.count == 2)
        #expect(server.last?["host"] as? String == "nbd.example")
        #expect(server.last?["port"] as? String == "10810")
        let e = try mappingError("  disks:\n    - {name: a, nbd: {unix: /run/nbd.sock, tls: true}}\n")
        #expect(e.fields == ["spec.disks[0].nbd.tls"])
    }

    @Test func rbd() throws {
        let c = try mapped("""
          disks:
            - name: a
              rbd: {pool: rbd, image: vm1, conf: /etc/ceph/ceph.conf, user: qemu, keyFrom: {env: CEPH_KEY}}
            - name: b
              rbd: {pool: rbd, image: vm1-base, snapshot: golden, keyFrom: {file: secrets/ceph.key}}
        """)
        #expect(c.disks[0].backend == .rbd(RBDDisk(pool: "rbd", image: "vm1", conf: "/etc/ceph/ceph.conf", user: "qemu",
                                                   key: .environment("CEPH_KEY"))))
        #expect(!c.disks[0].readOnly)
        #expect(c.disks[1].backend == .rbd(RBDDisk(pool: "rbd", image: "vm1-base", snapshot: "golden",
                                                   key: .file("/base/secrets/ceph.key"))))
        #expect(c.disks[1].readOnly, "a snapshot opens read-only")
        let cmd = try c.commandLine(launch(c))
        #expect(cmd.secretFiles.map(\.secret) == [.environment("CEPH_KEY"), .file("/base/secrets/ceph.key")])
    }

    @Test func iscsi() throws {
        let c = try mapped("""
          disks:
            - name: a
              iscsi: {portal: "10.0.0.5:3260", target: "iqn.2024-01.com.example:a", lun: 3, user: u, passwordFrom: {env: CHAP}, initiator: "iqn.2024-01.com.example:me"}
              readOnly: true
        """)
        #expect(c.disks[0].backend == .iscsi(ISCSIDisk(portal: "10.0.0.5:3260", target: "iqn.2024-01.com.example:a",
                                                       lun: 3, user: "u", password: .environment("CHAP"),
                                                       initiator: "iqn.2024-01.com.example:me")))
        #expect(c.disks[0].readOnly)
        _ = try argv(c)
    }

    @Test func throttleEveryField() throws {
        let c = try mapped("""
          disks:
            - name: a
              file: {path: /a.img, format: raw}
              throttle: {bps: 100MiB, bpsMax: 200MiB, iopsRead: 100, iopsReadMax: 150, iopsWrite: 50, iopsWriteMax: 60, burstLength: 30, iopsSize: 4KiB}
            - name: b
              file: {path: /b.img, format: raw}
              throttle: {bpsRead: 1MiB, bpsReadMax: 2MiB, bpsWrite: 3MiB, bpsWriteMax: 4MiB, iops: 10, iopsMax: 20}
        """)
        #expect(c.disks[0].throttle == Throttle(
            bpsTotal: 100 << 20, iopsRead: 100, iopsWrite: 50, bpsTotalMax: 200 << 20, iopsReadMax: 150,
            iopsWriteMax: 60, bpsTotalMaxLength: 30, iopsReadMaxLength: 30, iopsWriteMaxLength: 30, iopsSize: 4096))
        #expect(c.disks[1].throttle == Throttle(
            bpsRead: 1 << 20, bpsWrite: 3 << 20, iopsTotal: 10, bpsReadMax: 2 << 20, bpsWriteMax: 4 << 20,
            iopsTotalMax: 20, bpsReadMaxLength: 1, bpsWriteMaxLength: 1, iopsTotalMaxLength: 1))
        let groups = jsonValues(of: "-object", in: try argv(c)).filter { $0["qom-type"] as? String == "throttle-group" }
        #expect(groups.count == 2)
        #expect((groups.first?["limits"] as? [String: Any])?["bps-total-max-length"] as? Int == 30)
    }

    @Test func cdroms() throws {
        let c = try mapped("""
          cdroms:
            - {name: installer, path: iso/debian.iso, bootIndex: 0}
            - {name: empty, interface: scsi}
        """)
        #expect(c.cdroms == [CDROM(name: "installer", path: "/base/iso/debian.iso", bootIndex: 0),
                             CDROM(name: "empty", interface: .scsi)])
        _ = try argv(c)
    }

    @Test func namesQEMUCannotTakeAreReportedWithManifestPaths() throws {
        // The manifest's device-name format refuses them first (so `validate` agrees with `apply`)...
        let yaml = manifest("""
          disks:
            - {name: 0root, file: {path: /a.img, format: raw}}
            - {name: a-very-long-disk-name-indeed-xyz, file: {path: /b.img, format: raw}}
          networks:
            - {name: 1net, user: {}}
        """)
        let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "t.yaml", baseDirectory: "/base")
        #expect(set.diagnostics.map(\.message) == [
            "invalid 'spec.disks[0].name' '0root'", "invalid 'spec.disks[1].name' 'a-very-long-disk-name-indeed-xyz'",
            "invalid 'spec.networks[0].name' '1net'",
        ])
        // ...and the mapping still refuses them in a VM built in code.
        var spec = VirtualMachineSpec()
        spec.disks = [.init(name: "0root", backend: .file(path: "/a.img", format: .raw)),
                      .init(name: "a-very-long-disk-name-indeed-xyz", backend: .file(path: "/b.img", format: .raw))]
        spec.networks = [.init(name: "1net", backend: .user(.init()), mac: "52:54:00:00:00:01")]
        let vm = VirtualMachine(name: "vm1", spec: spec, source: SourceLocation(file: "t.yaml", line: 1, column: 1))
        #expect(throws: MappingError.self) { try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir) }
        do {
            _ = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        } catch {
            #expect(error.fields == ["spec.disks[0].name", "spec.disks[1].name", "spec.networks[0].name"])
            #expect(error.description.contains("must start with a lowercase letter"))
        }
    }
}

// MARK: - Networks

@Suite("VMConfigMapping: networks")
struct MappingNetworkTests {
    @Test func userWithHostForwards() throws {
        let c = try mapped("""
          networks:
            - name: net0
              user: {net: 10.1.0.0/24, host: 10.1.0.2, dns: 10.1.0.3, dhcpStart: 10.1.0.15, restrict: true, hostfwd: ["tcp:127.0.0.1:2222-:22", "udp::5353-10.1.0.15:53", "::8080-:80"]}
              model: e1000
              mac: "52:54:00:AB:cd:01"
              bootIndex: 2
        """)
        #expect(c.networks == [Network(
            name: "net0", model: "e1000", mac: "52:54:00:ab:cd:01",
            backend: .user(UserNetwork(net: "10.1.0.0/24", host: "10.1.0.2", dns: "10.1.0.3", dhcpStart: "10.1.0.15",
                                       restrict: true, hostForwards: [
                                        .tcp(hostAddress: "127.0.0.1", hostPort: 2222, guestPort: 22),
                                        HostForward(proto: .udp, hostPort: 5353, guestAddress: "10.1.0.15", guestPort: 53),
                                        .tcp(hostPort: 8080, guestPort: 80),
                                       ])),
            bootIndex: 2)])
        let nd = try #require(jsonValues(of: "-netdev", in: try argv(c)).first)
        let fwd = (nd["hostfwd"] as? [[String: Any]])?.compactMap { $0["str"] as? String }
        #expect(fwd == ["tcp:127.0.0.1:2222-:22", "udp::5353-10.1.0.15:53", "tcp::8080-:80"])
    }

    @Test func derivedMACIsKept() throws {
        let vm = try loadVM(manifest("  networks:\n    - {name: net0, user: {}}\n"))
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.networks[0].mac?.rawValue == vm.spec.networks[0].mac)
        #expect(c.networks[0].mac?.isValid == true)
    }

    @Test func dhcpHostNameAndDomainReachTheNetdev() throws {
        let c = try mapped("  networks:\n    - {name: n, user: {hostname: vm1, domain: example.com}}\n")
        guard case .user(let u) = c.networks[0].backend else { Issue.record("not a user network"); return }
        #expect(u.hostname == "vm1")
        #expect(u.domainName == "example.com")
        let line = try c.commandLine(LaunchOptions(qmpSocketPath: "/run/q/qmp.sock", runtimeDirectory: "/run/q", accelerator: AcceleratorChoice(accelerator: .tcg, reasons: ["test"])))
        let netdev = try #require(line.arguments.first { $0.contains("\"type\":\"user\"") })
        #expect(netdev.contains("\"hostname\":\"vm1\"") && netdev.contains("\"domainname\":\"example.com\""), "\(netdev)")
    }

    @Test func tapAndBridge() throws {
        let c = try mapped("""
          networks:
            - {name: a, tap: {ifname: tap0, script: /etc/up.sh, downscript: /etc/down.sh, vhost: true, queues: 4}}
            - {name: b, tap: {}}
            - {name: c, bridge: {name: br0, helper: /usr/lib/qemu/qemu-bridge-helper}}
            - {name: d, bridge: {name: br1}}
        """)
        #expect(c.networks.map(\.backend) == [
            .tap(TapNetwork(ifname: "tap0", script: "/etc/up.sh", downscript: "/etc/down.sh", vhost: true, queues: 4)),
            .tap(TapNetwork(vhost: false, queues: 1)),
            .bridge(BridgeNetwork(bridge: "br0", helper: "/usr/lib/qemu/qemu-bridge-helper")),
            .bridge(BridgeNetwork(bridge: "br1")),
        ])
        let devices = jsonValues(of: "-device", in: try argv(c)).filter { ($0["id"] as? String)?.hasPrefix("net-") == true }
        #expect(devices.first?["mq"] as? Bool == true)
        let e = try mappingError("  networks:\n    - {name: a, tap: {bridge: br0}}\n")
        #expect(e.fields == ["spec.networks[0].tap.bridge"])
    }

    @Test func socketStreamVDE() throws {
        let c = try mapped("""
          networks:
            - {name: a, socket: {listen: ":5555"}}
            - {name: b, socket: {connect: "10.0.0.1:5555"}}
            - {name: c, socket: {mcast: "230.0.0.1:1234"}}
            - {name: d, stream: {unix: /run/passt.sock}}
            - {name: e, stream: {inet: "[::1]:7000", server: true}}
            - {name: f, vde: {sock: /run/vde.ctl, port: 3, group: kvm}}
            - {name: g, vde: {sock: /run/vde2.ctl}}
        """)
        #expect(c.networks.map(\.backend) == [
            .socket(SocketNetwork(.listen(host: "", port: 5555))),
            .socket(SocketNetwork(.connect(host: "10.0.0.1", port: 5555))),
            .socket(SocketNetwork(.multicast(address: "230.0.0.1", port: 1234))),
            .stream(StreamNetwork(address: .unix(path: "/run/passt.sock"), server: false)),
            .stream(StreamNetwork(address: .inet(host: "::1", port: 7000), server: true)),
            .vde(VDENetwork(socket: "/run/vde.ctl", port: 3, group: "kvm")),
            .vde(VDENetwork(socket: "/run/vde2.ctl")),
        ])
        _ = try argv(c)
    }

    @Test func emptyConnectHostIsReportedAtTheManifestField() throws {
        let e = try mappingError("  networks:\n    - {name: a, socket: {connect: \":5555\"}}\n")
        #expect(e.fields == ["spec.networks[0].socket.connect"])
    }

    @Test func linkDownIsReportedForTheLauncher() throws {
        let vm = try loadVM(manifest("""
          networks:
            - {name: a, user: {}, link: down}
            - {name: b, user: {}}
        """))
        #expect(VMConfigMapping.nicsWithLinkDown(vm) == ["net-a"])
        _ = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
    }
}

// MARK: - Display, devices

@Suite("VMConfigMapping: display and devices")
struct MappingDeviceTests {
    @Test func vnc() throws {
        #expect(try mapped("  display: {vnc: {}}\n").display == Display(vnc: VNC(listen: .none), video: .vga))
        #expect(try mapped("  display: {vnc: {listen: \"unix:/run/vnc.sock\", passwordFrom: {env: VNC_PW}}}\n").display.vnc
                == VNC(listen: .unix(path: "/run/vnc.sock"), password: .environment("VNC_PW")))
        let tcp = try mapped("  display: {vnc: {listen: \"127.0.0.1:3\", passwordFrom: {file: pw}}, video: virtio}\n")
        #expect(tcp.display == Display(vnc: VNC(listen: .tcp(host: "127.0.0.1", display: 3), password: .file("/base/pw")),
                                       video: .virtio))
        #expect(values(of: "-vnc", in: try argv(tcp)) == ["vnc=127.0.0.1:3,password=on"])
        let v6 = try mapped("  display: {vnc: {listen: \"[::1]:0\"}}\n")
        #expect(values(of: "-vnc", in: try argv(v6)) == ["vnc=[::1]:0"])
    }

    @Test func spice() throws {
        let c = try mapped("""
          display: {spice: {passwordFrom: {env: SPICE_PW}, compression: auto_glz}, video: qxl}
          spiceAgent: true
        """)
        #expect(c.display == Display(spice: SPICE(listen: .unix(path: "/run/qc/vm1/spice.sock"),
                                                  password: .environment("SPICE_PW"), imageCompression: .autoGLZ),
                                     video: .qxl))
        #expect(c.spiceAgent)
        let cmd = try c.commandLine(launch(c))
        #expect(cmd.postStartActions == [.setPassword(.spice, .environment("SPICE_PW"))])
        let tcp = try mapped("  display: {spice: {listen: \"0.0.0.0:5930\", disableTicketing: true}}\n")
        #expect(tcp.display.spice == SPICE(listen: .tcp(host: "0.0.0.0", port: 5930), disableTicketing: true))
        #expect(tcp.display.video == .vga)
    }

    @Test(arguments: VirtualMachineSpec.Display.SPICE.Compression.allCases)
    func everySpiceCompressionMaps(_ m: VirtualMachineSpec.Display.SPICE.Compression) throws {
        let c = try mapped("  display: {spice: {compression: \(m.rawValue)}}\n")
        #expect(c.display.spice?.imageCompression?.rawValue == m.rawValue)
    }

    @Test func everyVideoMaps() throws {
        let cirrus = try mapped("  display: {vnc: {}, video: cirrus}\n")
        #expect(cirrus.display.video == .cirrus)
        let ramfb = try mapped("  display: {vnc: {}, video: ramfb}\n")
        #expect(ramfb.display.video == .ramfb)
        // ramfb is not a PCI device: no bus or slot on its -device.
        let line = try ramfb.commandLine(LaunchOptions(qmpSocketPath: "/run/q/qmp.sock", runtimeDirectory: "/run/q", accelerator: AcceleratorChoice(accelerator: .tcg, reasons: ["test"])))
        #expect(line.arguments.contains("{\"driver\":\"ramfb\",\"id\":\"video0\"}"), "\(line.arguments)")
        #expect(try mapped("  display: {vnc: {}, video: none}\n").display.video == nil)
    }

    @Test func usb() throws {
        let c = try mapped("""
          usbTablet: true
          usb:
            controller: ehci
            devices:
              - {name: kbd, type: keyboard}
              - {name: mouse, type: mouse}
              - {name: tab, type: tablet}
              - {name: key, type: host, vendor: "0x046d", product: "0xC52b"}
              - {name: port, type: host, bus: 1, address: 4}
        """)
        #expect(c.usbTablet)
        #expect(c.usb == USB(controller: .ehci, devices: [.keyboard, .mouse, .tablet,
                                                          .host(vendorID: 0x046d, productID: 0xc52b),
                                                          .hostAddress(bus: 1, address: 4)],
                               names: ["kbd", "mouse", "tab", "key", "port"]))
        // Named devices get ids after their names (hot-plug and unplug address them so).
        #expect(try argv(c).contains(#"{"driver":"usb-kbd","id":"usb-kbd","bus":"usb.0"}"#))
        #expect(try mapped("  usbTablet: true\n").usb == USB(controller: .xhci))
        #expect(try mapped("  usb: {controller: ehci}\n").usb == nil)
    }

    @Test func agentsBalloonRTC() throws {
        let c = try mapped("""
          guestAgent: true
          balloon: true
          rtc: {base: localtime, clock: vm, driftFix: slew}
        """)
        #expect(c.guestAgent)
        #expect(c.balloon == Balloon())
        #expect(c.rtc == RTC(base: .localtime, clock: .vm, driftFix: .slew))
        #expect(values(of: "-rtc", in: try argv(c)) == ["base=localtime,clock=vm,driftfix=slew"])
        #expect(try mapped("  runState: paused\n").rtc == RTC(base: .utc, clock: .host, driftFix: DriftFixNone.value))
    }

    @Test func rngAndAudio() throws {
        let c = try mapped("  rng: true\n  audio: {backend: pa, model: hda}\n")
        #expect(c.rng == RNG())
        #expect(c.audio == Audio(backend: .pa, model: .hda))
        let args = try argv(c)
        #expect(values(of: "-audiodev", in: args) == [#"{"driver":"pa","id":"audio0"}"#])
        #expect(values(of: "-device", in: args).contains(#"{"driver":"hda-duplex","id":"sound0-codec","bus":"sound0.0","audiodev":"audio0"}"#))
        #expect(try mapped("  rng: false\n").rng == nil)
        #expect(try mapped("  audio: {}\n").audio == Audio(backend: .none, model: .hda))
        for (m, driver) in [("ac97", "AC97"), ("sb16", "sb16")] {
            let a = try argv(try mapped("  machine: {type: pc}\n  audio: {backend: wav, model: \(m)}\n"))
            #expect(values(of: "-audiodev", in: a) == [#"{"driver":"wav","id":"audio0","path":"/run/qc/vm1/audio0.wav"}"#])
            #expect(values(of: "-device", in: a).contains { $0.hasPrefix(#"{"driver":"\#(driver)","id":"sound0","audiodev":"audio0""#) })
        }
    }

    @Test func sb16NeedsAnISABoard() throws {
        let c = try mapped("  arch: arm64\n  machine: {type: virt}\n  audio: {model: sb16}\n")
        let e = #expect(throws: VMConfigError.self) { try argv(c) }
        #expect(e?.problems.map(\.path) == ["audio.model"])
        #expect(VMConfigMapping.manifestPath(forConfigPath: "audio.model") == "spec.audio.model")
        #expect(VMConfigMapping.manifestPath(forConfigPath: "rng") == "spec.rng")
    }

    @Test func everyProblemIsListed() throws {
        let e = try VMConfigMapping.$firmwareDirectories.withValue([]) { try mappingError("""
          memory: {size: 1000.5MiB}
          firmware: {type: efi}
          disks:
            - {name: a, nbd: {unix: /run/n.sock, tls: true}}
        """) }
        #expect(e.fields == ["spec.memory.size", "spec.firmware.code", "spec.disks[0].nbd.tls"])
        #expect(e.description.split(separator: "\n").count == 4)
    }
}

/// `RTC.DriftFix.none` spelled without the optional-`none` ambiguity.
private enum DriftFixNone { static let value: RTC.DriftFix = .none }

// MARK: - Safety

@Suite("VMConfigMapping: safety")
struct MappingSafetyTests {
    /// Hostile but valid manifest values reach QEMU only inside JSON strings, `,,`-escaped, or as the verbatim
    /// argument of an option that does no option parsing (`-kernel`, `-initrd`, `-append`, `-pidfile`).
    @Test func hostileValuesStayInsideTheirValues() throws {
        let hostile = ",snapshot=on"
        let vm = try loadVM(manifest("""
          boot: {kernel: "/tmp/k\(hostile),x=y", cmdline: "console=ttyS0\(hostile),id=evil"}
          firmware: {type: efi, code: "/tmp/code\(hostile).fd", vars: "/tmp/vars\(hostile).fd"}
          memory: {size: 256MiB, backend: file, path: "/tmp/mem\(hostile)"}
          disks:
            - {name: a, file: {path: "/tmp/a\(hostile).img", format: raw}}
            - {name: b, nbd: {unix: "/tmp/n\(hostile).sock", export: "e\(hostile)"}}
            - {name: c, rbd: {pool: p, image: i, conf: "/tmp/c\(hostile).conf"}}
          cdroms:
            - {name: cd, path: "/tmp/cd\(hostile).iso"}
          networks:
            - {name: n1, stream: {unix: "/tmp/s\(hostile).sock"}}
            - {name: n2, vde: {sock: "/tmp/v\(hostile)"}}
            - {name: n3, tap: {script: "/tmp/up\(hostile)"}}
          display: {vnc: {listen: "unix:/tmp/vnc\(hostile)"}}
          serial: {log: true}
        """))
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: "/tmp/qc\(hostile)")
        let args = try argv(c)
        var seen = 0
        for (i, a) in args.enumerated() where a.contains(hostile) {
            seen += 1
            let option = i > 0 ? args[i - 1] : ""
            if ["-kernel", "-initrd", "-append", "-pidfile"].contains(option) { continue }
            if a.hasPrefix("{") {
                let obj = try #require(try JSONSerialization.jsonObject(with: Data(a.utf8)) as? [String: Any], "\(a)")
                #expect(obj["snapshot"] == nil, "\(a)")
                #expect(allStrings(obj).contains { $0.contains(hostile) }, "\(a)")
            } else {
                #expect(a.contains(",,snapshot=on"), "\(option) \(a)")
                let keys = qemuOptsParts(a).map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }
                #expect(!keys.contains("snapshot"), "\(option) \(a)")
                #expect(!keys.contains("id") || option == "-chardev", "\(option) \(a)")
            }
        }
        // kernel, append, efi code+vars, memory, 3 disks, cdrom, 3 NICs, VNC, console chardev, QMP chardev.
        #expect(seen >= 14, "\(args)")
        #expect(values(of: "-append", in: args) == ["console=ttyS0\(hostile),id=evil"])
    }

    /// A secret's value never reaches argv: only the reference is mapped.
    @Test func canarySecretNeverInArgv() throws {
        let dir = try TempDir("map")
        defer { dir.remove() }
        let canary = "CANARY-\(UUID().uuidString)"
        try canary.write(toFile: dir.file("pw"), atomically: true, encoding: .utf8)
        #expect(chmod(dir.file("pw"), 0o600) == 0)  // the one secret policy: no group or other bits
        let vm = try loadVM(manifest("""
          display:
            vnc: {passwordFrom: {file: \(dir.file("pw"))}}
            spice: {passwordFrom: {file: \(dir.file("pw"))}}
          disks:
            - {name: a, rbd: {pool: p, image: i, keyFrom: {file: \(dir.file("pw"))}}}
            - {name: b, iscsi: {portal: "10.0.0.1:3260", target: "iqn.2024-01.x:y", user: u, passwordFrom: {file: \(dir.file("pw"))}}}
        """))
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.display.vnc?.password == .file(dir.file("pw")))
        let cmd = try c.commandLine(launch(c))
        #expect(!cmd.arguments.joined(separator: "\u{0}").contains("CANARY"))
        #expect(!String(describing: c).contains("CANARY"))
        let encoded = try JSONEncoder().encode(c)
        #expect(!String(decoding: encoded, as: UTF8.self).contains("CANARY"))
        #expect(cmd.postStartActions.count == 2)
        #expect(cmd.secretFiles.count == 2)
        // The reference does resolve to the canary: the test would be vacuous otherwise.
        #expect(try cmd.postStartActions[0].secret.read() == canary)
    }

    @Test func nothingIsMappedToExtraArgs() throws {
        let vm = try loadVM(manifest("  boot: {kernel: /k, cmdline: \"-device evil\"}\n"))
        let c = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: socketDir)
        #expect(c.extraArgs.isEmpty)
        let args = try argv(c)
        #expect(!args.contains("evil"))
        #expect(values(of: "-device", in: args).allSatisfy { $0.hasPrefix("{") })
    }
}

// MARK: - Field paths

@Suite("VMConfigMapping: field paths")
struct MappingFieldPathTests {
    @Test(arguments: [
        ("name", "metadata.name"),
        ("uuid", "uuid"),
        ("qemuPath", "spec.emulator"),
        ("machine.hotplugPorts", "spec.machine.hotplugPorts"),
        ("cpu", "spec.cpu"),
        ("cpu.features[\"a b\"]", "spec.cpu.features"),
        ("memory.sizeMiB", "spec.memory.size"),
        ("memory.maxSizeMiB", "spec.memory.max"),
        ("memory.backend.file.path", "spec.memory.path"),
        ("boot.append", "spec.boot.cmdline"),
        ("disks[2].file.path", "spec.disks[2].file.path"),
        ("disks[0].nbd.server.unix.path", "spec.disks[0].nbd.unix"),
        ("disks[0].nbd.host", "spec.disks[0].nbd.host"),
        ("disks[1].rbd.key.env", "spec.disks[1].rbd.keyFrom.env"),
        ("disks[1].iscsi.password.file", "spec.disks[1].iscsi.passwordFrom.file"),
        ("disks[3].throttle.bpsTotal", "spec.disks[3].throttle.bps"),
        ("disks[3].throttle.iopsTotalMax", "spec.disks[3].throttle.iopsMax"),
        ("disks[3].throttle.bpsReadMaxLength", "spec.disks[3].throttle.burstLength"),
        ("disks[3].throttle.bpsRead", "spec.disks[3].throttle.bpsRead"),
        ("networks[0].user.hostForwards[2].hostPort", "spec.networks[0].user.hostfwd[2]"),
        ("networks[1].bridge.bridge", "spec.networks[1].bridge.name"),
        ("networks[1].socket.multicast.port", "spec.networks[1].socket.mcast"),
        ("networks[1].socket.listen.host", "spec.networks[1].socket.listen"),
        ("networks[2].stream.address.unix.path", "spec.networks[2].stream.unix"),
        ("networks[2].stream.address.inet.port", "spec.networks[2].stream.inet"),
        ("networks[3].vde.socket", "spec.networks[3].vde.sock"),
        ("display.vnc.listen.tcp.display", "spec.display.vnc.listen"),
        ("display.vnc.password.env", "spec.display.vnc.passwordFrom.env"),
        ("display.spice.listen.unix.path", "spec.display.spice.listen"),
        ("serials[0].logFile", "spec.serial"),
        ("usb.devices[1].host.vendorID", "spec.usb.devices[1].vendor"),
        ("usb.devices[1].hostAddress.address", "spec.usb.devices[1].address"),
        ("launch.runtimeDirectory", "launch.runtimeDirectory"),
    ])
    func translation(_ config: String, _ manifest: String) {
        #expect(VMConfigMapping.manifestPath(forConfigPath: config) == manifest)
    }
}

// MARK: - Real QEMU

/// Whether the real QEMU and the test guest (`make guest`, or `$QEMUCTL_GUEST_DIR`) are there.
private let guestAvailable = FileManager.default.isExecutableFile(atPath: Fixtures.qemu)
    && FileManager.default.fileExists(atPath: Fixtures.guestKernel)
    && FileManager.default.fileExists(atPath: Fixtures.guestInitrd)

@Suite("VMConfigMapping: real QEMU", .enabled(if: guestAvailable, "needs qemu-system-x86_64 and the test guest"), .offPool)
struct MappingQEMUTests {
    /// `examples/hello.yaml`, mapped, boots the test guest under TCG; its console is on a Unix socket in the
    /// runtime directory and logged to `serial.log` there (`spec.serial.log: true`).
    @Test(.timeLimit(.minutes(3)))
    func helloBootsWithItsConsoleLoggedAndOnASocket() async throws {
        let dir = try TempDir("map")
        defer { dir.remove() }
        var vm = try #require(ManifestLoader().load(paths: [repoRoot + "/examples/hello.yaml"]).virtualMachines.first)
        vm.spec.boot.kernel = Fixtures.guestKernel
        vm.spec.boot.initrd = Fixtures.guestInitrd
        let uuid = UUID().uuidString.lowercased()
        let config = try VMConfigMapping.config(for: vm, uuid: uuid, socketDirectory: dir.path)
        let layout = RuntimeLayout(name: vm.name, socketDirectory: dir.path)
        let instance = try await Instance.start(
            config, options: StartOptions(socketDirectory: dir.path, accelerator: AcceleratorChoice(accelerator: .tcg)))
        var log = ""
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            log = (try? String(contentsOfFile: layout.serialLog, encoding: .utf8)) ?? ""
            if log.contains(Fixtures.guestReadyMarker) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let socketType = try? FileManager.default.attributesOfItem(
            atPath: layout.runtimeDirectory + "/" + VMConfigMapping.consoleSocketName)[.type] as? FileAttributeType
        _ = try? await instance.stop(timeout: .seconds(20))
        #expect(log.contains(Fixtures.guestReadyMarker), "serial.log: \(log.suffix(2000))")
        #expect(socketType == .typeSocket)
    }
}
