import Foundation
import QemuCtlTestSupport
import Testing
@testable import QemuCtl

/// Starts the real `qemu-system-x86_64` (tcg, `-S`, `-display none`) with every golden argv and checks over QMP
/// that the intended devices, block nodes and chardevs exist; backends that need a server we do not run
/// (RBD, iSCSI, bridge helper, VDE, NBD over TCP) must fail at connecting, not at parsing.
@Suite("QEMU accepts every golden argv", .serialized, .requiresQEMU, .offPool)
struct QEMUProofTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    @Test(.timeLimit(.minutes(1)), arguments: GoldenCase.all)
    func qemuAcceptsGoldenArgv(_ c: GoldenCase) throws {
        try GoldenFixtures.prepare()
        if case .skipped(let why) = c.outcome { print("skipped \(c.name): \(why)"); return }
        if c.name == "net-tap", getuid() != 0 || !FileManager.default.fileExists(atPath: "/dev/net/tun") {
            print("skipped net-tap: needs root and /dev/net/tun to create a tap device"); return
        }
        FileHandle.standardError.write(Data("proof: \(c.name)\n".utf8))
        let cmd = try c.config.commandLine(c.launch)
        #expect(cmd.arguments == c.expectedArgv)
        try GoldenFixtures.resetRunDirectory()
        for f in cmd.secretFiles {
            try GoldenFixtures.writePrivate(try f.secret.read(), to: f.path)
        }
        var nbd: Process?
        if c.fixtures.contains(where: { if case .nbdServer = $0 { true } else { false } }) {
            nbd = try GoldenFixtures.startNBD()
        }
        // SIGKILL: a child spawned from the test runner may inherit a mask that blocks SIGTERM.
        defer { if let nbd { kill(nbd.processIdentifier, SIGKILL); nbd.waitUntilExit() } }

        let daemonized = c.launch.daemonize
        // Starts QEMU and connects; returns the process, the client (nil when QEMU did not come up) and stderr.
        func launch() throws -> (Process, TinyQMP?, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.qemu)
            p.arguments = cmd.arguments
            let errPipe = Pipe()
            p.standardError = errPipe
            p.standardOutput = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            var qmp: TinyQMP?
            let deadline = Date().addingTimeInterval(15)
            while qmp == nil && Date() < deadline {
                if !p.isRunning && !(daemonized && p.terminationStatus == 0) { break }
                qmp = try? TinyQMP(path: c.launch.qmpSocketPath, deadline: Date().addingTimeInterval(0.2))
            }
            if qmp == nil, p.isRunning { kill(p.processIdentifier, SIGKILL) }
            if qmp == nil { p.waitUntilExit() }
            let stderr = qmp == nil ? String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) : ""
            return (p, qmp, stderr)
        }
        var (p, qmp, stderr) = try launch()
        if case .starts = c.outcome, qmp == nil, stderr.isEmpty {
            // QEMU said nothing and is gone: a start lost on a loaded machine (seen once in CI), not a refusal,
            // which always names its reason on stderr. One more try from a clean run directory.
            try GoldenFixtures.resetRunDirectory()
            for f in cmd.secretFiles { try GoldenFixtures.writePrivate(try f.secret.read(), to: f.path) }
            (p, qmp, stderr) = try launch()
        }

        switch c.outcome {
        case .fails(let text):
            #expect(qmp == nil, "QEMU started, but \(c.name) should fail with \(text)")
            #expect(stderr.contains(text), "stderr: \(stderr)")
            #expect(!stderr.contains("Invalid parameter") && !stderr.contains("Parameter '"),
                    "QEMU failed at parsing: \(stderr)")
            if let q = qmp { _ = try? q.execute("quit") }
            return
        case .skipped:
            return
        case .starts:
            break
        }
        let q = try #require(qmp, "QEMU did not start: \(stderr)")
        defer {
            _ = try? q.execute("quit")
            if !daemonized { p.waitUntilExit() }
        }
        let status = try q.execute("query-status") as? [String: Any]
        #expect(status?["status"] as? String == (c.launch.startPaused ? "prelaunch" : "running"))

        let peripherals = Set(((try q.execute("qom-list", ["path": "/machine/peripheral"])) as? [[String: Any]] ?? [])
            .compactMap { $0["name"] as? String })
        for d in c.devices { #expect(peripherals.contains(d), "device \(d) missing; have \(peripherals.sorted())") }

        let nodes = ((try q.execute("query-named-block-nodes")) as? [[String: Any]] ?? [])
        let nodeNames = Set(nodes.compactMap { $0["node-name"] as? String })
        for n in c.nodes { #expect(nodeNames.contains(n), "node \(n) missing; have \(nodeNames.sorted())") }

        let chardevs = Set(((try q.execute("query-chardev")) as? [[String: Any]] ?? []).compactMap { $0["label"] as? String })
        for ch in c.chardevs { #expect(chardevs.contains(ch), "chardev \(ch) missing; have \(chardevs.sorted())") }
        #expect(chardevs.contains("qmp"))

        for action in cmd.postStartActions {
            _ = try q.execute(action.command, action.arguments(secretValue: try action.secret.read()))
        }
        try checks(for: c, cmd: cmd, qmp: q, nodes: nodes)
    }

    /// Feature-specific checks beyond "it exists".
    func checks(for c: GoldenCase, cmd: QEMUCommandLine, qmp q: TinyQMP, nodes: [[String: Any]]) throws {
        switch c.name {
        case "hostile-values":
            // The image QEMU opened is exactly the hostile path, and nothing else was injected.
            let file = nodes.first { $0["node-name"] as? String == "file-evil" }
            #expect(file?["file"] as? String == hostilePath)
            #expect(file?["ro"] as? Bool == false)
            #expect(FileManager.default.fileExists(atPath: goldenDir + "/hostile/vnc,password=off,x=y.sock"))
            #expect(FileManager.default.fileExists(atPath: goldenDir + "/hostile/ser,mux=on,path=x.log"))
            #expect(FileManager.default.fileExists(atPath: goldenDir + "/hostile/log,append=on"))
            #expect(FileManager.default.fileExists(atPath: goldenDir + "/hostile/net\",\"server\":false,\"x\":\"y"))
        case "disk-read-only":
            let base = nodes.first { $0["node-name"] as? String == "fmt-base" }
            #expect(base?["ro"] as? Bool == true)
        case "disk-throttle":
            for (group, bps) in [("tg-a", 104_857_600), ("tg-b", 0)] {
                let limits = try q.execute("qom-get", ["path": "/objects/\(group)", "property": "limits"]) as? [String: Any]
                #expect(limits?["bps-total"] as? Int == bps, "\(group): \(String(describing: limits))")
            }
        case "efi-pflash":
            let m = try q.execute("qom-get", ["path": "/machine", "property": "pflash0"]) as? String
            #expect(m == "efi-code")
        case "display-vnc-spice-passwords":
            #expect(cmd.postStartActions == [.setPassword(.vnc, .value("vncpw")), .setPassword(.spice, .file(goldenDir + "/spice.pw"))])
            let vnc = try q.execute("query-vnc") as? [String: Any]
            #expect(vnc?["auth"] as? String == "vnc")
        case "hotplug-ports":
            // Hot-plug a disk into a free root port: what they are for.
            _ = try q.execute("blockdev-add", ["driver": "file", "node-name": "hp-file", "filename": goldenDir + "/raw1.img"])
            _ = try q.execute("device_add", ["driver": "virtio-blk-pci", "id": "hp-disk", "drive": "hp-file", "bus": cmd.hotplugPorts[0]])
        case "rng", "audio-hda-wav":
            // The RNG device is wired to the backend object, and the object reads the configured file.
            let backend = try q.execute("qom-get", ["path": "/machine/peripheral/rng0-dev", "property": "rng"]) as? String
            #expect(backend == "/objects/rng0")
            let file = try q.execute("qom-get", ["path": "/objects/rng0", "property": "filename"]) as? String
            #expect(file == "/dev/urandom")
            #expect(try pciDevices(q).contains { $0.id == "rng0-dev" && $0.slot == (c.name == "rng" ? 2 : 1) })
            if c.name == "audio-hda-wav" {
                let codec = try q.execute("qom-get", ["path": "/machine/peripheral/sound0-codec", "property": "audiodev"]) as? String
                #expect(codec == "audio0")
                #expect(try pciDevices(q).contains { $0.id == "sound0" && $0.slot == 2 })
                // The wav backend opened its file at start.
                #expect(FileManager.default.fileExists(atPath: goldenDir + "/run/audio0.wav"))
            }
        case "audio-ac97-spice", "audio-sb16-pc":
            let dev = try q.execute("qom-get", ["path": "/machine/peripheral/sound0", "property": "audiodev"]) as? String
            #expect(dev == "audio0")
        case "launch-daemonize-pidfile":
            let pid = try String(contentsOfFile: goldenDir + "/run/qemu.pid", encoding: .utf8)
            #expect(Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) != nil)
        default:
            break
        }
    }
}

extension QEMUProofTests {
    /// `query-pci` on bus 0: `(qdev id, slot)` of every function.
    func pciDevices(_ q: TinyQMP) throws -> [(id: String, slot: Int)] {
        let buses = try q.execute("query-pci") as? [[String: Any]] ?? []
        return buses.flatMap { ($0["devices"] as? [[String: Any]]) ?? [] }
            .compactMap { d in (d["qdev_id"] as? String).flatMap { id in (d["slot"] as? Int).map { (id, $0) } } }
    }
}

/// Files the golden configurations point at, made once per test process.
enum GoldenFixtures {
    nonisolated(unsafe) static var prepared = false
    static let lock = NSLock()

    static func run(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw TinyQMPError(message: "\(tool) \(args) failed") }
    }

    static func writePrivate(_ s: String, to path: String) throws {
        _ = FileManager.default.createFile(atPath: path, contents: Data(s.utf8), attributes: [.posixPermissions: 0o600])
    }

    static func sized(_ path: String, _ bytes: Int) {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        _ = truncate(path, off_t(bytes))
    }

    /// Held by this test process from the first ``prepare()`` until it exits: every golden argv names
    /// the fixed ``goldenDir``, so a second run of the suite on the same machine (another checkout)
    /// waits here instead of replacing the files and sockets this one's QEMUs use.
    private static let machineWideLock: Int32 = {
        let fd = open(goldenDir + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd >= 0 { _ = flock(fd, LOCK_EX) }
        return fd
    }()

    static func prepare() throws {
        lock.lock(); defer { lock.unlock() }
        _ = machineWideLock
        if prepared { return }
        let fm = FileManager.default
        try? fm.removeItem(atPath: goldenDir)
        try fm.createDirectory(atPath: goldenDir + "/hostile", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: goldenDir + "/psk", withIntermediateDirectories: true)
        try run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", goldenDir + "/root.qcow2", "64M"])
        try run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", goldenDir + "/nbd.qcow2", "64M"])
        for i in 1...5 { sized(goldenDir + "/raw\(i).img", 16 << 20) }
        sized(goldenDir + "/cd.iso", 1 << 20)
        sized(goldenDir + "/efi-code.fd", 2 << 20)
        sized(goldenDir + "/efi-vars.fd", 1 << 20)
        sized(hostilePath, 16 << 20)
        sized(goldenDir + "/initrd.img", 4096)
        _ = fm.createFile(atPath: goldenDir + "/ceph.conf", contents: Data("[global]\n".utf8))
        try writePrivate("qemu:0123456789abcdef\n", to: goldenDir + "/psk/keys.psk")
        try writePrivate("spicepw\n", to: goldenDir + "/spice.pw")
        _ = fm.createFile(atPath: goldenDir + "/vmlinuz", contents: fakeBzImage())
        prepared = true
    }

    /// A minimal bzImage header (boot protocol 2.06): enough for QEMU to load it; with `-S` it never runs.
    static func fakeBzImage() -> Data {
        var b = [UInt8](repeating: 0, count: 64 * 1024)
        b[0x1f1] = 1  // setup_sects
        b[0x1fe] = 0x55; b[0x1ff] = 0xaa
        for (i, c) in "HdrS".utf8.enumerated() { b[0x202 + i] = c }
        b[0x206] = 0x06; b[0x207] = 0x02  // protocol 2.06
        b[0x211] = 0x01  // LOADED_HIGH
        b[0x22c] = 0xff; b[0x22d] = 0xff; b[0x22e] = 0xff; b[0x22f] = 0x37  // initrd_addr_max
        return Data(b)
    }

    static func resetRunDirectory() throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: goldenDir + "/run")
        try fm.createDirectory(atPath: goldenDir + "/run", withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        for f in (try? fm.contentsOfDirectory(atPath: goldenDir + "/hostile")) ?? [] where f.hasSuffix(".sock") || f.hasPrefix("net") {
            try? fm.removeItem(atPath: goldenDir + "/hostile/" + f)
        }
    }

    /// `qemu-nbd` serving `nbd.qcow2` as export `data` on `goldenDir/nbd.sock`.
    static func startNBD() throws -> Process {
        let sock = goldenDir + "/nbd.sock"
        try? FileManager.default.removeItem(atPath: sock)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-nbd")
        p.arguments = ["--socket=" + sock, "--format=raw", "--export-name=data", "--persistent", "--shared=2", goldenDir + "/nbd.qcow2"]
        try p.run()
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: sock) && Date() < deadline { usleep(10_000) }
        return p
    }
}
