// bench/qmp-rtt: query-status round trips per second, our QMP client vs a raw C
// client (blocking socket, write, read to newline), against one QEMU, in one run.
//
// Usage: qmp-rtt [--rounds N] [--seconds S]
// Last line: "ratio: X.XX" = ours ÷ raw C (ops/s medians).

import CBenchRaw
import Foundation
import QMP

var only: String? = nil
var rounds = 5
var seconds = 2.0
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
    switch a {
    case "--rounds": rounds = Int(arguments.next() ?? "") ?? rounds
    case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
    case "--only": only = arguments.next()
    default:
        FileHandle.standardError.write(Data("usage: qmp-rtt [--rounds N] [--seconds S]\n".utf8))
        exit(2)
    }
}

func qemuPath() -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") + ["/usr/bin"] {
        let p = "\(dir)/qemu-system-x86_64"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    fatalError("qemu-system-x86_64 not found: install qemu-system-x86")
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

func percentile(_ xs: [Int64], _ p: Double) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return Double(s[min(s.count - 1, Int(Double(s.count) * p))]) / 1000
}

let dir = NSTemporaryDirectory() + "qmp-rtt-\(getpid())"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
let oursSocket = dir + "/ours.sock"
let rawSocket = dir + "/raw.sock"
let qemu = Process()
qemu.executableURL = URL(fileURLWithPath: qemuPath())
qemu.arguments = ["-S", "-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35", "-accel", "tcg", "-m", "64",
                  "-qmp", "unix:\(oursSocket),server=on,wait=off", "-qmp", "unix:\(rawSocket),server=on,wait=off"]
qemu.standardOutput = FileHandle.nullDevice
try qemu.run()
defer {
    qemu.terminate()
    qemu.waitUntilExit()
    try? FileManager.default.removeItem(atPath: dir)
}

var client: QMPClient? = nil
for _ in 0..<500 {
    if let c = try? await QMPClient.connect(to: oursSocket, timeout: .seconds(2)) { client = c; break }
    usleep(10_000)
}
guard let client else { fatalError("cannot connect to QEMU at \(oursSocket)") }
var connectedFD: Int32 = -1
for _ in 0..<500 {
    connectedFD = cbench_qmp_connect(rawSocket)
    if connectedFD >= 0 { break }
    usleep(10_000)
}
let rawFD = connectedFD
guard rawFD >= 0 else { fatalError("raw client cannot connect to \(rawSocket)") }

print("qmp-rtt: QEMU \(client.greeting.version), \(rounds) alternating rounds of \(seconds) s, query-status")

@concurrent func oursRound(_ seconds: Double) async throws -> (Double, [Int64]) {
    var latencies: [Int64] = []
    latencies.reserveCapacity(100_000)
    let end = cbench_now_ns() + Int64(seconds * 1e9)
    while true {
        let t0 = cbench_now_ns()
        if t0 >= end { break }
        _ = try await client.queryStatus()
        latencies.append(cbench_now_ns() - t0)
    }
    return (Double(latencies.count) / seconds, latencies)
}

func rawRound(_ seconds: Double, withID: Bool = true) -> (Double, [Int64]) {
    var latencies = [Int64](repeating: 0, count: 200_000)
    let n = latencies.withUnsafeMutableBufferPointer { cbench_qmp_rounds(rawFD, withID ? 1 : 0, seconds, $0.baseAddress, $0.count) }
    precondition(n >= 0, "raw client failed")
    return (Double(n) / seconds, Array(latencies.prefix(min(n, latencies.count))))
}

@concurrent func pipelinedRound(_ seconds: Double, inFlight: Int) async throws -> Double {
    let end = cbench_now_ns() + Int64(seconds * 1e9)
    let counts = try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<inFlight {
            group.addTask {
                var n = 0
                while cbench_now_ns() < end {
                    _ = try await client.queryStatus()
                    n += 1
                }
                return n
            }
        }
        return try await group.reduce(0, +)
    }
    return Double(counts) / seconds
}

if let only {
    // Profiling aid: one client only, for `perf stat`.
    let rate = only == "raw" ? rawRound(seconds).0 : only == "raw-noid" ? rawRound(seconds, withID: false).0 : try await oursRound(seconds).0
    print(String(format: "%@: %.0f ops/s", only, rate))
    qemu.terminate()
    qemu.waitUntilExit()
    exit(0)
}

// Warm-up.
_ = try await oursRound(0.3)
_ = rawRound(0.3)

var oursRates: [Double] = [], rawRates: [Double] = [], bareRates: [Double] = []
var oursLat: [Int64] = [], rawLat: [Int64] = []
for r in 0..<rounds {
    // Rotate the order so no client always runs first.
    for step in 0..<3 {
        switch (r + step) % 3 {
        case 0: let (o, ol) = try await oursRound(seconds); oursRates.append(o); oursLat += ol
        case 1: let (w, wl) = rawRound(seconds); rawRates.append(w); rawLat += wl
        default: bareRates.append(rawRound(seconds, withID: false).0)
        }
    }
    print(String(format: "round %d: ours %.0f ops/s, raw C %.0f ops/s, raw C without ids %.0f ops/s",
                 r + 1, oursRates.last!, rawRates.last!, bareRates.last!))
}
let pipelined = try await pipelinedRound(seconds, inFlight: 8)

print(String(format: "ours:  median %.0f ops/s, latency p50 %.1f µs, p99 %.1f µs", median(oursRates), percentile(oursLat, 0.5), percentile(oursLat, 0.99)))
print(String(format: "raw C: median %.0f ops/s, latency p50 %.1f µs, p99 %.1f µs (same bytes on the wire: each command with its id)", median(rawRates), percentile(rawLat, 0.5), percentile(rawLat, 0.99)))
print(String(format: "raw C without ids: median %.0f ops/s (QEMU answers id-less commands faster; ours ÷ this = %.2f)", median(bareRates), median(oursRates) / median(bareRates)))
print(String(format: "ours, 8 calls in flight: %.0f ops/s", pipelined))
print(String(format: "ratio: %.2f", median(oursRates) / median(rawRates)))
