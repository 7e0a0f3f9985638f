import Foundation
import Testing
@testable import QemuCtl

/// The directory every golden configuration points into; the QEMU proof test fills it with real files.
let goldenDir = "/tmp/qemuctl-golden"
/// The launch options of every golden case (tcg, no probe needed).
let goldenLaunch = LaunchOptions(qmpSocketPath: goldenDir + "/run/qmp.sock", runtimeDirectory: goldenDir + "/run",
                                 accelerator: AcceleratorChoice(accelerator: .tcg))

/// How QEMU is expected to react to a golden argv.
enum QEMUOutcome: Sendable {
    /// QEMU starts (paused) and serves QMP.
    case starts
    /// QEMU exits with an error whose text contains this (e.g. a connection failure, not a parse failure).
    case fails(containing: String)
    /// Not run, with the reason.
    case skipped(String)
}

/// Server-side fixtures a case needs before QEMU starts.
enum Fixture: Sendable {
    /// `qemu-nbd` serving a qcow2 image on `goldenDir/nbd.sock`.
    case nbdServer
}

/// One golden case: a configuration, its expected argv (one option per line, value after the first space),
/// and what QEMU must show when started with it.
struct GoldenCase: Sendable, CustomTestStringConvertible {
    var name: String
    var config: VMConfig
    var launch: LaunchOptions = goldenLaunch
    /// The expected argv, one option per line: `-opt value` (split at the first space) or `-opt`.
    var expected: String
    /// Device ids that must exist under `/machine/peripheral`.
    var devices: [String] = []
    /// Block node names that must exist (`query-named-block-nodes`).
    var nodes: [String] = []
    /// Chardev labels that must exist (`query-chardev`).
    var chardevs: [String] = []
    var outcome: QEMUOutcome = .starts
    var fixtures: [Fixture] = []

    var testDescription: String { name }

    /// The expected argv as an array.
    var expectedArgv: [String] {
        expected.split(separator: "\n").flatMap { line -> [String] in
            let l = String(line)
            guard let sp = l.firstIndex(of: " ") else { return [l] }
            return [String(l[..<sp]), String(l[l.index(after: sp)...])]
        }
    }
}

/// Renders argv in the golden format (used to show a readable diff).
func goldenText(_ argv: [String]) -> String {
    var lines: [String] = []
    var i = 0
    while i < argv.count {
        let a = argv[i]
        if i + 1 < argv.count, !argv[i + 1].hasPrefix("-") {
            lines.append(a + " " + argv[i + 1]); i += 2
        } else {
            lines.append(a); i += 1
        }
    }
    return lines.joined(separator: "\n")
}

// MARK: - A minimal QMP peer for the proof test (the QMP module is written elsewhere).

/// Connects to a Unix socket, negotiates QMP, and runs commands synchronously with a deadline.
final class TinyQMP {
    let fd: Int32
    var buffer = Data()

    init(path: String, deadline: Date) throws {
        var lastError = "timeout"
        while true {
            let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
            }
            let r = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if r == 0 { fd = s; break }
            lastError = String(cString: strerror(errno))
            close(s)
            if Date() > deadline { throw TinyQMPError(message: "connect \(path): \(lastError)") }
            usleep(20_000)
        }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = try readMessage()  // greeting
        _ = try execute("qmp_capabilities")
    }

    deinit { close(fd) }

    func readMessage() throws -> [String: Any] {
        while true {
            if let nl = buffer.firstIndex(of: 0x0a) {
                let line = buffer[buffer.startIndex..<nl]
                buffer.removeSubrange(buffer.startIndex...nl)
                if let obj = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] { return obj }
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { throw TinyQMPError(message: "QMP read failed (\(n))") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    func execute(_ command: String, _ arguments: [String: Any]? = nil) throws -> Any {
        var msg: [String: Any] = ["execute": command]
        if let arguments { msg["arguments"] = arguments }
        var data = try JSONSerialization.data(withJSONObject: msg)
        data.append(0x0a)
        _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        while true {
            let m = try readMessage()
            if m["event"] != nil { continue }
            if let e = m["error"] as? [String: Any] { throw TinyQMPError(message: "\(command): \(e["desc"] ?? e)") }
            return m["return"] ?? [:]
        }
    }
}

struct TinyQMPError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension Trait where Self == ConditionTrait {
    /// Runs only where `qemu-system-x86_64` is installed.
    static var requiresQEMU: Self {
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64"),
                 "qemu-system-x86_64 is not installed")
    }
}
