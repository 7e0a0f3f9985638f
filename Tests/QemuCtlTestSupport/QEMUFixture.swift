import CSocketShims
public import Foundation
import QMP

/// Locations of the real parts the tests use.
public enum Fixtures: Sendable {
    /// The repository root (derived from this file's path).
    public static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The test process's umask, read from `/proc/self/status` (reading it with `umask(2)` would
    /// change it for a moment, for every thread).
    public static func processUmask() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }) else { return nil }
        return Int(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8)
    }

    /// `qemu-system-x86_64` from `PATH` (CI installs Debian's `qemu-system-x86`).
    public static let qemu: String = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/qemu-system-x86_64"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/qemu-system-x86_64"
    }()

    /// The directory with the test guest's `vmlinuz` and `initrd.img`
    /// (`$QEMUCTL_GUEST_DIR/current`, default `.cache/guest/current`; `make guest` builds it).
    public static let guestDir: String = {
        let base = ProcessInfo.processInfo.environment["QEMUCTL_GUEST_DIR"] ?? (repoRoot + "/.cache/guest")
        return base + "/current"
    }()

    /// The guest kernel.
    public static var guestKernel: String { guestDir + "/vmlinuz" }
    /// The guest initramfs.
    public static var guestInitrd: String { guestDir + "/initrd.img" }

    /// The marker the guest prints on its serial console when it is ready.
    public static let guestReadyMarker = "QEMUCTL-GUEST-READY"
    /// The marker the guest prints right before it powers off.
    public static let guestPoweroffMarker = "QEMUCTL-GUEST-POWEROFF"
}

/// A QEMU started for a test, with a QMP socket in a private directory.
///
/// Started as a direct child; ``kill()`` (or ``wait()``) reaps it.
public final class QEMUProcess: @unchecked Sendable {
    /// The QEMU process.
    public let process: Process
    /// The private directory holding the socket and logs.
    public let dir: TempDir
    /// The QMP socket path.
    public let socketPath: String
    /// The serial console log file (when started with ``serialLog``).
    public let serialLog: String
    /// QEMU's stderr, captured to a file.
    public let stderrPath: String

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// Starts `qemu-system-x86_64` with a QMP socket and `args`, and waits for the socket.
    ///
    /// - Parameters:
    ///   - args: Extra arguments (machine, accel, …). Defaults give a bare TCG VM with no devices.
    ///   - paused: Whether to pass `-S`.
    public init(args: [String] = ["-machine", "q35", "-accel", "tcg", "-m", "64"], paused: Bool = true,
                serial: Bool = false, extraMonitor: Bool = false) throws {
        dir = try TempDir("qemu")
        socketPath = dir.file("qmp.sock")
        serialLog = dir.file("serial.log")
        stderrPath = dir.file("stderr.log")
        var argv = ["-nodefaults", "-no-user-config", "-display", "none",
                    "-qmp", "unix:\(socketPath),server=on,wait=off"]
        if paused { argv.append("-S") }
        if serial { argv += ["-serial", "file:\(serialLog)"] }
        if extraMonitor { argv += ["-qmp", "unix:\(dir.file("qmp2.sock")),server=on,wait=off"] }
        argv += args
        process = Process()
        process.executableURL = URL(fileURLWithPath: Fixtures.qemu)
        process.arguments = argv
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        // The socket file appears at bind(), a moment before listen(): wait until a
        // connect succeeds (that probe connection is closed at once; QEMU then
        // accepts the next client).
        while !Self.accepts(socketPath) {
            if !process.isRunning {
                throw FixtureError("QEMU exited at start: \(stderrText)")
            }
            if Date() > deadline { throw FixtureError("QEMU did not create its QMP socket within 10 s") }
            usleep(5_000)
        }
    }

    static func accepts(_ path: String) -> Bool {
        let fd = csock_unix_connect(path)
        if fd < 0 { return false }
        close(fd)
        return true
    }

    /// Starts the test guest (kernel + initramfs) under TCG, serial console to ``serialLog``.
    public static func guest(cmdline extra: String = "", paused: Bool = false) throws -> QEMUProcess {
        guard FileManager.default.fileExists(atPath: Fixtures.guestKernel) else {
            throw FixtureError("test guest missing at \(Fixtures.guestDir): run `make guest` (scripts/make-guest.sh)")
        }
        return try QEMUProcess(args: [
            "-machine", "q35", "-accel", "tcg", "-m", "256", "-no-reboot",
            "-kernel", Fixtures.guestKernel, "-initrd", Fixtures.guestInitrd,
            "-append", "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check \(extra)",
        ], paused: paused, serial: true)
    }

    /// QEMU's stderr so far.
    public var stderrText: String {
        (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    }

    /// The serial console output so far.
    public var serialText: String {
        (try? String(contentsOfFile: serialLog, encoding: .utf8)) ?? ""
    }

    /// Waits until the serial log contains `marker`; returns the seconds it took, or throws at the deadline.
    @discardableResult
    public func waitForSerial(_ marker: String, timeout: TimeInterval = 60) async throws -> TimeInterval {
        let start = Date()
        while !serialText.contains(marker) {
            if Date().timeIntervalSince(start) > timeout {
                throw FixtureError("no '\(marker)' on the serial console within \(timeout) s; console so far:\n\(serialText)")
            }
            if !process.isRunning && !serialText.contains(marker) {
                throw FixtureError("QEMU exited before '\(marker)'; console:\n\(serialText)\nstderr: \(stderrText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return Date().timeIntervalSince(start)
    }

    /// Waits for the process to exit (up to `timeout`); returns whether it exited.
    public func waitForExit(timeout: TimeInterval = 30) async -> Bool {
        let start = Date()
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Kills QEMU (SIGKILL), reaps it and removes its directory.
    public func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        dir.remove()
    }

    deinit { kill() }
}

/// A fixture that could not be set up.
public struct FixtureError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// Creates the error.
    public init(_ description: String) { self.description = description }
}
