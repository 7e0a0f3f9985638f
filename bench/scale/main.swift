// bench/scale: N VMs at once. (1) `qemuctl apply` of N manifests vs N raw QEMUs
// launched in parallel, each to running; (2) `qemuctl diff` of the N running VMs vs
// a raw client that connects to all N sockets at once and queries each (C, poll(2)); and
// qemuctl's peak RSS. Usage: scale [--vms N] [--parallel P] [--rounds R]
// (2) runs both sides against the same N VMs (the ones qemuctl launched), alternating
// which goes first, R rounds; the figures are medians. Each side thus meets the same
// QEMUs in the same state: QEMUs qemuctl launches run in sessions of their own, which
// the kernel's autogroup scheduling treats differently from children of this process.
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
var rounds = 5
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    switch a {
    case "--vms": count = it.next().flatMap(Int.init) ?? count
    case "--parallel": parallel = it.next().flatMap(Int.init)
    case "--rounds": rounds = max(1, it.next().flatMap(Int.init) ?? rounds)
    default: print("usage: scale [--vms N] [--parallel P] [--rounds R]"); exit(2)
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

pids.forEach(RawQEMU.kill)

// (1b) qemuctl apply of N manifests.
let (applyStatus, applyMs, applyRSS) = qemuctlRun(["apply", "-f", base + "/vms", "--parallel", String(width)])
precondition(applyStatus == 0, "qemuctl apply failed: \(applyStatus)")

/// The raw client (C, one thread, poll(2)): connects to the N sockets at once, each
/// `qmp_capabilities` and `query-status`; returns ms.
func rawQueryAll(base: String, count: Int) -> Double {
    let paths = (0..<count).map { strdup("\(base)/state/vm\($0).sock") }
    defer { paths.forEach { free($0) } }
    let clock = ContinuousClock()
    let start = clock.now
    let answered = paths.map { UnsafePointer($0) }.withUnsafeBufferPointer { cbench_query_all($0.baseAddress, Int32(count)) }
    let ms = RawQEMU.ms(clock.now - start)
    precondition(answered == count, "raw client: only \(answered) of \(count) answered")
    return ms
}

// (2) the raw client and `qemuctl diff` of the N running VMs, alternating.
var rawQueries: [Double] = [], diffs: [Double] = []
var diffRSS = 0
for round in 0..<rounds {
    for side in (round % 2 == 0 ? [0, 1] : [1, 0]) {
        if side == 0 {
            rawQueries.append(rawQueryAll(base: base, count: count))
        } else {
            let (status, ms, rss) = qemuctlRun(["diff", "-f", base + "/vms"])
            precondition(status == 0, "qemuctl diff reported differences or failed: \(status)")
            diffs.append(ms)
            diffRSS = max(diffRSS, rss)
        }
    }
}
let rawQueryMs = RawQEMU.median(rawQueries), diffMs = RawQEMU.median(diffs)
_ = qemuctlRun(["delete", "--force"] + (0..<count).map { "vm\($0)" })

print(String(format: "launch %d VMs: raw parallel %.0f ms, qemuctl apply %.0f ms (ratio %.2f), apply peak RSS %.1f MB",
             count, rawLaunch, applyMs, applyMs / rawLaunch, Double(applyRSS) / 1024))
print(String(format: "observe %d running VMs (medians of %d alternating rounds): raw concurrent query-status %.0f ms, qemuctl diff %.0f ms (ratio %.2f), diff peak RSS %.1f MB",
             count, rounds, rawQueryMs, diffMs, diffMs / rawQueryMs, Double(diffRSS) / 1024))
print("  rounds (raw / diff, ms): " + zip(rawQueries, diffs).map { String(format: "%.0f/%.0f", $0, $1) }.joined(separator: " "))
print(String(format: "ratio: %.2f", applyMs / rawLaunch))
