import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// The Debian cloud guest (`make cloud-guest`: `$QEMUCTL_CLOUD_GUEST_DIR/current`, default `.cache/cloud-guest/current`).
enum CloudGuest {
    static let dir: String = {
        let base = ProcessInfo.processInfo.environment["QEMUCTL_CLOUD_GUEST_DIR"] ?? (Fixtures.repoRoot + "/.cache/cloud-guest")
        return base + "/current"
    }()
    static var disk: String { dir + "/disk.qcow2" }
}

/// Runs `ssh` to the guest with `key`; returns status and output.
func sshToGuest(key: String, port: Int, _ command: String) throws -> (status: Int32, out: String, err: String) {
    try runCommand("/usr/bin/ssh", ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                                 "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "-i", key, "-p", String(port),
                                 "debian@127.0.0.1", command])
}

/// One booted cloud guest shared by every check: an overlay of the cached base image, a NoCloud seed
/// with a fresh ssh key, user networking with `restrict=on` and one host forward to port 22, the
/// guest agent channel, one of two possible vCPUs.
@Suite(.serialized, .timeLimit(.minutes(20)), .offPool) struct CloudGuestTests {
    @Test func anOverlayOfTheBaseBootsWithItsSeedAndTheAgentConfirmsItsState() async throws {
        let base = CloudGuest.disk
        guard FileManager.default.fileExists(atPath: base) else {
            Issue.record("the cloud guest is missing at \(CloudGuest.dir): run `make cloud-guest` (scripts/make-cloud-guest.sh)")
            return
        }
        let baseBefore = try FileManager.default.attributesOfItem(atPath: base)
        let work = try TempDir("cloud")
        defer { work.remove() }

        // The overlay: a qcow2 whose backing file is the base, its format declared.
        let overlay = work.file("root.qcow2")
        let made = try runCommand("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay, "4G"])
        #expect(made.status == 0, "\(made.err)")
        let info = try runCommand("/usr/bin/qemu-img", ["info", "--output=json", overlay])
        #expect(info.out.contains("\"backing-filename\": \"\(base)\""), "\(info.out)")

        // A fresh key, and a seed carrying it merged into user-data of our own.
        let key = work.file("id_ed25519")
        #expect(try runCommand("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cloud-test", "-f", key]).status == 0)
        let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let name = "cloudvm-\(Int.random(in: 100...999))"
        let seed = NoCloudSeed(instanceID: "\(name)-1", hostname: name,
                               userData: "#cloud-config\nwrite_files:\n  - path: /etc/qemuctl-test\n    content: \"from user-data\\n\"\n",
                               sshAuthorizedKeys: [publicKey])
        try seed.writeISO(to: work.file("cidata.iso"))

        let port = Int.random(in: 30000..<60000)
        let forward = HostForward(proto: .tcp, hostAddress: "127.0.0.1", hostPort: port, guestPort: 22)
        let cmdline = try String(contentsOfFile: CloudGuest.dir + "/cmdline", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let agentSocket = work.file("qga.sock")
        let started = ContinuousClock.now
        let qemu = try QEMUProcess(args: [
            "-name", name, "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1,maxcpus=2", "-m", "1024",
            "-kernel", CloudGuest.dir + "/vmlinuz", "-initrd", CloudGuest.dir + "/initrd.img", "-append", cmdline,
            "-blockdev", #"{"driver":"file","node-name":"base-file","filename":"\#(base)","read-only":true}"#,
            "-blockdev", #"{"driver":"qcow2","node-name":"base","file":"base-file","read-only":true}"#,
            "-blockdev", #"{"driver":"file","node-name":"root-file","filename":"\#(overlay)"}"#,
            "-blockdev", #"{"driver":"qcow2","node-name":"root","file":"root-file","backing":"base"}"#,
            "-device", "virtio-blk-pci,drive=root,id=disk-root",
            "-blockdev", #"{"driver":"file","node-name":"seed-file","filename":"\#(work.file("cidata.iso"))","read-only":true}"#,
            "-blockdev", #"{"driver":"raw","node-name":"seed","file":"seed-file","read-only":true}"#,
            "-device", "virtio-blk-pci,drive=seed,id=disk-seed",
            "-netdev", "user,id=n0,restrict=on,hostfwd=\(forward.qemuString)",
            "-device", "virtio-net-pci,netdev=n0,id=nic0",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=qga0,path=\(agentSocket),server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
        ], paused: false, serial: true)
        defer { qemu.kill() }
        let target = ReadinessTarget(guestAgentSocket: agentSocket, serialLog: qemu.serialLog, hostForwards: [forward])

        // Ready by the agent, then by ssh's port.
        let toAgent = try await ReadinessCheck.wait(for: .guestAgent, target: target, timeout: .seconds(900))
        let toSSH = try await ReadinessCheck.wait(for: .tcpPort(22), target: target, timeout: .seconds(300))
        print("cloud guest: agent answered \(toAgent) after start; port 22 \(ContinuousClock.now - started) after start")

        // ssh with the seed's key: the hostname is the VM's name and the user-data part ran too.
        var login = try sshToGuest(key: key, port: port, "hostname; cat /etc/qemuctl-test")
        for _ in 0..<10 where login.status == 255 {  // sshd may still be starting
            try await Task.sleep(for: .seconds(3))
            login = try sshToGuest(key: key, port: port, "hostname; cat /etc/qemuctl-test")
        }
        print("cloud guest: ssh login \(ContinuousClock.now - started) after start")
        #expect(login.status == 0, "\(login.err)")
        #expect(login.out == "\(name)\nfrom user-data\n", "\(login.out)")
        // Another key is refused: the seed's key is what let us in.
        let stranger = work.file("stranger")
        #expect(try runCommand("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger]).status == 0)
        let refused = try sshToGuest(key: stranger, port: port, "hostname")
        #expect(refused.status == 255)
        #expect(refused.err.contains("Permission denied"), "\(refused.err)")

        // The agent: OS and addresses.
        try await GuestAgent.withConnection(socketPath: agentSocket) { agent in
            let os = try await agent.osInfo()
            #expect(os.id == "debian")
            #expect(os.versionID == "12")
            let nics = try await agent.networkInterfaces()
            let v4 = nics.flatMap(\.ipAddresses).filter { $0.type == "ipv4" }.map(\.address)
            #expect(v4.contains("127.0.0.1"))
            #expect(v4.contains { $0.hasPrefix("10.0.2.") }, "\(nics)")
            let cpus = try await agent.vcpus()
            #expect(cpus.count == 1)
            // Memory blocks: the guest lists its 1 GiB as online sections.
            let blocks = try await agent.memoryBlocks()
            let onlineBlocks = blocks.filter { $0.online }.count
            #expect(!blocks.isEmpty && onlineBlocks == blocks.count, "\(blocks)")
        }

        // Hot-add the second vCPU over QMP, then see it online through the agent.
        try await QMPClient.withConnection(to: qemu.socketPath) { qmp in
            let slots = try await qmp.execute("query-hotpluggable-cpus").arrayValue ?? []
            let free = try #require(slots.first { $0["qom-path"] == nil })
            var arguments = free["props"]?.objectValue ?? [:]
            arguments["driver"] = free["type"]
            arguments["id"] = "cpu1"
            _ = try await qmp.execute("device_add", arguments: .object(arguments))
            let after = try await qmp.execute("query-cpus-fast").arrayValue ?? []
            #expect(after.count == 2)
        }
        var online: [GuestVCPU] = []
        var seenByGuest: [GuestVCPU] = []
        let hotplugDeadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < hotplugDeadline {
            online = try await GuestAgent.withConnection(socketPath: agentSocket) { agent in
                let seen = try await agent.vcpus()
                seenByGuest = seen
                return seen.count == 2 ? try await agent.onlineAllVCPUs() : seen
            }
            if online.count == 2 && online.allSatisfy(\.online) { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(online.map(\.logicalID).sorted() == [0, 1], "\(online)")
        let allOnline = online.allSatisfy { $0.online }
        #expect(allOnline, "\(online)")
        print("cloud guest: the hot-added vCPU as the guest first listed it: \(seenByGuest.map { "\($0.logicalID):\($0.online ? "online" : "offline")" })")
        let nproc = try sshToGuest(key: key, port: port, "nproc")
        #expect(nproc.out == "2\n", "\(nproc.out)\(nproc.err)")

        // The serial probe sees cloud-init's final message on the console.
        try await ReadinessCheck.wait(for: .serialMatch("Cloud-init v\\. [0-9.]+ finished"), target: target, timeout: .seconds(300))
        print("cloud guest: cloud-init finished \(ContinuousClock.now - started) after start")

        // The base image was only read.
        let baseAfter = try FileManager.default.attributesOfItem(atPath: base)
        #expect(baseAfter[.modificationDate] as? Date == baseBefore[.modificationDate] as? Date)
        #expect(baseAfter[.size] as? Int == baseBefore[.size] as? Int)
        _ = toSSH
    }
}
