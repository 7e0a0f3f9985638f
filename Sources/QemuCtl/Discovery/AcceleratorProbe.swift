#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QMP
import Synchronization

/// Finds the accelerator and CPU model that work with one QEMU binary on this host, and says why.
///
/// Rules:
/// - ``AcceleratorMode/tcg``: TCG with QEMU's default CPU model; nothing is run.
/// - ``AcceleratorMode/kvm`` and ``AcceleratorMode/auto``: KVM needs `/dev/kvm` to open read-write *and* QEMU
///   to start a paused VM with it. CPU models are tried in order: `host`; on x86, `host` with
///   `arch-capabilities=off` (on hosts whose KVM lacks MSR 0x10a, plain `host` aborts QEMU); then QEMU's default
///   model. The first that starts wins.
/// - When KVM cannot work, `auto` falls back to TCG (the reasons say why) and an explicit `kvm` throws
///   ``QEMUDiscoveryError/Code/acceleratorUnavailable`` with QEMU's own message.
///
/// Results are cached in-process per binary path, its modification time, machine type and mode; concurrent
/// callers share one probe.
///
/// ```swift
/// let choice = try await AcceleratorProbe.shared.probe(binary: qemu, machineType: "q35", requested: .auto)
/// print(choice.accelerator, choice.cpuModel ?? "default", choice.reasons)
/// ```
public final class AcceleratorProbe: Sendable {
    /// The process-wide probe (and cache).
    public static let shared = AcceleratorProbe()

    private struct Key: Hashable { var path: String; var mtime: Double; var machine: String; var mode: AcceleratorMode }
    private typealias Outcome = Task<Result<AcceleratorChoice, QEMUDiscoveryError>, Never>
    /// One probe per key: callers that ask while it runs wait for it (many VMs launched at once
    /// on a fresh state directory would otherwise each start QEMU to probe). Failures are dropped
    /// once reported, so a later call tries again.
    private let cache = Mutex<[Key: Outcome]>([:])
    private let kvmDevice: String
    private let timeout: Duration

    /// Creates a probe with its own cache.
    ///
    /// - Parameters:
    ///   - kvmDevice: The KVM device node (tests point it elsewhere).
    ///   - timeout: How long one QEMU trial may take before it is killed and counted as a failure.
    public init(kvmDevice: String = "/dev/kvm", timeout: Duration = .seconds(10)) {
        self.kvmDevice = kvmDevice; self.timeout = timeout
    }

    /// Probes (or returns the cached result).
    ///
    /// - Parameters:
    ///   - binary: The QEMU binary (from ``QEMUDiscovery/findBinary(arch:configuredPath:environment:)``).
    ///   - machineType: The board to try; `nil` uses `q35` for x86 binaries and `virt` otherwise.
    ///   - requested: The configuration's accelerator mode.
    /// - Returns: The choice, with one reason per step.
    /// - Throws: ``QEMUDiscoveryError/Code/acceleratorUnavailable`` when `kvm` was requested and cannot work;
    ///   ``QEMUDiscoveryError/Code/probeFailed`` when the binary cannot be run at all.
    public func probe(binary: String, machineType: String? = nil,
                      requested: AcceleratorMode) async throws(QEMUDiscoveryError) -> AcceleratorChoice {
        let x86 = binary.hasSuffix("x86_64") || binary.hasSuffix("i386")
        let machine = machineType ?? (x86 ? "q35" : "virt")
        let mtime = Double(Posix.sizeAndModificationTime(binary)?.mtime ?? 0)
        let key = Key(path: binary, mtime: mtime, machine: machine, mode: requested)
        let outcome = cache.withLock { entries in
            if let running = entries[key] { return running }
            let started = Outcome {
                do throws(QEMUDiscoveryError) {
                    return .success(try await self.run(binary: binary, machine: machine, x86: x86, requested: requested))
                } catch {
                    return .failure(error)
                }
            }
            entries[key] = started
            return started
        }
        switch await outcome.value {
        case .success(let choice):
            return choice
        case .failure(let error):
            cache.withLock { entries in if entries[key] == outcome { entries[key] = nil } }
            throw error
        }
    }

    private func run(binary: String, machine: String, x86: Bool,
                     requested: AcceleratorMode) async throws(QEMUDiscoveryError) -> AcceleratorChoice {
        if requested == .tcg {
            return AcceleratorChoice(accelerator: .tcg, reasons: ["tcg requested"])
        }
        var reasons: [String] = []
        let fd = open(kvmDevice, O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let why = "\(kvmDevice) cannot be opened read-write: \(String(cString: strerror(errno)))"
            if requested == .kvm {
                throw QEMUDiscoveryError(code: .acceleratorUnavailable, message: "KVM was requested but \(why); use accel tcg or auto, or give this user access to \(kvmDevice)")
            }
            return AcceleratorChoice(accelerator: .tcg, reasons: [why, "using tcg (software emulation)"])
        }
        close(fd)
        reasons.append("\(kvmDevice) opens read-write")

        var candidates: [(model: String?, features: [String: Bool])] = [("host", [:])]
        if x86 { candidates.append(("host", ["arch-capabilities": false])) }
        candidates.append((nil, [:]))
        var lastError = ""
        for c in candidates {
            var args = ["-accel", "kvm", "-machine", "type=" + machine, "-nodefaults", "-no-user-config",
                        "-display", "none", "-m", "64", "-S", "-qmp", "stdio"]
            let label = c.model.map { m in ([m] + c.features.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value ? "on" : "off")" }).joined(separator: ",") }
            if let label { args += ["-cpu", label] }
            let r = try await trial(binary: binary, arguments: args)
            if r.ok {
                reasons.append("qemu -accel kvm -cpu \(label ?? "(default)") starts")
                return AcceleratorChoice(accelerator: .kvm, cpuModel: c.model, cpuFeatures: c.features, reasons: reasons)
            }
            lastError = r.message
            reasons.append("qemu -accel kvm -cpu \(label ?? "(default)") fails: \(r.message)")
        }
        if requested == .kvm {
            throw QEMUDiscoveryError(code: .acceleratorUnavailable,
                                     message: "KVM was requested but QEMU cannot start a machine with it: \(lastError)")
        }
        reasons.append("using tcg (software emulation)")
        return AcceleratorChoice(accelerator: .tcg, reasons: reasons)
    }

    /// Starts QEMU paused with QMP on stdin/stdout, asks it to quit, and reports whether it got that far.
    private func trial(binary: String, arguments: [String]) async throws(QEMUDiscoveryError) -> (ok: Bool, message: String) {
        let timeout = nanoseconds(self.timeout)
        // Like the VM itself, the probe gets no inherited environment: a secret passed to this process in a
        // variable must not be readable in the probe's /proc/PID/environ. The QMP commands are in the pipe
        // before QEMU starts: one that aborts early cannot make this process's write fail.
        let r = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
            Posix.run(binary, arguments, environment: Instance.minimalEnvironment(),
                      input: Array("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n".utf8),
                      collectOutput: true, deadline: timeout)
        }
        if let spawnError = r.spawnError {
            throw QEMUDiscoveryError(code: .probeFailed, message: "cannot run \(binary): \(spawnError)")
        }
        let ok = !r.timedOut && r.status == 0 && r.stdout.contains("\"return\"")
        if ok { return (true, "") }
        let firstErrorLine = r.stderr.split(separator: "\n").first { $0.contains("error") || $0.contains("Assertion") }
            ?? r.stderr.split(separator: "\n").first
        let message = r.timedOut ? "did not answer within \(self.timeout); killed"
            : firstErrorLine.map(String.init) ?? (r.status > 128 ? "exit by signal \(r.status - 128)" : "exit \(r.status)")
        return (false, Posix.trimmed(message))
    }
}
