import Foundation
import QemuCtl
import QemuCtlTestSupport
import Testing

/// `firmware: {type: efi}` end to end through the qemuctl binary: the host's OVMF (found through its
/// firmware descriptors) boots to the UEFI shell under TCG, and the VM's variable store outlives a
/// relaunch and a delete.
@Suite(.timeLimit(.minutes(4)), .offPool) struct FirmwareApplyTests {
    /// A VM with no disk: OVMF starts its built-in shell, with its console logged.
    private func efiVM(_ name: String) -> String {
        """
        apiVersion: qemuctl/v1
        kind: VirtualMachine
        metadata: {name: \(name)}
        spec:
          machine: {type: q35, accel: tcg}
          memory: {size: 128MiB}
          firmware: {type: efi}
          serial: {log: true}
        """
    }

    /// Waits until `path` holds `needle` (bytes), up to `timeout`.
    private func waitFor(_ needle: [UInt8], in path: String, timeout: Duration = .seconds(90)) async throws {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let d = FileManager.default.contents(atPath: path), d.range(of: Data(needle)) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? "(missing)"
        throw FixtureError("no '\(String(decoding: needle.filter { $0 != 0 }, as: UTF8.self))' in \(path) within \(timeout): \(text.suffix(2000))")
    }

    /// Types `line` and Enter on the VM's serial console (its unix socket), one character at a time as
    /// a person would (the UEFI shell reads slowly under TCG), then reads what the console prints until
    /// it holds `needle` (escape sequences and line breaks removed) or `timeout` passes; returns that text.
    @discardableResult
    private func type(_ line: String, console: String, until needle: String? = nil,
                      timeout: Duration = .seconds(2)) async throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(console.utf8CString)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, c) in path.enumerated() { raw[i] = UInt8(bitPattern: c) }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw FixtureError("cannot connect to \(console): errno \(errno)") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func drain() {
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                received += chunk[0..<n]
            }
        }
        for byte in Array((line + "\r").utf8) {
            var b = byte
            guard write(fd, &b, 1) == 1 else { throw FixtureError("writing to \(console): errno \(errno)") }
            drain()
            try await Task.sleep(for: .milliseconds(25))
        }
        let end = ContinuousClock.now + timeout
        var text = ""
        while ContinuousClock.now < end {
            drain()
            text = Self.plain(received)
            if let needle, text.contains(needle) { return text }
            try await Task.sleep(for: .milliseconds(100))
        }
        if let needle { throw FixtureError("the console did not print '\(needle)' within \(timeout): \(text.suffix(1500))") }
        return text
    }

    /// Console bytes as text without terminal escape sequences (`ESC [ … letter`) and line breaks: the
    /// UEFI shell positions the cursor, and wraps long lines, with them.
    static func plain(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x1b {
                i += 1
                if i < bytes.count && bytes[i] == UInt8(ascii: "[") {
                    i += 1
                    while i < bytes.count && !(UInt8(ascii: "A")...UInt8(ascii: "z")).contains(bytes[i]) { i += 1 }
                    i += 1
                }
                continue
            }
            if bytes[i] != 0x0d && bytes[i] != 0x0a { out.append(bytes[i]) }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func inode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.systemFileNumber] as? Int)
    }

    @Test func efiManifestBootsOVMFAndAVariableTheGuestWroteSurvivesARelaunchAndADelete() async throws {
        let w = try Workspace("efi")
        defer { w.cleanUp() }
        let vms = try w.manifest("e", efiVM("e"))
        let validate = try await w.qemuctl("validate", "-f", vms)
        #expect(validate.status == 0, "\(validate.err)")
        #expect(!validate.err.contains("warning"), "\(validate.err)")

        let started = ContinuousClock.now
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        let serial = "\(w.state)/e/serial.log", vars = "\(w.state)/e.efivars.fd"
        try await waitFor(Array("UEFI Interactive Shell".utf8), in: serial)
        print("apply to the UEFI shell banner under TCG: \(ContinuousClock.now - started)")

        // describe shows the firmware the running QEMU was given: the descriptor's OVMF and the VM's own store.
        let installed = try FirmwareDiscovery.installed().select(FirmwareRequest(architecture: .amd64, machineType: "q35"))
        let describe = try await w.qemuctl("describe", "e", "-o", "json")
        let object = try JSONSerialization.jsonObject(with: Data(describe.out.utf8)) as? [String: Any] ?? [:]
        let firmware = object["firmware"] as? [String: Any] ?? [:]
        #expect(firmware["code"] as? String == installed.flash?.executable)
        #expect(firmware["vars"] as? String == vars)
        #expect(firmware["source"] as? String == "qemu command line")
        #expect(firmware["secureBoot"] as? Bool == false)
        let templatePath = try #require(installed.flash?.nvramTemplate)
        let template = try #require(FileManager.default.contents(atPath: templatePath))

        // The guest writes a non-volatile UEFI variable from the shell; OVMF stores it in the VM's copy.
        // Enter skips the shell's 5 s startup.nsh countdown, or gives a fresh prompt once it is over.
        try await type("", console: "\(w.state)/e/console.sock", until: "Shell>", timeout: .seconds(60))
        let value = "qemuctl-kept-\(UInt32.random(in: 1_000_000...9_999_999))"
        let ucs2 = Array(value.utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] })
        try await type("setvar QemuctlPersist -guid 0053d9d6-2659-4599-a26b-ef4536e631a9 -nv -bs -rt =L\"\(value)\"",
                       console: "\(w.state)/e/console.sock")
        try await waitFor(ucs2, in: vars, timeout: .seconds(60))
        #expect(template.range(of: Data(ucs2)) == nil)
        let firstInode = try inode(vars)

        // A relaunch by qemuctl (stop, then start from the record) boots from the same store.
        let stop = try await w.qemuctl("stop", "e", "--stop-timeout", "1")
        #expect(stop.status == 0, "\(stop.err)")
        try FileManager.default.removeItem(atPath: serial)
        let start = try await w.qemuctl("start", "e")
        #expect(start.status == 0, "\(start.err)")
        try await waitFor(Array("UEFI Interactive Shell".utf8), in: serial)
        #expect(try inode(vars) == firstInode, "the store is the same file, not a new copy")
        #expect(FileManager.default.contents(atPath: vars)?.range(of: Data(ucs2)) != nil)
        // …and the guest's firmware reads the variable back after the relaunch.
        try await type("", console: "\(w.state)/e/console.sock", until: "Shell>", timeout: .seconds(60))
        let shown = try await type("dmpstore QemuctlPersist -guid 0053d9d6-2659-4599-a26b-ef4536e631a9",
                                   console: "\(w.state)/e/console.sock", until: "QemuctlPersist' DataSize", timeout: .seconds(40))
        #expect(shown.contains("Variable NV+RT+BS"), "\(shown.suffix(1500))")

        // delete keeps the store like a disk image; the runtime directory goes.
        let delete = try await w.qemuctl("delete", "e", "--stop-timeout", "1")
        #expect(delete.status == 0, "\(delete.err)")
        #expect(!FileManager.default.fileExists(atPath: "\(w.state)/e"))
        #expect(try inode(vars) == firstInode)
        #expect(FileManager.default.contents(atPath: vars)?.range(of: Data(ucs2)) != nil)
    }

    @Test func validateWarnsAboutAVarsFileThatCannotBeCreated() async throws {
        let w = try Workspace("efiw")
        defer { w.cleanUp() }
        try FileManager.default.createDirectory(atPath: w.dir.file("fw"), withIntermediateDirectories: true)
        try Data(count: 4096).write(to: URL(fileURLWithPath: w.dir.file("fw/CODE.fd")))
        let vms = try w.manifest("v", """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: v}
            spec:
              machine: {type: q35, accel: tcg}
              firmware: {type: efi, code: ../fw/CODE.fd, vars: ../fw/missing-vars.fd}
            """)
        let validate = try await w.qemuctl("validate", "-f", vms)
        #expect(validate.status == 0, "a warning, not an error: \(validate.err)")
        #expect(validate.err.contains("warning: VM 'v': firmware vars '\(w.dir.file("fw/missing-vars.fd"))' does not exist"), "\(validate.err)")
        // apply cannot start it, and says why.
        let apply = try await w.qemuctl("apply", "-f", vms)
        #expect(apply.status != 0)
        #expect((apply.out + apply.err).contains("does not exist and no template is known"), "\(apply.out)\(apply.err)")
        #expect(!FileManager.default.fileExists(atPath: w.dir.file("fw/missing-vars.fd")))
    }
}
