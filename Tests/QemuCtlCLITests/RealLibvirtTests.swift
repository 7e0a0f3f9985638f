import Foundation
import QemuCtlTestSupport
import Testing

/// A private libvirtd (Debian's libvirt-daemon + libvirt-daemon-driver-qemu, which `make deps`
/// installs) running real domains. It runs in session mode as the unprivileged test user, with
/// every directory (XDG runtime, config, cache, home) under the test's own directory: it touches
/// nothing of the system's libvirt (no /etc/libvirt, /run/libvirt, /var/lib/libvirt, no
/// `libvirt-qemu` user) and needs no systemd, D-Bus or cgroups. `stop()` destroys the domains and
/// ends the daemon; `--timeout` ends it anyway if a crashed test leaves it behind.
private final class PrivateLibvirtd: @unchecked Sendable {
    let root: String
    let daemon: Process
    var socket: String { root + "/run/libvirt/libvirt-sock" }
    /// What virsh connects to: the session driver behind this daemon's socket.
    var uri: String { "qemu+unix:///session?socket=\(socket)" }
    private var domains: [String] = []

    init(root: String) async throws {
        for tool in ["/usr/sbin/libvirtd", "/usr/bin/virsh"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw FixtureError("\(tool) is missing: make deps installs libvirt-daemon, libvirt-daemon-driver-qemu and libvirt-clients")
        }
        self.root = root
        let ids = try UnprivilegedUser.ids()
        for sub in ["run", "home/.config/libvirt", "home/.cache", "guest"] {
            try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        // QEMU's stdio goes to a file, not to virtlogd (which libvirtd would otherwise spawn).
        try "stdio_handler = \"file\"\n".write(toFile: root + "/home/.config/libvirt/qemu.conf", atomically: true, encoding: .utf8)
        // QEMU runs as the test user: it reads its own copy of the guest.
        for (from, to) in [(Fixtures.guestKernel, "vmlinuz"), (Fixtures.guestInitrd, "initrd.img")] {
            try FileManager.default.copyItem(atPath: from, toPath: root + "/guest/" + to)
        }
        let chown = try UnprivilegedUser.run(["/bin/chown", "-R", "\(ids.uid):\(ids.gid)", root])
        guard chown.status == 0 else { throw FixtureError("chown \(root): \(chown.output)") }
        daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        daemon.arguments = ["-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(root)/home", "XDG_RUNTIME_DIR=\(root)/run",
                            "XDG_CONFIG_HOME=\(root)/home/.config", "XDG_CACHE_HOME=\(root)/home/.cache",
                            "/usr/bin/setpriv", "--reuid=\(ids.uid)", "--regid=\(ids.gid)", "--clear-groups",
                            "/usr/sbin/libvirtd", "--timeout", "600"]
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: socket) && daemon.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        guard FileManager.default.fileExists(atPath: socket) else {
            stop()
            throw FixtureError("libvirtd did not create \(socket)")
        }
    }

    func virsh(_ args: String...) async throws -> QemuctlBinary.Run {
        try await QemuctlBinary.run(["-c", uri] + args, executable: "/usr/bin/virsh")
    }

    /// Starts a transient domain NAME booting the test guest (TCG, 128 MiB, serial to a file, no
    /// network), with `commandline` passed through `<qemu:commandline>`. Returns QEMU's pid.
    func create(_ name: String, commandline: [String] = []) async throws -> Int32 {
        let extra = commandline.isEmpty ? "" :
            "<qemu:commandline>" + commandline.map { "<qemu:arg value='\($0)'/>" }.joined() + "</qemu:commandline>"
        let xml = """
            <domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
              <name>\(name)</name>
              <memory unit='MiB'>128</memory>
              <vcpu>1</vcpu>
              <os>
                <type arch='x86_64' machine='q35'>hvm</type>
                <kernel>\(root)/guest/vmlinuz</kernel>
                <initrd>\(root)/guest/initrd.img</initrd>
                <cmdline>console=ttyS0</cmdline>
              </os>
              <devices>
                <emulator>\(Fixtures.qemu)</emulator>
                <serial type='file'><source path='\(root)/\(name).serial'/><target port='0'/></serial>
              </devices>
              \(extra)
            </domain>
            """
        let file = root + "/\(name).xml"
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        let created = try await virsh("create", file)
        guard created.status == 0 else { throw FixtureError("virsh create \(name): \(created.err)") }
        domains.append(name)
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            return cmd.contains("qemu-system") && cmd.contains("guest=\(name),") && cmd.contains(root)
        }
        guard pids.count == 1 else { throw FixtureError("expected one QEMU for domain \(name), found \(pids)") }
        return pids[0]
    }

    func stop() {
        for name in domains {
            _ = try? UnprivilegedUser.run(["/usr/bin/virsh", "-c", uri, "destroy", name])
        }
        // SIGKILL: the test process blocks SIGTERM, and its children inherit that mask, so
        // libvirtd would never see `terminate()`. Its domains are destroyed above.
        if daemon.isRunning {
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
        }
    }
}

@Suite(.timeLimit(.minutes(3)), .offPool) struct RealLibvirtTests {
    @Test func aDomainOfARealLibvirtdIsNamedWithTheVirshHintAndNotAdoptedWithoutForce() async throws {
        let w = try Workspace("lv")
        defer { w.cleanUp() }  // runs last; also kills any QEMU whose command line names the directory
        // The daemon's user reaches its directory through the test's (root's 0700) one.
        chmod(w.dir.path, 0o711)
        let libvirt = try await PrivateLibvirtd(root: w.dir.file("lv"))
        defer { libvirt.stop() }
        let pid = try await libvirt.create("lvweb")
        let refused = try await w.qemuctl("import", "--pid", String(pid), "--timeout", "60")
        #expect(refused.status == 1)
        // A fresh daemon numbers its first domain 1; session mode keeps it under XDG_CONFIG_HOME.
        let monitor = "\(libvirt.root)/home/.config/libvirt/qemu/lib/domain-1-lvweb/monitor.sock"
        #expect(refused.err.contains("process \(pid) is a QEMU managed by libvirt (domain lvweb); libvirtd holds its monitor (\(monitor))"),
                "\(refused.err)")
        #expect(refused.err.contains("virsh qemu-monitor-command lvweb"), "\(refused.err)")
        #expect(refused.err.contains("<qemu:commandline>"), "\(refused.err)")
        #expect(refused.out.isEmpty, "\(refused.out)")
        // The hint works: libvirtd answers for the monitor it holds.
        let hinted = try await libvirt.virsh("qemu-monitor-command", "lvweb", "--pretty", #"{"execute":"query-status"}"#)
        #expect(hinted.status == 0, "\(hinted.err)")
        #expect(hinted.out.contains(#""status": "running""#), "\(hinted.out)")

        // A second QMP socket through <qemu:commandline>: import reads it; adopting needs --force.
        let extra = libvirt.root + "/run/extra.sock"
        let second = try await libvirt.create("lvweb2", commandline: ["-qmp", "unix:\(extra),server=on,wait=off"])
        let read = try await w.qemuctl("import", "--pid", String(second))
        #expect(read.status == 0, "\(read.err)")
        #expect(read.out.contains("name: lvweb2"), "\(read.out)")
        #expect(read.out.contains("kernel: \(libvirt.root)/guest/vmlinuz"), "\(read.out)")
        #expect(read.out.contains(#"size: "128MiB""#), "\(read.out)")
        // What libvirt adds and a manifest cannot say is named, not silently dropped.
        #expect(read.err.contains(#"-device {"driver":"qemu-xhci","id":"usb""#), "\(read.err)")
        let adopt = try await w.qemuctl("import", "--pid", String(second), "--adopt")
        #expect(adopt.status == 1)
        #expect(adopt.err.contains("lvweb2 (pid \(second)) is managed by libvirt (domain lvweb2): adopting it would give it two managers"),
                "\(adopt.err)")
        #expect(adopt.err.contains("--force"), "\(adopt.err)")
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/lvweb2/record.json"), "nothing recorded")
        let none = try await w.qemuctl("get")
        #expect(none.status == 0, "\(none.err)")
        #expect(!none.out.contains("lvweb"), "\(none.out)")
        let forced = try await w.qemuctl("import", "--pid", String(second), "--adopt", "--force")
        #expect(forced.status == 0, "\(forced.err)")
        #expect(forced.err.contains("adopted lvweb2"), "\(forced.err)")
        let listed = try await w.qemuctl("get")
        #expect(listed.status == 0, "\(listed.err)")
        #expect(listed.out.contains("lvweb2"), "\(listed.out)")
        // libvirtd still holds and answers its own monitor of the adopted QEMU.
        let still = try await libvirt.virsh("qemu-monitor-command", "lvweb2", #"{"execute":"query-status"}"#)
        #expect(still.status == 0 && still.out.contains("running"), "\(still.err)")
    }
}
