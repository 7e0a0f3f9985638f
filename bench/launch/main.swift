// bench/launch: time from exec to a running VM (QMP says "running"), the raw way
// vs Instance.start, alternating, in one run; then a forced stop and a graceful
// stop of the booted test guest.
//
// Usage: launch [--runs N]    Last line: "ratio: X.XX" = Instance.start ÷ raw (medians).

import CBenchRaw
import Foundation
import QMP
import QemuCtl

var runs = 15
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    if a == "--runs", let n = args.next().flatMap(Int.init) { runs = n } else {
        FileHandle.standardError.write(Data("usage: launch [--runs N]\n".utf8)); exit(2)
    }
}

let qemu = try QEMUDiscovery.findBinary(arch: .amd64)

/// KVM when /dev/kvm opens and QEMU starts with it, else TCG (the same VM both ways).
func chooseAccelerator() -> Accelerator {
    let fd = open("/dev/kvm", O_RDWR)
    guard fd >= 0 else { return .tcg }
    close(fd)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: qemu)
    p.arguments = ["-machine", "none", "-accel", "kvm", "-nodefaults", "-display", "none", "-S", "-qmp", "stdio"]
    let input = Pipe()
    p.standardInput = input
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return .tcg }
    input.fileHandleForWriting.write(Data(#"{"execute":"qmp_capabilities"}{"execute":"quit"}"#.utf8))
    p.waitUntilExit()
    return p.terminationStatus == 0 ? .kvm : .tcg
}
let accel = chooseAccelerator()

let base = "/tmp/qc-bench-launch-\(getpid())"
try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: base) }

func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }

/// The raw way: exec QEMU (a child), connect as soon as the socket accepts,
/// qmp_capabilities, query-status until running.
func rawLaunch(_ i: Int) -> Double {
    let sock = "\(base)/raw\(i).sock"
    let argv = [qemu, "-machine", "q35", "-accel", accel.rawValue, "-m", "64", "-nodefaults", "-no-user-config",
                "-display", "none", "-qmp", "unix:\(sock),server=on,wait=off"]
    let clock = ContinuousClock()
    let start = clock.now
    var pid: pid_t = 0
    let cargs = argv.map { strdup($0) } + [nil]
    defer { cargs.forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)  // QEMU's CPUID warnings under KVM
    guard posix_spawn(&pid, qemu, &actions, nil, cargs, environ) == 0 else { fatalError("spawn failed") }
    var fd: Int32 = -1
    while fd < 0 {
        fd = cbench_qmp_connect(sock)
        if fd < 0 { usleep(200) }
    }
    while cbench_qmp_is_running(fd) != 1 {}
    let elapsed = ms(clock.now - start)
    close(fd)
    kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return elapsed
}

let config: VMConfig = {
    var c = VMConfig(name: "bench")
    c.machine = Machine(type: "q35", accel: accel == .kvm ? .kvm : .tcg)
    c.memory.sizeMiB = 64
    return c
}()

@concurrent func oursLaunch(_ i: Int) async throws -> (Double, Instance) {
    var c = config
    c.name = "bench\(i)"
    let clock = ContinuousClock()
    let start = clock.now
    let vm = try await Instance.start(c, options: StartOptions(socketDirectory: base))
    precondition(vm.state == .running)
    return (ms(clock.now - start), vm)
}

print("launch: QEMU \(qemu), accelerator \(accel.rawValue), \(runs) alternating runs of a tiny VM (-nodefaults, no guest)")
var raw: [Double] = [], ours: [Double] = [], forced: [Double] = []
_ = rawLaunch(999)  // warm the page cache
for i in 0..<runs {
    if i % 2 == 0 {
        raw.append(rawLaunch(i))
        let (t, vm) = try await oursLaunch(i); ours.append(t)
        let c = ContinuousClock(); let s = c.now; try await vm.forceStop(); forced.append(ms(c.now - s))
    } else {
        let (t, vm) = try await oursLaunch(i); ours.append(t)
        let c = ContinuousClock(); let s = c.now; try await vm.forceStop(); forced.append(ms(c.now - s))
        raw.append(rawLaunch(i))
    }
}

// A graceful stop of the booted test guest (TCG: the guest hangs under nested KVM here).
var graceful = "skipped: no test guest (make guest)"
let guestDir = (ProcessInfo.processInfo.environment["QEMUCTL_GUEST_DIR"] ?? FileManager.default.currentDirectoryPath + "/.cache/guest") + "/current"
if FileManager.default.fileExists(atPath: guestDir + "/vmlinuz") {
    var g = VMConfig(name: "bench-guest")
    g.machine = Machine(type: "q35", accel: .tcg)
    g.memory.sizeMiB = 256
    g.boot = Boot(kernel: guestDir + "/vmlinuz", initrd: guestDir + "/initrd.img", append: "console=ttyS0 quiet panic=-1 cryptomgr.notests")
    let log = base + "/guest-serial.log"
    g.serials = [Serial(name: "console", backend: .file(path: log, append: true))]
    let vm = try await Instance.start(g, options: StartOptions(socketDirectory: base))
    while !((try? String(contentsOfFile: log, encoding: .utf8))?.contains("QEMUCTL-GUEST-READY") ?? false) {
        try await Task.sleep(for: .milliseconds(10))
    }
    let outcome = try await vm.stop(timeout: .seconds(30))
    graceful = "\(outcome)"
}

print(String(format: "raw exec → running:        median %.1f ms (min %.1f, max %.1f)", median(raw), raw.min()!, raw.max()!))
print(String(format: "Instance.start → running:  median %.1f ms (min %.1f, max %.1f)", median(ours), ours.min()!, ours.max()!))
print(String(format: "forced stop → process gone: median %.1f ms", median(forced)))
print("graceful stop of the booted guest: \(graceful)")
print(String(format: "ratio: %.2f", median(ours) / median(raw)))
