import Foundation
import Synchronization

/// Finds an accelerator and CPU model that work with one QEMU binary on this host.
///
/// For ``AcceleratorMode/auto`` and ``AcceleratorMode/kvm``: KVM when `/dev/kvm`
/// opens read-write *and* QEMU starts a machine with it; then the best CPU model
/// QEMU accepts under KVM, tried in order: `host`, `host` without
/// `arch-capabilities` (nested hosts that lack MSR 0x10a abort on plain `host`),
/// and QEMU's default model. Otherwise TCG with QEMU's default model. Each step is
/// written to ``AcceleratorChoice/reasons``, so callers can say what was chosen
/// and why.
///
/// Each check starts QEMU with `-S` (no guest code runs) and asks it to quit over
/// QMP on stdin; results are cached per binary (path and modification time),
/// machine type and request, for the life of the process.
///
/// - Note: a KVM that starts machines can still be unable to boot some guests
///   (on nested hosts a Linux kernel can hang early); that cannot be seen without
///   booting one. Ask for `tcg` explicitly for such hosts.
public final class AcceleratorProbe: Sendable {
    /// The process-wide probe (and its cache).
    public static let shared = AcceleratorProbe()

    private struct Key: Hashable {
        var binary: String
        var mtime: Int
        var machine: String
        var requested: AcceleratorMode
    }
    private let cache = Mutex<[Key: AcceleratorChoice]>([:])
    private let kvmDevice: String

    /// Creates a probe; `kvmDevice` is injectable for tests.
    public init(kvmDevice: String = "/dev/kvm") {
        self.kvmDevice = kvmDevice
    }

    /// Chooses the accelerator and CPU model for `requested`.
    ///
    /// - Throws: ``QEMUDiscoveryError`` (code `acceleratorUnavailable`) when `kvm` is
    ///   requested explicitly and cannot work, saying why.
    public func probe(binary: String, machineType: String = "q35", requested: AcceleratorMode) async throws(QEMUDiscoveryError) -> AcceleratorChoice {
        let mtime = (try? FileManager.default.attributesOfItem(atPath: binary)[.modificationDate] as? Date)
            .map { Int($0.timeIntervalSince1970) } ?? 0
        let key = Key(binary: binary, mtime: mtime, machine: machineType, requested: requested)
        if let hit = cache.withLock({ $0[key] }) { return hit }
        let choice = try await decide(binary: binary, machineType: machineType, requested: requested)
        cache.withLock { $0[key] = choice }
        return choice
    }

    private func decide(binary: String, machineType: String, requested: AcceleratorMode) async throws(QEMUDiscoveryError) -> AcceleratorChoice {
        if requested == .tcg {
            return AcceleratorChoice(accelerator: .tcg, reasons: ["tcg requested"])
        }
        var reasons: [String] = []
        let fd = open(kvmDevice, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let why = "\(kvmDevice) cannot be opened read-write: \(String(cString: strerror(errno)))"
            if requested == .kvm {
                throw QEMUDiscoveryError(code: .acceleratorUnavailable, message: "KVM was requested but \(why); use accel: tcg or auto, or give this user access to \(kvmDevice)")
            }
            return AcceleratorChoice(accelerator: .tcg, reasons: [why, "using tcg (software emulation)"])
        }
        close(fd)
        for (model, features) in [("host", [String: Bool]()), ("host", ["arch-capabilities": false]), (nil, [:])] as [(String?, [String: Bool])] {
            let label = model.map { m in ([m] + features.map { "\($0.value ? "+" : "-")\($0.key)" }).joined(separator: ",") } ?? "QEMU's default model"
            let failure = await Self.tryStart(binary: binary, machineType: machineType, cpu: model, features: features)
            if let failure {
                reasons.append("kvm with -cpu \(label): \(failure)")
                continue
            }
            reasons.append("kvm with -cpu \(label): starts")
            return AcceleratorChoice(accelerator: .kvm, cpuModel: model, cpuFeatures: features, reasons: reasons)
        }
        if requested == .kvm {
            throw QEMUDiscoveryError(code: .acceleratorUnavailable, message: "KVM was requested but QEMU cannot start a machine with it: \(reasons.joined(separator: "; "))")
        }
        reasons.append("using tcg (software emulation)")
        return AcceleratorChoice(accelerator: .tcg, reasons: reasons)
    }

    /// Starts QEMU paused with KVM and the CPU model, then quits it over QMP on
    /// stdin; returns nil when it worked, else QEMU's complaint.
    private static func tryStart(binary: String, machineType: String, cpu: String?, features: [String: Bool]) async -> String? {
        var args = ["-machine", machineType, "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none",
                    "-m", "64", "-S", "-qmp", "stdio"]
        if let cpu {
            args += ["-cpu", ([cpu] + features.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value ? "on" : "off")" }).joined(separator: ",")]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = args
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        let status: Int32? = await withCheckedContinuation { continuation in
            process.terminationHandler = { p in continuation.resume(returning: p.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: nil)
                return
            }
            input.fileHandleForWriting.write(Data(#"{"execute":"qmp_capabilities"}{"execute":"quit"}"#.utf8))
            try? input.fileHandleForWriting.close()
        }
        guard let status else { return "cannot run \(binary)" }
        if status == 0 { return nil }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let firstError = text.split(separator: "\n").first { $0.contains("error") } ?? text.split(separator: "\n").first ?? "exit status \(status)"
        return String(firstError.replacingOccurrences(of: "\(binary): ", with: ""))
    }
}
