import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// A QEMU started the way libvirt starts one: its monitor is a listening socket it inherits as a
/// descriptor (`-chardev socket,id=charmonitor,fd=N,server=on,wait=off`), created by the parent.
/// With `hold`, the parent (libvirtd's stand-in) connects to the monitor and keeps it, as libvirtd
/// does for the VM's whole life. Returns the launcher (its stdout's first line is QEMU's pid).
private final class InheritedMonitorQEMU: @unchecked Sendable {
    let launcher: Process
    let pid: Int32

    init(socket: String, hold: Bool, args: [String]) throws {
        let script = """
            import os, socket, sys, time
            path, hold, qemu = sys.argv[1], sys.argv[2] == "hold", sys.argv[3]
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(4)
            os.set_inheritable(listener.fileno(), True)
            argv = [a.replace("@FD@", str(listener.fileno())) for a in sys.argv[4:]]
            child = os.fork()
            if child == 0:
                os.execv(qemu, [qemu] + argv)
            listener.close()
            if hold:
                held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                held.connect(path)
                held.recv(65536)
                held.sendall(b'{"execute":"qmp_capabilities"}\\n')
                held.recv(65536)
            print(child, flush=True)
            os.waitpid(child, 0)
            """
        launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        launcher.arguments = ["python3", "-c", script, socket, hold ? "hold" : "free", Fixtures.qemu,
                              "-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35", "-accel", "tcg", "-m", "64",
                              "-chardev", "socket,id=charmonitor,fd=@FD@,server=on,wait=off",
                              "-mon", "chardev=charmonitor,id=monitor,mode=control"] + args
        let out = Pipe(), err = Pipe()
        launcher.standardOutput = out
        launcher.standardError = err
        launcher.standardInput = FileHandle.nullDevice
        try launcher.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty {
                let why = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw FixtureError("the launcher exited before starting QEMU: \(why)")
            }
            line += chunk
        }
        guard let pid = Int32(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FixtureError("the launcher printed no pid")
        }
        self.pid = pid
    }

    func stop() {
        kill(pid, SIGKILL)
        launcher.waitUntilExit()
    }
}

@Suite(.timeLimit(.minutes(2)), .offPool) struct InheritedMonitorTests {
    @Test func aMonitorPassedAsADescriptorIsFoundThroughProc() async throws {
        let w = try Workspace("fdmon")
        defer { w.cleanUp() }
        let socket = w.dir.file("passed.sock")
        let image = w.dir.file("d.raw")
        FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        let qemu = try InheritedMonitorQEMU(socket: socket, hold: false, args: [
            "-name", "guest=passed",
            "-blockdev", #"{"driver":"file","node-name":"f0","filename":"\#(image)","discard":"unmap"}"#,
            "-blockdev", #"{"driver":"raw","node-name":"r0","file":"f0"}"#,
            "-device", "virtio-blk-pci,drive=r0,id=data",
            "-device", "qemu-xhci,id=usb",
        ])
        defer { qemu.stop() }
        let imported = try await w.qemuctl("import", "--pid", String(qemu.pid))
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.contains("name: passed"), "\(imported.out)")
        // discard=unmap sits on the file node, which query-block does not report: read from the chain.
        #expect(imported.out.contains("discard: true"), "\(imported.out)")
        // A USB controller without devices has no manifest form: said, not silently dropped.
        #expect(imported.err.contains("-device qemu-xhci,id=usb is not expressible in a manifest (a manifest adds a USB controller only with a USB device or the tablet)"),
                "\(imported.err)")
        #expect(!imported.err.contains("discard"), "\(imported.err)")
    }

    @Test func aLibvirtManagedQEMUIsNamedAndNotWaitedOnAndNotAdoptedWithoutForce() async throws {
        let w = try Workspace("virt")
        defer { w.cleanUp() }
        // libvirt's per-domain directory layout: …/libvirt/qemu/domain-ID-NAME/monitor.sock.
        let domainDir = w.dir.file("lib/libvirt/qemu/domain-7-web")
        try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true)
        let held = try InheritedMonitorQEMU(socket: domainDir + "/monitor.sock", hold: true, args: ["-name", "guest=web,debug-threads=on"])
        defer { held.stop() }
        let started = ContinuousClock.now
        let refused = try await w.qemuctl("import", "--pid", String(held.pid), "--timeout", "60")
        #expect(refused.status == 1)
        #expect(refused.err.contains("is a QEMU managed by libvirt (domain web); libvirtd holds its monitor (\(domainDir)/monitor.sock)"), "\(refused.err)")
        #expect(refused.err.contains("virsh"), "\(refused.err)")
        #expect(refused.err.contains("<qemu:commandline>"), "\(refused.err)")
        // Waiting on the held monitor would take the whole 60 s deadline; the bound leaves room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(30), "answered without waiting on the held monitor")

        // With a second QMP socket (what <qemu:commandline> adds), import reads it; adopting needs --force.
        let extra = w.dir.file("extra.sock")
        FileManager.default.createFile(atPath: domainDir + "/master-key.aes", contents: Data(repeating: 7, count: 32))
        let withExtra = try InheritedMonitorQEMU(socket: w.dir.file("lib/libvirt/qemu/domain-7-web/monitor2.sock"), hold: true, args: [
            "-name", "guest=web2,debug-threads=on", "-qmp", "unix:\(extra),server=on,wait=off",
            "-object", #"{"qom-type":"secret","id":"masterKey0","format":"raw","file":"\#(domainDir)/master-key.aes"}"#,
        ])
        defer { withExtra.stop() }
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: extra) { try await Task.sleep(for: .milliseconds(10)) }
        let read = try await w.qemuctl("import", "--pid", String(withExtra.pid))
        #expect(read.status == 0, "\(read.err)")
        #expect(read.out.contains("name: web2"), "\(read.out)")
        let adopt = try await w.qemuctl("import", "--pid", String(withExtra.pid), "--adopt")
        #expect(adopt.status == 1)
        #expect(adopt.err.contains("is managed by libvirt (domain web2): adopting it would give it two managers"), "\(adopt.err)")
        #expect(adopt.err.contains("--force"), "\(adopt.err)")
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/web2/record.json"), "nothing recorded")
        let forced = try await w.qemuctl("import", "--pid", String(withExtra.pid), "--adopt", "--force")
        #expect(forced.status == 0, "\(forced.err)")
        #expect(forced.err.contains("adopted web2"), "\(forced.err)")
    }
}
