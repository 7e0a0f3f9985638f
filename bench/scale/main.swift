// bench/scale: N VMs at once. (1) `qemuctl apply` of N manifests vs N raw QEMUs
// launched in parallel, each to running; (2) `qemuctl diff` of the N running VMs vs
// a raw client that connects to all N sockets concurrently and queries each; and
// qemuctl's peak RSS. Usage: scale [--vms N] [--parallel P]
// --parallel defaults to N: qemuctl launches as many at once as the raw side does.
// Before timing, one VM is applied and deleted in the same state directory, so the
// once-per-host accelerator probe (cached there) is not part of the figure, as the
// raw side's own probe is not.
// Last line: "ratio: X.XX" = apply ÷ raw parallel launch.

import BenchSupport
import CBenchRaw
import Foundation

var count = 50
var parallel: Int? = nil
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    switch a {
    case "--vms": count = it.next().flatMap(Int.init) ?? count
    case "--parallel": parallel = it.next().flatMap(Int.init)
    default: print("usage: scale [--vms N] [--parallel P]"); exit(2)
    }
}
let qemu = "/usr/bin/qemu-system-x86_64"
let qemuctl = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/qemuctl"
let accel = RawQEMU.accelerator(qemu)
let base = "/tmp/qc-scale-\(getpid())"
try FileManager.default.createDirectory(atPath: base + "/vms", withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: base) }
for i in 0..<count {
    try RawQEMU.manifest("vm\(i)", accel: accel).write(toFile: "\(base)/vms/vm\(i).yaml", atomically: true, encoding: .utf8)
}
let env = ["QEMUCTL_STATE_DIR": base + "/state"]

/// Runs qemuctl and returns (status, wall ms, peak RSS KiB).
func qemuctlRun(_ args: [String]) -> (Int32, Double, Int) {
    let r = RawQEMU.measure(qemuctl, args, environment: env)
    return (r.status, r.ms, r.maxRSSKiB)
}

/// Connects, negotiates and asks query-status on its own blocking socket.
func rawQuery(_ socket: String) -> Bool {
    let fd = socket_unix(socket)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 8192)
    func line() -> Bool {
        var have = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + have, $0.count - have) }
            if n <= 0 { return false }
            have += n
            if buffer[0..<have].contains(10) { return true }
        }
    }
    func send(_ s: String) { _ = Array(s.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
    guard line() else { return false }
    send("{\"execute\":\"qmp_capabilities\"}\r\n")
    guard line() else { return false }
    send("{\"execute\":\"query-status\"}\r\n")
    return line()
}

func socket_unix(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    if rc != 0 { close(fd); return -1 }
    return fd
}

let width = parallel ?? count
print("scale: \(count) tiny VMs under \(accel), qemuctl --parallel \(width)")

// Warm-up: the accelerator probe runs once per state directory and QEMU binary.
try RawQEMU.manifest("warmup", accel: accel).write(toFile: "\(base)/warmup.yaml", atomically: true, encoding: .utf8)
precondition(qemuctlRun(["apply", "-f", base + "/warmup.yaml"]).0 == 0, "qemuctl apply (warm-up) failed")
_ = qemuctlRun(["delete", "--force", "warmup"])

// (1a) raw parallel launch.
let clock = ContinuousClock()
var start = clock.now
var pids: [Int32] = []
for i in 0..<count { pids.append(RawQEMU.spawn(qemu, RawQEMU.args(socket: "\(base)/raw\(i).sock", accel: accel))) }
DispatchQueue.concurrentPerform(iterations: count) { i in close(RawQEMU.waitRunning("\(base)/raw\(i).sock")) }
let rawLaunch = RawQEMU.ms(clock.now - start)

// (2a) raw concurrent query of N sockets.
start = clock.now
nonisolated(unsafe) var answered = 0
let lock = NSLock()
DispatchQueue.concurrentPerform(iterations: count) { i in
    if rawQuery("\(base)/raw\(i).sock") { lock.lock(); answered += 1; lock.unlock() }
}
let rawQueryMs = RawQEMU.ms(clock.now - start)
precondition(answered == count, "raw client: only \(answered) of \(count) answered")
pids.forEach(RawQEMU.kill)

// (1b) qemuctl apply of N manifests.
let (applyStatus, applyMs, applyRSS) = qemuctlRun(["apply", "-f", base + "/vms", "--parallel", String(width)])
precondition(applyStatus == 0, "qemuctl apply failed: \(applyStatus)")
// (2b) qemuctl diff of the N running VMs.
let (diffStatus, diffMs, diffRSS) = qemuctlRun(["diff", "-f", base + "/vms"])
precondition(diffStatus == 0, "qemuctl diff reported differences or failed: \(diffStatus)")
_ = qemuctlRun(["delete", "--force"] + (0..<count).map { "vm\($0)" })

print(String(format: "launch %d VMs: raw parallel %.0f ms, qemuctl apply %.0f ms (ratio %.2f), apply peak RSS %.1f MB",
             count, rawLaunch, applyMs, applyMs / rawLaunch, Double(applyRSS) / 1024))
print(String(format: "observe %d running VMs: raw concurrent query-status %.0f ms, qemuctl diff %.0f ms (ratio %.2f), diff peak RSS %.1f MB",
             count, rawQueryMs, diffMs, diffMs / rawQueryMs, Double(diffRSS) / 1024))
print(String(format: "ratio: %.2f", applyMs / rawLaunch))
