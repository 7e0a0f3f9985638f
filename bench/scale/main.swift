// bench/scale: N VMs at once. (1) `qemuctl apply` of N manifests vs N raw QEMUs
// launched in parallel, each to running; (2) `qemuctl diff` of the N running VMs vs
// a raw client that connects to all N sockets at once and queries each (C, poll(2)), run
// two ways: as a program of its own (bench/raw-query, compiled here with the C compiler;
// it pays exec, loading and exit as the qemuctl command does) and as a call inside this
// process (no process at all); and qemuctl's peak RSS. Usage: scale [--vms N] [--parallel P] [--rounds R]
// (2) runs the three against the same N VMs (the ones qemuctl launched), rotating which
// goes first, R rounds; the figures are medians. Each side thus meets the same
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
var rounds = 9
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

// The raw client as a program: plain C, libc only.
let benchDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
let rawQuery = base + "/raw-query"
guard let cc = ["/usr/bin/cc", "/usr/bin/gcc", "/opt/swift/usr/bin/clang"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
      RawQEMU.measure(cc, ["-O2", "-I", benchDir + "/CBenchRaw/include", "-o", rawQuery, benchDir + "/raw-query/main.c", benchDir + "/CBenchRaw/raw.c"]).status == 0 else {
    print("scale: cannot compile \(benchDir)/raw-query/main.c with the C compiler")
    try? FileManager.default.removeItem(atPath: base)
    exit(1)
}

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

// (2) the raw client (in this process, and as a program) and `qemuctl diff` of the N running VMs, rotating.
var rawQueries: [Double] = [], rawPrograms: [Double] = [], diffs: [Double] = []
var diffRSS = 0
let sockets = (0..<count).map { "\(base)/state/vm\($0).sock" }
for round in 0..<rounds {
    let order = [0, 1, 2]
    for side in order[(round % 3)...] + order[..<(round % 3)] {
        if side == 0 {
            rawQueries.append(rawQueryAll(base: base, count: count))
        } else if side == 1 {
            let r = RawQEMU.measure(rawQuery, sockets)
            precondition(r.status == 0, "raw-query failed: \(r.status)")
            rawPrograms.append(r.ms)
        } else {
            let (status, ms, rss) = qemuctlRun(["diff", "-f", base + "/vms"])
            precondition(status == 0, "qemuctl diff reported differences or failed: \(status)")
            diffs.append(ms)
            diffRSS = max(diffRSS, rss)
        }
    }
}
let rawQueryMs = RawQEMU.median(rawQueries), rawProgramMs = RawQEMU.median(rawPrograms), diffMs = RawQEMU.median(diffs)
_ = qemuctlRun(["delete", "--force"] + (0..<count).map { "vm\($0)" })

print(String(format: "launch %d VMs: raw parallel %.0f ms, qemuctl apply %.0f ms (ratio %.2f), apply peak RSS %.1f MB",
             count, rawLaunch, applyMs, applyMs / rawLaunch, Double(applyRSS) / 1024))
print(String(format: "observe %d running VMs (medians of %d rotating rounds): qemuctl diff %.0f ms; raw client as a program %.0f ms (ratio %.2f), inside this process %.0f ms (ratio %.2f); diff peak RSS %.1f MB",
             count, rounds, diffMs, rawProgramMs, diffMs / rawProgramMs, rawQueryMs, diffMs / rawQueryMs, Double(diffRSS) / 1024))
print("  rounds (raw program / raw in-process / diff, ms): "
      + (0..<rounds).map { String(format: "%.0f/%.0f/%.0f", rawPrograms[$0], rawQueries[$0], diffs[$0]) }.joined(separator: " "))
// The load of freshly booted guests falls over the rounds; within a round the three run moments
// apart, so the median of the per-round ratios follows that drift less than the ratio of medians.
print(String(format: "  per-round ratios, median: diff / raw program %.2f, diff / raw in-process %.2f",
             RawQEMU.median((0..<rounds).map { diffs[$0] / rawPrograms[$0] }),
             RawQEMU.median((0..<rounds).map { diffs[$0] / rawQueries[$0] })))
print(String(format: "ratio: %.2f", applyMs / rawLaunch))
