@testable import QemuCtl

/// Shorthands for the golden configurations: paths inside ``goldenDir``.
private func g(_ p: String) -> String { goldenDir + "/" + p }

/// A q35 config without hot-plug ports, so each golden shows only its feature.
private func vm(_ name: String, _ edit: (inout VMConfig) -> Void = { _ in }) -> VMConfig {
    var c = VMConfig(name: name, arch: .amd64, machine: Machine(hotplugPorts: 0))
    edit(&c)
    return c
}

/// A file path with every character that could break an option: comma option injection, `=`, a double quote,
/// a single quote, a backslash, a newline, a leading-dash word and `%`.
let hostilePath = goldenDir + "/hostile/x,snapshot=on,readonly=on=\"q'\\\n -drive %d.img"

extension GoldenCase {
    static let all: [GoldenCase] = [
        GoldenCase(name: "minimal", config: vm("minimal"), expected: #"""
            -name guest=minimal
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "simple-config",
            config: {
                var c = VMConfig(name: "simple", memoryMiB: 2048, cpus: 4,
                                 drives: [Disk(name: "root", file: g("root.qcow2"), format: .qcow2)],
                                 nics: [Network(name: "net0", mac: "52:54:00:aa:bb:01", backend: .user(UserNetwork()))],
                                 vnc: VNC(seedDisplay: "unix:" + g("run/vnc.sock")), arch: .amd64)
                c.machine.hotplugPorts = 0
                return c
            }(),
            expected: #"""
            -name guest=simple
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=4
            -m size=2048M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-root","filename":"/tmp/qemuctl-golden/root.qcow2"}
            -blockdev {"driver":"qcow2","node-name":"fmt-root","file":"file-root","backing":null}
            -device {"driver":"virtio-blk-pci","id":"disk-root","drive":"fmt-root","bus":"pcie.0","addr":"0x1"}
            -netdev {"type":"user","id":"netdev-net0"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","mac":"52:54:00:aa:bb:01","bus":"pcie.0","addr":"0x2"}
            -vnc vnc=unix:/tmp/qemuctl-golden/run/vnc.sock
            """#, devices: ["disk-root", "net-net0"], nodes: ["file-root", "fmt-root"]),
        GoldenCase(
            name: "i440fx",
            config: vm("pc") {
                $0.machine.type = "pc"
                $0.disks = [Disk(name: "root", file: g("root.qcow2"), format: .qcow2)]
                $0.networks = [Network(name: "net0", backend: .user(UserNetwork()))]
            },
            expected: #"""
            -name guest=pc
            -no-user-config
            -nodefaults
            -machine type=pc
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-root","filename":"/tmp/qemuctl-golden/root.qcow2"}
            -blockdev {"driver":"qcow2","node-name":"fmt-root","file":"file-root","backing":null}
            -device {"driver":"virtio-blk-pci","id":"disk-root","drive":"fmt-root","bus":"pci.0","addr":"0x2"}
            -netdev {"type":"user","id":"netdev-net0"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pci.0","addr":"0x3"}
            """#, devices: ["disk-root", "net-net0"]),
        GoldenCase(
            name: "machine-options",
            config: vm("machine") { $0.machine.usb = false; $0.machine.dumpGuestCore = false; $0.uuid = "8e0a4bf8-0000-4000-8000-000000000001" },
            expected: #"""
            -name guest=machine
            -uuid 8e0a4bf8-0000-4000-8000-000000000001
            -no-user-config
            -nodefaults
            -machine type=q35,usb=off,dump-guest-core=off
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "cpu-topology-features",
            config: vm("cpu") {
                $0.cpu = CPU(model: "qemu64", features: ["x2apic": false, "sse4.2": true], count: 2, maxCount: 4,
                             sockets: 1, cores: 2, threads: 2)
            },
            expected: #"""
            -name guest=cpu
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -cpu qemu64,sse4.2=on,x2apic=off
            -smp cpus=2,maxcpus=4,sockets=1,cores=2,threads=2
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "memory-hotplug",
            config: vm("memhp") { $0.memory = Memory(sizeMiB: 256, maxSizeMiB: 1024, slots: 2) },
            expected: #"""
            -name guest=memhp
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=256M,slots=2,maxmem=1024M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "memory-backend-memfd",
            config: vm("memfd") { $0.memory = Memory(sizeMiB: 128, backend: .memfd, share: true, lock: false) },
            expected: #"""
            -name guest=memfd
            -no-user-config
            -nodefaults
            -machine type=q35,memory-backend=ram0
            -accel tcg
            -smp cpus=1
            -m size=128M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -object {"qom-type":"memory-backend-memfd","id":"ram0","size":134217728,"share":true}
            """#),
        GoldenCase(
            name: "memory-backend-file",
            config: vm("memfile") { $0.memory = Memory(sizeMiB: 64, backend: .file(path: g("run/guest-ram")), share: true, prealloc: true) },
            expected: #"""
            -name guest=memfile
            -no-user-config
            -nodefaults
            -machine type=q35,memory-backend=ram0
            -accel tcg
            -smp cpus=1
            -m size=64M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -object {"qom-type":"memory-backend-file","id":"ram0","size":67108864,"mem-path":"/tmp/qemuctl-golden/run/guest-ram","share":true,"prealloc":true}
            """#),
        GoldenCase(
            name: "memory-lock",
            config: vm("memlock") { $0.memory = Memory(sizeMiB: 64, lock: true) },
            expected: #"""
            -name guest=memlock
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=64M
            -overcommit mem-lock=on
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "efi-pflash",
            config: vm("efi") { $0.firmware = Firmware(code: g("efi-code.fd"), vars: g("efi-vars.fd")) },
            expected: #"""
            -name guest=efi
            -no-user-config
            -nodefaults
            -machine type=q35,pflash0=efi-code,pflash1=efi-vars
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"efi-code-file","filename":"/tmp/qemuctl-golden/efi-code.fd","read-only":true}
            -blockdev {"driver":"raw","node-name":"efi-code","file":"efi-code-file","read-only":true}
            -blockdev {"driver":"file","node-name":"efi-vars-file","filename":"/tmp/qemuctl-golden/efi-vars.fd"}
            -blockdev {"driver":"raw","node-name":"efi-vars","file":"efi-vars-file"}
            """#, nodes: ["efi-code", "efi-vars"]),
        GoldenCase(
            name: "boot-kernel",
            config: vm("boot") {
                $0.boot = Boot(order: "cdn", menu: true, strict: false, kernel: g("vmlinuz"), initrd: g("initrd.img"),
                               append: "console=ttyS0,115200 quiet root=/dev/vda1")
            },
            expected: #"""
            -name guest=boot
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -boot order=cdn,menu=on,strict=off
            -kernel /tmp/qemuctl-golden/vmlinuz
            -initrd /tmp/qemuctl-golden/initrd.img
            -append console=ttyS0,115200 quiet root=/dev/vda1
            """#),
        GoldenCase(
            name: "disk-file-options",
            config: vm("diskopts") {
                $0.disks = [Disk(name: "root", backend: .file(FileDisk(path: g("root.qcow2"), format: .qcow2)),
                                 cache: DiskCache.none, discard: true, serial: "ROOT-0001", bootIndex: 1)]
            },
            expected: #"""
            -name guest=diskopts
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-root","filename":"/tmp/qemuctl-golden/root.qcow2","cache":{"direct":true,"no-flush":false},"discard":"unmap"}
            -blockdev {"driver":"qcow2","node-name":"fmt-root","file":"file-root","backing":null,"cache":{"direct":true,"no-flush":false},"discard":"unmap"}
            -device {"driver":"virtio-blk-pci","id":"disk-root","drive":"fmt-root","serial":"ROOT-0001","bootindex":1,"write-cache":"on","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["disk-root"], nodes: ["file-root", "fmt-root"]),
        GoldenCase(
            name: "disk-interfaces",
            config: vm("ifaces") {
                $0.disks = [
                    Disk(name: "vd", file: g("raw1.img"), format: .raw),
                    Disk(name: "sd", file: g("raw2.img"), format: .raw, interface: .scsi, cache: .writethrough),
                    Disk(name: "hd", file: g("raw3.img"), format: .raw, interface: .ide),
                    Disk(name: "nv", file: g("raw4.img"), format: .raw, interface: .nvme),
                    Disk(name: "nv2", file: g("raw5.img"), format: .raw, interface: .nvme, serial: "NVME-SERIAL-2"),
                ]
            },
            expected: #"""
            -name guest=ifaces
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"virtio-scsi-pci","id":"scsi0","bus":"pcie.0","addr":"0x1"}
            -blockdev {"driver":"file","node-name":"file-vd","filename":"/tmp/qemuctl-golden/raw1.img"}
            -blockdev {"driver":"raw","node-name":"fmt-vd","file":"file-vd"}
            -device {"driver":"virtio-blk-pci","id":"disk-vd","drive":"fmt-vd","bus":"pcie.0","addr":"0x2"}
            -blockdev {"driver":"file","node-name":"file-sd","filename":"/tmp/qemuctl-golden/raw2.img","cache":{"direct":false,"no-flush":false}}
            -blockdev {"driver":"raw","node-name":"fmt-sd","file":"file-sd","cache":{"direct":false,"no-flush":false}}
            -device {"driver":"scsi-hd","id":"disk-sd","drive":"fmt-sd","bus":"scsi0.0","scsi-id":0,"lun":0,"write-cache":"off"}
            -blockdev {"driver":"file","node-name":"file-hd","filename":"/tmp/qemuctl-golden/raw3.img"}
            -blockdev {"driver":"raw","node-name":"fmt-hd","file":"file-hd"}
            -device {"driver":"ide-hd","id":"disk-hd","drive":"fmt-hd","bus":"ide.0","unit":0}
            -blockdev {"driver":"file","node-name":"file-nv","filename":"/tmp/qemuctl-golden/raw4.img"}
            -blockdev {"driver":"raw","node-name":"fmt-nv","file":"file-nv"}
            -device {"driver":"nvme","id":"disk-nv","drive":"fmt-nv","serial":"nv","bus":"pcie.0","addr":"0x3"}
            -blockdev {"driver":"file","node-name":"file-nv2","filename":"/tmp/qemuctl-golden/raw5.img"}
            -blockdev {"driver":"raw","node-name":"fmt-nv2","file":"file-nv2"}
            -device {"driver":"nvme","id":"disk-nv2","drive":"fmt-nv2","serial":"NVME-SERIAL-2","bus":"pcie.0","addr":"0x4"}
            """#, devices: ["scsi0", "disk-vd", "disk-sd", "disk-hd", "disk-nv", "disk-nv2"]),
        GoldenCase(
            name: "disk-read-only",
            config: vm("ro") {
                $0.disks = [
                    Disk(name: "base", file: g("raw1.img"), format: .raw, readOnly: true),
                    Disk(name: "auto", backend: .file(FileDisk(path: g("raw2.img"), format: .raw, autoReadOnly: true))),
                ]
            },
            expected: #"""
            -name guest=ro
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-base","filename":"/tmp/qemuctl-golden/raw1.img","read-only":true}
            -blockdev {"driver":"raw","node-name":"fmt-base","file":"file-base","read-only":true}
            -device {"driver":"virtio-blk-pci","id":"disk-base","drive":"fmt-base","bus":"pcie.0","addr":"0x1"}
            -blockdev {"driver":"file","node-name":"file-auto","filename":"/tmp/qemuctl-golden/raw2.img","auto-read-only":true}
            -blockdev {"driver":"raw","node-name":"fmt-auto","file":"file-auto"}
            -device {"driver":"virtio-blk-pci","id":"disk-auto","drive":"fmt-auto","bus":"pcie.0","addr":"0x2"}
            """#, devices: ["disk-base", "disk-auto"]),
        GoldenCase(
            name: "disk-throttle",
            config: vm("throttle") {
                $0.disks = [
                    Disk(name: "a", backend: .file(FileDisk(path: g("raw1.img"), format: .raw)),
                         throttle: Throttle(bpsTotal: 104_857_600, iopsTotal: 1000)),
                    Disk(name: "b", backend: .file(FileDisk(path: g("raw2.img"), format: .raw)),
                         throttle: Throttle(bpsRead: 1_000_000, bpsWrite: 2_000_000, iopsTotal: 100, iopsTotalMax: 200,
                                            iopsTotalMaxLength: 10, iopsSize: 4096)),
                ]
            },
            expected: #"""
            -name guest=throttle
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-a","filename":"/tmp/qemuctl-golden/raw1.img"}
            -blockdev {"driver":"raw","node-name":"fmt-a","file":"file-a"}
            -object {"qom-type":"throttle-group","id":"tg-a","limits":{"bps-total":104857600,"iops-total":1000}}
            -blockdev {"driver":"throttle","node-name":"thr-a","throttle-group":"tg-a","file":"fmt-a"}
            -device {"driver":"virtio-blk-pci","id":"disk-a","drive":"thr-a","bus":"pcie.0","addr":"0x1"}
            -blockdev {"driver":"file","node-name":"file-b","filename":"/tmp/qemuctl-golden/raw2.img"}
            -blockdev {"driver":"raw","node-name":"fmt-b","file":"file-b"}
            -object {"qom-type":"throttle-group","id":"tg-b","limits":{"bps-read":1000000,"bps-write":2000000,"iops-total":100,"iops-total-max":200,"iops-total-max-length":10,"iops-size":4096}}
            -blockdev {"driver":"throttle","node-name":"thr-b","throttle-group":"tg-b","file":"fmt-b"}
            -device {"driver":"virtio-blk-pci","id":"disk-b","drive":"thr-b","bus":"pcie.0","addr":"0x2"}
            """#, devices: ["disk-a", "disk-b"], nodes: ["thr-a", "thr-b", "fmt-a", "fmt-b"]),
        GoldenCase(
            name: "disk-nbd-unix",
            config: vm("nbd") {
                $0.disks = [Disk(name: "data", backend: .nbd(NBDDisk(server: .unix(path: g("nbd.sock")), export: "data", format: .qcow2)))]
            },
            expected: #"""
            -name guest=nbd
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"nbd","node-name":"file-data","server":{"type":"unix","path":"/tmp/qemuctl-golden/nbd.sock"},"export":"data"}
            -blockdev {"driver":"qcow2","node-name":"fmt-data","file":"file-data","backing":null}
            -device {"driver":"virtio-blk-pci","id":"disk-data","drive":"fmt-data","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["disk-data"], nodes: ["file-data", "fmt-data"], fixtures: [.nbdServer]),
        GoldenCase(
            name: "disk-nbd-tcp-tls",
            config: vm("nbdtcp") {
                $0.disks = [Disk(name: "data", backend: .nbd(NBDDisk(server: .tcp(host: "127.0.0.1", port: 1), export: "exp", tlsCredsID: "tls0")))]
                $0.extraArgs = ["-object", "{\"qom-type\":\"tls-creds-psk\",\"id\":\"tls0\",\"endpoint\":\"client\",\"dir\":\"\(g("psk"))\"}"]
            },
            expected: #"""
            -name guest=nbdtcp
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"nbd","node-name":"file-data","server":{"type":"inet","host":"127.0.0.1","port":"1"},"export":"exp","tls-creds":"tls0"}
            -blockdev {"driver":"raw","node-name":"fmt-data","file":"file-data"}
            -device {"driver":"virtio-blk-pci","id":"disk-data","drive":"fmt-data","bus":"pcie.0","addr":"0x1"}
            -object {"qom-type":"tls-creds-psk","id":"tls0","endpoint":"client","dir":"/tmp/qemuctl-golden/psk"}
            """#, outcome: .fails(containing: "Failed to connect to '127.0.0.1:1'")),
        GoldenCase(
            name: "disk-rbd",
            config: vm("rbd") {
                $0.disks = [Disk(name: "ceph", backend: .rbd(RBDDisk(
                    pool: "rbd", image: "vm-disk", conf: g("ceph.conf"), user: "qemu", key: .value("AQBzZXNyZXQ="),
                    monitors: [.init(host: "127.0.0.1", port: 1)])))]
            },
            expected: #"""
            -name guest=rbd
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -object {"qom-type":"secret","id":"secret-ceph-key","file":"/tmp/qemuctl-golden/run/secret-ceph-key"}
            -blockdev {"driver":"rbd","node-name":"file-ceph","pool":"rbd","image":"vm-disk","conf":"/tmp/qemuctl-golden/ceph.conf","user":"qemu","key-secret":"secret-ceph-key","server":[{"host":"127.0.0.1","port":"1"}]}
            -blockdev {"driver":"raw","node-name":"fmt-ceph","file":"file-ceph"}
            -device {"driver":"virtio-blk-pci","id":"disk-ceph","drive":"fmt-ceph","bus":"pcie.0","addr":"0x1"}
            """#, outcome: .fails(containing: "error connecting")),
        GoldenCase(
            name: "disk-iscsi",
            config: vm("iscsi") {
                $0.disks = [Disk(name: "lun", backend: .iscsi(ISCSIDisk(
                    portal: "127.0.0.1:1", target: "iqn.2000-01.com.example:storage", lun: 0, user: "chap",
                    password: .value("s3cret"), initiator: "iqn.2024-01.io.qemuctl:iscsi")))]
            },
            expected: #"""
            -name guest=iscsi
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -object {"qom-type":"secret","id":"secret-lun-password","file":"/tmp/qemuctl-golden/run/secret-lun-password"}
            -blockdev {"driver":"iscsi","node-name":"file-lun","transport":"tcp","portal":"127.0.0.1:1","target":"iqn.2000-01.com.example:storage","lun":0,"user":"chap","password-secret":"secret-lun-password","initiator-name":"iqn.2024-01.io.qemuctl:iscsi"}
            -blockdev {"driver":"raw","node-name":"fmt-lun","file":"file-lun"}
            -device {"driver":"virtio-blk-pci","id":"disk-lun","drive":"fmt-lun","bus":"pcie.0","addr":"0x1"}
            """#, outcome: .fails(containing: "Failed to connect to LUN")),
        GoldenCase(
            name: "cdroms",
            config: vm("cd") {
                $0.cdroms = [CDROM(name: "install", path: g("cd.iso"), bootIndex: 1), CDROM(name: "empty", interface: .scsi)]
            },
            expected: #"""
            -name guest=cd
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"virtio-scsi-pci","id":"scsi0","bus":"pcie.0","addr":"0x1"}
            -blockdev {"driver":"file","node-name":"file-install","filename":"/tmp/qemuctl-golden/cd.iso","read-only":true}
            -blockdev {"driver":"raw","node-name":"fmt-install","file":"file-install","read-only":true}
            -device {"driver":"ide-cd","id":"cd-install","bus":"ide.0","unit":0,"drive":"fmt-install","bootindex":1}
            -device {"driver":"scsi-cd","id":"cd-empty","bus":"scsi0.0","scsi-id":0,"lun":0}
            """#, devices: ["cd-install", "cd-empty", "scsi0"], nodes: ["fmt-install"]),
        GoldenCase(
            name: "net-user",
            config: vm("user") {
                $0.networks = [Network(name: "net0", mac: "52:54:00:12:34:01", backend: .user(UserNetwork(
                    net: "10.7.0.0/24", host: "10.7.0.2", dns: "10.7.0.3", dhcpStart: "10.7.0.15", restrict: true,
                    hostForwards: [.tcp(hostAddress: "127.0.0.1", hostPort: 47022, guestPort: 22),
                                   HostForward(proto: .udp, hostPort: 47053, guestAddress: "10.7.0.15", guestPort: 53)])),
                    bootIndex: 2)]
            },
            expected: #"""
            -name guest=user
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"user","id":"netdev-net0","net":"10.7.0.0/24","host":"10.7.0.2","dns":"10.7.0.3","dhcpstart":"10.7.0.15","restrict":true,"hostfwd":[{"str":"tcp:127.0.0.1:47022-:22"},{"str":"udp::47053-10.7.0.15:53"}]}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","mac":"52:54:00:12:34:01","bootindex":2,"bus":"pcie.0","addr":"0x1"}
            """#, devices: ["net-net0"]),
        GoldenCase(
            name: "net-user-names",
            config: vm("usernames") {
                $0.networks = [Network(name: "net0", mac: "52:54:00:12:34:02", backend: .user(UserNetwork(
                    hostname: "guest1", domainName: "lab.example")))]
            },
            expected: #"""
            -name guest=usernames
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"user","id":"netdev-net0","hostname":"guest1","domainname":"lab.example"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","mac":"52:54:00:12:34:02","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["net-net0"]),
        GoldenCase(
            name: "net-tap",
            config: vm("tap") {
                $0.networks = [Network(name: "net0", backend: .tap(TapNetwork(ifname: "qctap0", queues: 2)))]
            },
            expected: #"""
            -name guest=tap
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"tap","id":"netdev-net0","ifname":"qctap0","script":"no","downscript":"no","queues":2}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","mq":true,"bus":"pcie.0","addr":"0x1"}
            """#, devices: ["net-net0"]),
        GoldenCase(
            name: "net-bridge",
            config: vm("bridge") { $0.networks = [Network(name: "net0", backend: .bridge(BridgeNetwork(bridge: "qcbr0")))] },
            expected: #"""
            -name guest=bridge
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"bridge","id":"netdev-net0","br":"qcbr0"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x1"}
            """#, outcome: .fails(containing: "bridge helper failed")),
        GoldenCase(
            name: "net-socket",
            config: vm("socket") {
                $0.networks = [Network(name: "net0", model: "e1000e", backend: .socket(SocketNetwork(.listen(host: "127.0.0.1", port: 47123))))]
            },
            expected: #"""
            -name guest=socket
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"socket","id":"netdev-net0","listen":"127.0.0.1:47123"}
            -device {"driver":"e1000e","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["net-net0"]),
        GoldenCase(
            name: "net-stream",
            config: vm("stream") {
                $0.networks = [
                    Network(name: "srv", backend: .stream(StreamNetwork(address: .unix(path: g("run/net.sock")), server: true))),
                    Network(name: "cli", backend: .stream(StreamNetwork(address: .inet(host: "127.0.0.1", port: 47124), server: false))),
                ]
            },
            expected: #"""
            -name guest=stream
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"stream","id":"netdev-srv","server":true,"addr":{"type":"unix","path":"/tmp/qemuctl-golden/run/net.sock"}}
            -device {"driver":"virtio-net-pci","id":"net-srv","netdev":"netdev-srv","bus":"pcie.0","addr":"0x1"}
            -netdev {"type":"stream","id":"netdev-cli","server":false,"addr":{"type":"inet","host":"127.0.0.1","port":"47124"}}
            -device {"driver":"virtio-net-pci","id":"net-cli","netdev":"netdev-cli","bus":"pcie.0","addr":"0x2"}
            """#, devices: ["net-srv", "net-cli"]),
        GoldenCase(
            name: "net-vde",
            config: vm("vde") { $0.networks = [Network(name: "net0", backend: .vde(VDENetwork(socket: g("vde"), port: 3)))] },
            expected: #"""
            -name guest=vde
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"vde","id":"netdev-net0","sock":"/tmp/qemuctl-golden/vde","port":3}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x1"}
            """#, outcome: .fails(containing: "Could not open vde")),
        GoldenCase(
            name: "display-vnc-spice-passwords",
            config: vm("display") {
                $0.display = Display(vnc: VNC(listen: .unix(path: g("run/vnc.sock")), password: .value("vncpw")),
                                     spice: SPICE(listen: .unix(path: g("run/spice.sock")), password: .file(g("spice.pw")),
                                                  imageCompression: .autoGLZ),
                                     video: .qxl)
            },
            expected: #"""
            -name guest=display
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"qxl-vga","id":"video0","bus":"pcie.0","addr":"0x1"}
            -vnc vnc=unix:/tmp/qemuctl-golden/run/vnc.sock,password=on
            -spice unix=on,addr=/tmp/qemuctl-golden/run/spice.sock,image-compression=auto_glz
            """#, devices: ["video0"]),
        GoldenCase(
            name: "display-vnc-none-spice-tcp",
            config: vm("display2") {
                $0.display = Display(vnc: VNC(listen: .none), spice: SPICE(listen: .tcp(host: "127.0.0.1", port: 47930), disableTicketing: true),
                                     video: .virtio)
            },
            expected: #"""
            -name guest=display2
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"virtio-vga","id":"video0","bus":"pcie.0","addr":"0x1"}
            -vnc vnc=none
            -spice port=47930,addr=127.0.0.1,disable-ticketing=on
            """#, devices: ["video0"]),
        GoldenCase(
            name: "serials",
            config: vm("serial") {
                $0.serials = [
                    Serial(name: "console", backend: .unix(path: g("run/console.sock"), server: true), logFile: g("run/console.log")),
                    Serial(name: "pty", backend: .pty),
                    Serial(name: "log", backend: .file(path: g("run/serial2.log"), append: true)),
                    Serial(name: "ring", backend: .ringbuf(size: 65536)),
                ]
            },
            expected: #"""
            -name guest=serial
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -chardev socket,id=serial-console,path=/tmp/qemuctl-golden/run/console.sock,server=on,wait=off,logfile=/tmp/qemuctl-golden/run/console.log
            -serial chardev:serial-console
            -chardev pty,id=serial-pty
            -serial chardev:serial-pty
            -chardev file,id=serial-log,path=/tmp/qemuctl-golden/run/serial2.log,append=on
            -serial chardev:serial-log
            -chardev ringbuf,id=serial-ring,size=65536
            -serial chardev:serial-ring
            """#, chardevs: ["serial-console", "serial-pty", "serial-log", "serial-ring"]),
        GoldenCase(
            name: "chardevs-virtio-serial-guest-agent",
            config: vm("channels") {
                $0.chardevs = [Chardev(id: "chan0", backend: .unix(path: g("run/chan0.sock"), server: true)),
                               Chardev(id: "sink", backend: .null),
                               Chardev(id: "tcpsrv", backend: .tcp(host: "127.0.0.1", port: 47125, server: true))]
                $0.virtioSerialPorts = [VirtioSerialPort(name: "org.example.channel.0", chardev: "chan0")]
                $0.guestAgent = true
            },
            expected: #"""
            -name guest=channels
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -chardev socket,id=chan0,path=/tmp/qemuctl-golden/run/chan0.sock,server=on,wait=off
            -chardev null,id=sink
            -chardev socket,id=tcpsrv,host=127.0.0.1,port=47125,server=on,wait=off
            -device {"driver":"virtio-serial-pci","id":"vser0","bus":"pcie.0","addr":"0x1"}
            -chardev socket,id=qga0,path=/tmp/qemuctl-golden/run/qga.sock,server=on,wait=off
            -device {"driver":"virtserialport","id":"qga0","bus":"vser0.0","chardev":"qga0","name":"org.qemu.guest_agent.0"}
            -device {"driver":"virtserialport","id":"vport0","bus":"vser0.0","chardev":"chan0","name":"org.example.channel.0"}
            """#, devices: ["vser0", "qga0", "vport0"], chardevs: ["qga0", "chan0", "sink", "tcpsrv"]),
        GoldenCase(
            name: "spice-agent-usb-tablet",
            config: vm("agent") {
                $0.display.spice = SPICE(listen: .unix(path: g("run/spice.sock")), disableTicketing: true)
                $0.spiceAgent = true
                $0.usbTablet = true
            },
            expected: #"""
            -name guest=agent
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -spice unix=on,addr=/tmp/qemuctl-golden/run/spice.sock,disable-ticketing=on
            -device {"driver":"virtio-serial-pci","id":"vser0","bus":"pcie.0","addr":"0x1"}
            -chardev spicevmc,id=vdagent0,name=vdagent
            -device {"driver":"virtserialport","id":"vdagent0","bus":"vser0.0","chardev":"vdagent0","name":"com.redhat.spice.0"}
            -device {"driver":"qemu-xhci","id":"usb","bus":"pcie.0","addr":"0x2"}
            -device {"driver":"usb-tablet","id":"usbtablet","bus":"usb.0"}
            """#, devices: ["vser0", "vdagent0", "usb", "usbtablet"], chardevs: ["vdagent0"]),
        GoldenCase(
            name: "usb-devices",
            config: vm("usb") {
                $0.usb = USB(controller: .ehci, devices: [.keyboard, .mouse, .host(vendorID: 0x1d6b, productID: 0xfffe)])
            },
            expected: #"""
            -name guest=usb
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"usb-ehci","id":"usb","bus":"pcie.0","addr":"0x1"}
            -device {"driver":"usb-kbd","id":"usb0","bus":"usb.0"}
            -device {"driver":"usb-mouse","id":"usb1","bus":"usb.0"}
            -device {"driver":"usb-host","vendorid":7531,"productid":65534,"id":"usb2","bus":"usb.0"}
            """#, devices: ["usb", "usb0", "usb1", "usb2"]),
        GoldenCase(
            name: "balloon-rtc",
            config: vm("balloon") {
                $0.balloon = Balloon(deflateOnOOM: true, freePageReporting: true)
                $0.rtc = RTC(base: .datetime("2024-01-02T03:04:05"), clock: .vm, driftFix: .slew)
            },
            expected: #"""
            -name guest=balloon
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -rtc base=2024-01-02T03:04:05,clock=vm,driftfix=slew
            -device {"driver":"virtio-balloon-pci","id":"balloon0","deflate-on-oom":true,"free-page-reporting":true,"bus":"pcie.0","addr":"0x1"}
            """#, devices: ["balloon0"]),
        GoldenCase(
            name: "rng",
            config: vm("rng") {
                $0.balloon = Balloon()
                $0.rng = RNG()
            },
            expected: #"""
            -name guest=rng
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"virtio-balloon-pci","id":"balloon0","bus":"pcie.0","addr":"0x1"}
            -object {"qom-type":"rng-random","id":"rng0","filename":"/dev/urandom"}
            -device {"driver":"virtio-rng-pci","id":"rng0-dev","rng":"rng0","bus":"pcie.0","addr":"0x2"}
            """#, devices: ["balloon0", "rng0-dev"]),
        GoldenCase(
            name: "audio-hda-wav",
            config: vm("audio") {
                $0.rng = RNG()
                $0.audio = Audio(backend: .wav, model: .hda)
            },
            expected: #"""
            -name guest=audio
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -object {"qom-type":"rng-random","id":"rng0","filename":"/dev/urandom"}
            -device {"driver":"virtio-rng-pci","id":"rng0-dev","rng":"rng0","bus":"pcie.0","addr":"0x1"}
            -audiodev {"driver":"wav","id":"audio0","path":"/tmp/qemuctl-golden/run/audio0.wav"}
            -device {"driver":"intel-hda","id":"sound0","bus":"pcie.0","addr":"0x2"}
            -device {"driver":"hda-duplex","id":"sound0-codec","bus":"sound0.0","audiodev":"audio0"}
            """#, devices: ["rng0-dev", "sound0", "sound0-codec"]),
        GoldenCase(
            name: "audio-ac97-spice",
            config: vm("audio2") {
                $0.display.spice = SPICE(listen: .unix(path: g("run/spice.sock")), disableTicketing: true)
                $0.audio = Audio(backend: .spice, model: .ac97)
            },
            expected: #"""
            -name guest=audio2
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -spice unix=on,addr=/tmp/qemuctl-golden/run/spice.sock,disable-ticketing=on
            -audiodev {"driver":"spice","id":"audio0"}
            -device {"driver":"AC97","id":"sound0","audiodev":"audio0","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["sound0"]),
        GoldenCase(
            name: "audio-sb16-pc",
            config: vm("audio3") {
                $0.machine.type = "pc"
                $0.audio = Audio(backend: .none, model: .sb16)
            },
            expected: #"""
            -name guest=audio3
            -no-user-config
            -nodefaults
            -machine type=pc
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -audiodev {"driver":"none","id":"audio0"}
            -device {"driver":"sb16","id":"sound0","audiodev":"audio0"}
            """#, devices: ["sound0"]),
        GoldenCase(
            name: "hotplug-ports",
            config: {
                var c = VMConfig(name: "hotplug", arch: .amd64)
                c.networks = [Network(name: "net0", backend: .user(UserNetwork()))]
                return c
            }(),
            expected: #"""
            -name guest=hotplug
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -netdev {"type":"user","id":"netdev-net0"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x1"}
            -device {"driver":"pcie-root-port","id":"hotplug0","chassis":1,"bus":"pcie.0","addr":"0x1e"}
            -device {"driver":"pcie-root-port","id":"hotplug1","chassis":2,"bus":"pcie.0","addr":"0x1d"}
            -device {"driver":"pcie-root-port","id":"hotplug2","chassis":3,"bus":"pcie.0","addr":"0x1c"}
            -device {"driver":"pcie-root-port","id":"hotplug3","chassis":4,"bus":"pcie.0","addr":"0x1b"}
            """#, devices: ["net-net0", "hotplug0", "hotplug1", "hotplug2", "hotplug3"]),
        GoldenCase(
            name: "fixed-pci-slots",
            config: vm("slots") {
                $0.disks = [Disk(name: "root", backend: .file(FileDisk(path: g("raw1.img"), format: .raw)), pciSlot: 0x10)]
                $0.networks = [Network(name: "net0", backend: .user(UserNetwork()), pciSlot: 0x03),
                               Network(name: "net1", backend: .user(UserNetwork()))]
            },
            expected: #"""
            -name guest=slots
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-root","filename":"/tmp/qemuctl-golden/raw1.img"}
            -blockdev {"driver":"raw","node-name":"fmt-root","file":"file-root"}
            -device {"driver":"virtio-blk-pci","id":"disk-root","drive":"fmt-root","bus":"pcie.0","addr":"0x10"}
            -netdev {"type":"user","id":"netdev-net0"}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x3"}
            -netdev {"type":"user","id":"netdev-net1"}
            -device {"driver":"virtio-net-pci","id":"net-net1","netdev":"netdev-net1","bus":"pcie.0","addr":"0x1"}
            """#, devices: ["disk-root", "net-net0", "net-net1"]),
        GoldenCase(
            name: "defaults-on",
            config: vm("defaults") {
                $0.noDefaults = false
                $0.disks = [Disk(name: "root", file: g("raw1.img"), format: .raw)]
            },
            expected: #"""
            -name guest=defaults
            -no-user-config
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -blockdev {"driver":"file","node-name":"file-root","filename":"/tmp/qemuctl-golden/raw1.img"}
            -blockdev {"driver":"raw","node-name":"fmt-root","file":"file-root"}
            -device {"driver":"virtio-blk-pci","id":"disk-root","drive":"fmt-root","bus":"pcie.0","addr":"0x3"}
            """#, devices: ["disk-root"]),
        GoldenCase(
            name: "launch-daemonize-pidfile",
            config: vm("daemon"),
            launch: LaunchOptions(qmpSocketPath: g("run/qmp.sock"), runtimeDirectory: g("run"), pidFile: g("run/qemu.pid"),
                                  daemonize: true, startPaused: false, accelerator: AcceleratorChoice(accelerator: .tcg)),
            expected: #"""
            -name guest=daemon
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -pidfile /tmp/qemuctl-golden/run/qemu.pid
            -daemonize
            """#),
        GoldenCase(
            name: "follower-monitor",
            config: vm("follow"),
            launch: LaunchOptions(qmpSocketPath: g("run/qmp.sock"), runtimeDirectory: g("run"),
                                  accelerator: AcceleratorChoice(accelerator: .tcg), followerSocketPath: g("run/events.sock")),
            expected: #"""
            -name guest=follow
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -chardev socket,id=qmp-events,path=/tmp/qemuctl-golden/run/events.sock,server=on,wait=off
            -mon chardev=qmp-events,mode=control
            -S
            """#, chardevs: ["qmp-events"]),
        GoldenCase(
            name: "probed-cpu",
            config: vm("probed") { $0.machine.accel = .auto; $0.cpu.features = ["vmx": false] },
            launch: LaunchOptions(qmpSocketPath: g("run/qmp.sock"), runtimeDirectory: g("run"),
                                  accelerator: AcceleratorChoice(accelerator: .tcg, cpuModel: "qemu64", cpuFeatures: ["x2apic": false])),
            expected: #"""
            -name guest=probed
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -cpu qemu64,vmx=off,x2apic=off
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            """#),
        GoldenCase(
            name: "extra-args",
            config: vm("extra") { $0.extraArgs = ["-device", "{\"driver\":\"pvpanic\",\"id\":\"panic0\"}"] },
            expected: #"""
            -name guest=extra
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -device {"driver":"pvpanic","id":"panic0"}
            """#, devices: ["panic0"]),
        GoldenCase(
            name: "hostile-values",
            config: vm("hostile") {
                $0.disks = [Disk(name: "evil", file: hostilePath, format: .raw, serial: "a,b=c\"d")]
                $0.serials = [Serial(name: "log", backend: .file(path: goldenDir + "/hostile/ser,mux=on,path=x.log", append: false),
                                     logFile: goldenDir + "/hostile/log,append=on")]
                $0.display.vnc = VNC(listen: .unix(path: goldenDir + "/hostile/vnc,password=off,x=y.sock"))
                $0.boot = Boot(kernel: g("vmlinuz"), append: "a,b -drive file=/etc/shadow \"x\"")
                $0.networks = [Network(name: "net0", backend: .stream(StreamNetwork(address: .unix(path: goldenDir + "/hostile/net\",\"server\":false,\"x\":\"y"), server: true)))]
            },
            expected: #"""
            -name guest=hostile
            -no-user-config
            -nodefaults
            -machine type=q35
            -accel tcg
            -smp cpus=1
            -m size=512M
            -display none
            -chardev socket,id=qmp,path=/tmp/qemuctl-golden/run/qmp.sock,server=on,wait=off
            -mon chardev=qmp,mode=control
            -S
            -kernel /tmp/qemuctl-golden/vmlinuz
            -append a,b -drive file=/etc/shadow "x"
            -blockdev {"driver":"file","node-name":"file-evil","filename":"/tmp/qemuctl-golden/hostile/x,snapshot=on,readonly=on=\"q'\\\n -drive %d.img"}
            -blockdev {"driver":"raw","node-name":"fmt-evil","file":"file-evil"}
            -device {"driver":"virtio-blk-pci","id":"disk-evil","drive":"fmt-evil","serial":"a,b=c\"d","bus":"pcie.0","addr":"0x1"}
            -netdev {"type":"stream","id":"netdev-net0","server":true,"addr":{"type":"unix","path":"/tmp/qemuctl-golden/hostile/net\",\"server\":false,\"x\":\"y"}}
            -device {"driver":"virtio-net-pci","id":"net-net0","netdev":"netdev-net0","bus":"pcie.0","addr":"0x2"}
            -vnc vnc=unix:/tmp/qemuctl-golden/hostile/vnc,,password=off,,x=y.sock
            -chardev file,id=serial-log,path=/tmp/qemuctl-golden/hostile/ser,,mux=on,,path=x.log,logfile=/tmp/qemuctl-golden/hostile/log,,append=on
            -serial chardev:serial-log
            """#, devices: ["disk-evil", "net-net0"], nodes: ["file-evil"], chardevs: ["serial-log"]),
    ]
}
