#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import QemuCtl
package import Manifest

/// What the state directory keeps per managed VM (`NAME/record.json`): the launch
/// record the planner compares with, plus facts for `get` and `describe`.
package struct StoredRecord: Sendable, Hashable, Codable {
    /// The launch record (uuid, labels, the spec it was launched with, secret markers).
    package var launch: LaunchRecord
    /// An earlier `apply --restart=never` left a restart-class change unapplied.
    package var restartPending: Bool
    /// QEMU's process id at launch.
    package var pid: Int32?
    /// The accelerator QEMU runs with (`kvm`, `tcg`).
    package var accelerator: String?
    /// Why that accelerator and CPU model were chosen.
    package var acceleratorReasons: [String]
    /// When QEMU was started (seconds since the Unix epoch).
    package var startedAt: Double?
    /// The manifest file the VM was last applied from.
    package var source: String?
    /// Set when `qemuctl import --adopt` took over a QEMU started elsewhere; cleared by the
    /// next launch (a relaunch is qemuctl's own).
    package var adopted: Adoption?
    /// What `qemuctl controller` recorded about the VM's exits and restarts (restart count, last
    /// exit, backoff); `nil` until the controller saw it exit, and in records written before it existed.
    package var restarts: RestartHistory?
    /// The QEMU process (pid, start time, executable) as it was when launched or adopted:
    /// what proves a monitor's peer and a signal's target (see ``StoredRecord/disproof(peer:layout:)``).
    package var process: ProcessIdentity? = nil
    /// The cloud-init instance-id of the seed the VM was last launched with (`spec.cloudInit`), or `nil`.
    package var cloudInitInstanceID: String? = nil

    /// Creates a record.
    package init(launch: LaunchRecord, restartPending: Bool = false, pid: Int32? = nil, accelerator: String? = nil,
                 acceleratorReasons: [String] = [], startedAt: Double? = nil, source: String? = nil, adopted: Adoption? = nil) {
        self.adopted = adopted
        self.launch = launch
        self.restartPending = restartPending
        self.pid = pid
        self.accelerator = accelerator
        self.acceleratorReasons = acceleratorReasons
        self.startedAt = startedAt
        self.source = source
    }
}

/// How an adopted QEMU (one qemuctl did not launch) is recognised and followed.
///
/// Its QMP socket stays where it was; the state directory's `NAME.sock` is a symlink to it,
/// so everything that connects by name finds it. It is the recorded QEMU when the process
/// behind the socket has the recorded pid and start time (it need not have a `-uuid`).
package struct Adoption: Sendable, Hashable, Codable {
    /// QEMU's process id.
    package var pid: Int32
    /// The process's start time (`/proc/PID/stat` field 22, clock ticks since boot), against pid reuse.
    package var startTime: UInt64?
    /// The QMP socket QEMU was started with.
    package var socketPath: String
    /// QEMU's names of block devices (`query-block` `qdev`) → qemuctl's ids (`disk-NAME`, `cd-NAME`).
    package var deviceAliases: [String: String]
    /// When it was adopted (seconds since the Unix epoch).
    package var adoptedAt: Double

    /// Creates an adoption record.
    package init(pid: Int32, startTime: UInt64?, socketPath: String, deviceAliases: [String: String], adoptedAt: Double) {
        self.pid = pid
        self.startTime = startTime
        self.socketPath = socketPath
        self.deviceAliases = deviceAliases
        self.adoptedAt = adoptedAt
    }

    /// Whether `pid` is the adopted QEMU, alive (not a zombie) and started when it was.
    package func matches(pid other: Int32) -> Bool {
        other == pid && Posix.processExists(pid) && (startTime == nil || Self.startTime(of: pid) == startTime)
    }

    /// The start time of a process (`/proc/PID/stat` field 22), or `nil`.
    package static func startTime(of pid: Int32) -> UInt64? {
        guard let bytes = Posix.readFile("/proc/\(pid)/stat", limit: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Fields after the command name start at field 3 (state); the start time is field 22.
        let fields = bytes[(close + 2)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}

/// Markers for secrets: HMAC-SHA-256 of the value under a random key kept in the
/// state directory (`.marker-key`, 0600). A marker tells whether a secret changed
/// without revealing it, and unlike a bare hash it cannot be brute-forced offline
/// by someone who reads a record or a saved plan but not the key.
package struct SecretMarkers: Sendable {
    private let key: [UInt8]

    /// Loads the key of `store` (read without following a link; it must be this user's file),
    /// creating it on first use when `create`. Without `create` (a command that only reads) a
    /// missing key or state directory gives a fresh key kept in memory: no record can hold a
    /// marker made with a key that does not exist, so every marker reads as changed, as it should.
    package init(store: StateStore, create: Bool = true) throws(StateError) {
        if create { try store.prepare() }
        if let bytes = try store.readOwnFile(".marker-key", limit: 4096), bytes.count == 32 {
            key = bytes
            return
        }
        var fresh = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in fresh.indices { fresh[i] = UInt8.random(in: 0...255, using: &generator) }
        if create { try store.writeOwnFile(".marker-key", fresh) }
        key = fresh
    }

    /// The marker of a secret value.
    package func marker(for value: String) -> SecretMarker {
        SecretMarker("hmac-sha256:" + Self.hex(hmac(Array(value.utf8))))
    }

    /// Markers of every secret `spec` references, by field path; a secret that cannot
    /// be read yields an error naming the path, never the value.
    package func markers(for spec: VirtualMachineSpec) throws(StateError) -> [String: SecretMarker] {
        var out: [String: SecretMarker] = [:]
        for (path, reference) in spec.secretReferences {
            out[path] = marker(for: try Self.read(reference, path: path))
        }
        return out
    }

    /// Reads a secret reference with the one reader every secret goes through
    /// (``Secret/read(environment:)``: regular file of this user, mode 0600 or 0400, read
    /// non-blocking without following links, at most 64 KiB, never empty); errors name the
    /// field, the file or variable and the fix, never the value.
    package static func read(_ reference: SecretReference, path field: String) throws(StateError) -> String {
        let secret: Secret = switch reference {
        case .env(let name): .environment(name)
        case .file(let file): .file(file)
        }
        do { return try secret.read() } catch { throw StateError(message: "\(field): \(error.message)") }
    }

    private func hmac(_ message: [UInt8]) -> [UInt8] {
        let block = 64
        let k = key.count > block ? Self.sha256(key) : key
        let padded = k + [UInt8](repeating: 0, count: block - k.count)
        let inner = Self.sha256(padded.map { $0 ^ 0x36 } + message)
        return Self.sha256(padded.map { $0 ^ 0x5c } + inner)
    }

    private static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}
