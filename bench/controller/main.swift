// bench/controller: `qemuctl controller` (the qemuctl next to this program) on tiny VMs.
// (1) death → replacement: a VM with restartPolicy always is killed (SIGKILL); the time until
//     its new QEMU answers QMP with status running, next to a raw QEMU exec → running, and next to
//     the replacement's own command line exec'd directly (qemuctl's VM has more devices: monitors,
//     console socket, hot-plug ports). Each run kills a different VM, so every restart is a first
//     one, which the controller makes at once (backoff starts with the second restart in a row).
// (2) manifest write → change read back: a disk's throttle edited in the manifest file; the
//     time until qom-get of its throttle group over QMP returns the new limit (median and max).
// (3) idle: --vms N VMs (paused, so they cost the host nothing) under one controller, its CPU
//     time over --idle seconds (two resyncs at the default 30 s fall in 60 s) and its RSS.
//
// Usage: controller [--runs N] [--vms N] [--idle SECONDS]

import BenchSupport
import CBenchRaw
import Foundation

var runs = 5
var vmCount = 20
var idleSeconds = 60.0
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    switch a {
    case "--runs": runs = it.next().flatMap(Int.init) ?? runs
    case "--vms": vmCount = it.next().flatMap(Int.init) ?? vmCount
    case "--idle": idleSeconds = it.next().flatMap(Double.init) ?? idleSeconds
    default: print("usage: controller [--runs N] [--vms N] [--idle SECONDS]"); exit(2)
    }
}
let qemu = "/usr/bin/qemu-system-x86_64"
let qemuctl = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/qemuctl"
guard FileManager.default.isExecutableFile(atPath: qemuctl) else {
    print("build qemuctl next to this benchmark: swift build -c release --product qemuctl"); exit(2)
}
let accel = RawQEMU.accelerator(qemu)
let base = "/tmp/qc-bench-ctl-\(getpid())"
let state = base + "/state"
try FileManager.default.createDirectory(atPath: base + "/vms", withIntermediateDirectories: true)

/// A running controller (stdout and stderr to files).
final class Controller {
    let pid: Int32
    init(_ extra: [String] = []) {
        var env = ProcessInfo.processInfo.environment
        env["QEMUCTL_STATE_DIR"] = state
        let cenv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let cargs = ([qemuctl, "controller", "-f", base + "/vms", "--stop-timeout", "1"] + extra).map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) }; cenv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, base + "/controller.out", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, base + "/controller.err", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        var p: pid_t = 0
        guard posix_spawn(&p, qemuctl, &actions, nil, cargs, cenv) == 0 else { fatalError("cannot start \(qemuctl)") }
        pid = p
    }
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

func write(_ name: String, _ text: String) {
    try! text.write(toFile: "\(base)/vms/\(name).yaml", atomically: true, encoding: .utf8)
}

func pidOf(_ name: String) -> Int32? {
    (try? String(contentsOfFile: "\(state)/\(name)/qemu.pid", encoding: .utf8))
        .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

/// Alive and not a zombie (PID 1 may not reap a QEMU that exited).
func alive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}

func waitFor(_ seconds: Double = 60, _ condition: () -> Bool) {
    let end = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > end { print("timed out; see \(base)/controller.err"); exit(1) }
        usleep(2000)
    }
}

func manifest(_ name: String, policy: String = "always", runState: String = "running", throttle: String? = nil) -> String {
    var text = RawQEMU.manifest(name, accel: accel) + "\n  restartPolicy: \(policy)\n  runState: \(runState)\n"
    if let throttle {
        text += "  disks:\n    - name: d\n      file: {path: \(base)/\(name).raw, format: raw}\n      create: {size: 1MiB}\n      throttle: {bps: \(throttle)B}\n"
    }
    return text
}

func qomLimit(_ socket: String) -> Int? {
    let fd = cbench_qmp_connect(socket)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    let request = #"{"execute": "qom-get", "arguments": {"path": "/objects/tg-d", "property": "limits"}}"# + "\n"
    _ = request.withCString { Foundation.write(fd, $0, strlen($0)) }
    var reply = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !reply.contains(UInt8(ascii: "\n")) || !String(decoding: reply, as: UTF8.self).contains("return") {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { return nil }
        reply += buffer[0..<n]
        if String(decoding: reply, as: UTF8.self).contains("\"error\"") { return nil }
    }
    let text = String(decoding: reply, as: UTF8.self)
    guard let r = text.range(of: #""bps-total": "#) else { return nil }
    return Int(text[r.upperBound...].prefix { $0.isNumber })
}

print("controller: tiny VMs under \(accel); qemuctl \(qemuctl)")

// MARK: - (1) death → replacement
for i in 0..<runs { write("r\(i)", manifest("r\(i)")) }
write("t", manifest("t", throttle: "10485760"))
var ctl = Controller()
waitFor { (0..<runs).allSatisfy { pidOf("r\($0)").map(alive) ?? false } && (pidOf("t").map(alive) ?? false) }
sleep(2)  // let the follower monitors attach
// The replacement's own command line (qemuctl's VM: QMP and follower monitors, serial console socket,
// hot-plug root ports) exec'd directly too, with its paths moved to a directory of its own: what the
// same QEMU costs without the controller.
let ownArgs: [String] = {
    let bytes = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pidOf("r0")!)/cmdline"))) ?? Data()
    return bytes.split(separator: 0).dropFirst().map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: state, with: base + "/own") }
}()
try FileManager.default.createDirectory(atPath: base + "/own/r0", withIntermediateDirectories: true)
var raw: [Double] = [], own: [Double] = [], replaced: [Double] = []
for i in 0..<runs {
    let sock = "\(base)/raw\(i).sock"
    let clock = ContinuousClock()
    var start = clock.now
    let rawPid = RawQEMU.spawn(qemu, RawQEMU.args(socket: sock, accel: accel))
    close(RawQEMU.waitRunning(sock))
    raw.append(RawQEMU.ms(clock.now - start))
    RawQEMU.kill(rawPid)

    for f in ["r0.sock", "r0/events.sock", "r0/console.sock", "r0/qemu.pid"] { unlink(base + "/own/" + f) }
    start = clock.now
    let ownPid = RawQEMU.spawn(qemu, ownArgs)
    close(RawQEMU.waitRunning(base + "/own/r0.sock"))
    own.append(RawQEMU.ms(clock.now - start))
    RawQEMU.kill(ownPid)

    let old = pidOf("r\(i)")!
    start = clock.now
    kill(old, SIGKILL)
    waitFor { pidOf("r\(i)").map { $0 != old && alive($0) } ?? false }
    close(RawQEMU.waitRunning("\(state)/r\(i).sock"))
    replaced.append(RawQEMU.ms(clock.now - start))
}
print(String(format: "raw QEMU exec → running:                      median %.1f ms", RawQEMU.median(raw)))
print(String(format: "same with qemuctl's command line → running:  median %.1f ms", RawQEMU.median(own)))
print(String(format: "SIGKILL → replacement answering QMP, running: median %.1f ms (max %.1f)",
             RawQEMU.median(replaced), replaced.max() ?? 0))
print(String(format: "ratio: %.2f against the raw launch, %.2f against qemuctl's command line exec'd directly",
             RawQEMU.median(replaced) / RawQEMU.median(raw), RawQEMU.median(replaced) / RawQEMU.median(own)))

// MARK: - (2) manifest write → change read back
var edits: [Double] = []
for i in 0..<max(5, runs) {
    let bps = (11 + i) << 20
    let clock = ContinuousClock()
    let start = clock.now
    write("t", manifest("t", throttle: "\(bps)"))
    waitFor(30) { qomLimit("\(state)/t.sock") == bps }
    edits.append(RawQEMU.ms(clock.now - start))
    usleep(300_000)
}
print(String(format: "manifest write → throttle read back over QMP: median %.0f ms, max %.0f ms (%d edits)",
             RawQEMU.median(edits), edits.max() ?? 0, edits.count))
ctl.stop()
for i in 0..<runs { try? FileManager.default.removeItem(atPath: "\(base)/vms/r\(i).yaml") }
try? FileManager.default.removeItem(atPath: "\(base)/vms/t.yaml")

// MARK: - (3) idle
for i in 0..<vmCount { write("idle\(i)", manifest("idle\(i)", policy: "always", runState: "paused")) }
ctl = Controller(["--prune"])
waitFor(120) { (0..<vmCount).allSatisfy { pidOf("idle\($0)").map(alive) ?? false } }
sleep(3)
func cpuTicks(_ pid: Int32) -> Double {
    let stat = try! String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = stat[stat.index(stat.lastIndex(of: ")")!, offsetBy: 2)...].split(separator: " ")
    return Double(fields[11])! + Double(fields[12])!  // utime + stime (fields 14 and 15)
}
func status(_ key: String, of pid: Int32) -> String {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").first { $0.hasPrefix(key) }.map { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().joined(separator: " ") } ?? "?"
}
let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
let before = cpuTicks(ctl.pid)
let wall = Date()
usleep(UInt32(idleSeconds * 1_000_000))
let used = (cpuTicks(ctl.pid) - before) / hz
let elapsed = Date().timeIntervalSince(wall)
print(String(format: "idle with %d VMs over %.0f s: %.2f s of CPU = %.2f%% of a core", vmCount, elapsed, used, used / elapsed * 100))
print("controller RSS: \(status("VmRSS:", of: ctl.pid)) (peak \(status("VmHWM:", of: ctl.pid)))")
ctl.stop()
for p in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init) {
    if let cmd = try? String(contentsOfFile: "/proc/\(p)/cmdline", encoding: .utf8), cmd.contains(state), cmd.contains("qemu-system") {
        kill(p, SIGKILL)
    }
}
try? FileManager.default.removeItem(atPath: base)
