// bench/apply: exec → running for a tiny VM, (a) raw QEMU and (b) the whole
// `qemuctl apply -f one.yaml` command (process start, manifest, observe, plan,
// launch, record), alternating, in one run; each VM is deleted between runs.
//
// Usage: apply [--runs N]      Last line: "ratio: X.XX" = (b) ÷ (a), medians.

import BenchSupport
import CBenchRaw
import Foundation

var runs = 15
var argsIterator = CommandLine.arguments.dropFirst().makeIterator()
while let a = argsIterator.next() {
    if a == "--runs", let n = argsIterator.next().flatMap(Int.init) { runs = n } else { print("usage: apply [--runs N]"); exit(2) }
}
let qemu = "/usr/bin/qemu-system-x86_64"
let qemuctl = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/qemuctl"
guard FileManager.default.isExecutableFile(atPath: qemuctl) else {
    print("build qemuctl next to this benchmark: swift build -c release --product qemuctl"); exit(2)
}
let accel = RawQEMU.accelerator(qemu)
let base = "/tmp/qc-bench-apply-\(getpid())"
try FileManager.default.createDirectory(atPath: base + "/vms", withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: base) }
try RawQEMU.manifest("one", accel: accel).write(toFile: base + "/vms/one.yaml", atomically: true, encoding: .utf8)
let env = ["QEMUCTL_STATE_DIR": base + "/state"]

func raw(_ i: Int) -> Double {
    let sock = "\(base)/raw\(i).sock"
    let clock = ContinuousClock()
    let start = clock.now
    let pid = RawQEMU.spawn(qemu, RawQEMU.args(socket: sock, accel: accel))
    let fd = RawQEMU.waitRunning(sock)
    let t = RawQEMU.ms(clock.now - start)
    close(fd)
    RawQEMU.kill(pid)
    return t
}

func ours() -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    let status = RawQEMU.run(qemuctl, ["apply", "-f", base + "/vms/one.yaml"], environment: env)
    let t = RawQEMU.ms(clock.now - start)
    precondition(status == 0, "qemuctl apply failed (\(status))")
    RawQEMU.run(qemuctl, ["delete", "--force", "one"], environment: env)
    return t
}

print("apply: \(runs) alternating runs, tiny VM under \(accel); qemuctl \(qemuctl)")
_ = raw(-1)
var a: [Double] = [], b: [Double] = []
for i in 0..<runs {
    if i % 2 == 0 { a.append(raw(i)); b.append(ours()) } else { b.append(ours()); a.append(raw(i)) }
}
print(String(format: "raw QEMU exec → running:         median %.1f ms", RawQEMU.median(a)))
print(String(format: "qemuctl apply -f one.yaml → running: median %.1f ms", RawQEMU.median(b)))
print(String(format: "ratio: %.2f", RawQEMU.median(b) / RawQEMU.median(a)))
