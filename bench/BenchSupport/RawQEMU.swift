import CBenchRaw
import Foundation

/// The baseline of the launch benchmarks: QEMU exec'd directly, connected as soon
/// as its socket accepts, `qmp_capabilities`, `query-status` until running.
public enum RawQEMU: Sendable {
    /// Spawns `qemu` with `args` (stderr to /dev/null); returns the pid.
    public static func spawn(_ qemu: String, _ args: [String]) -> Int32 {
        var pid: pid_t = 0
        let cargs = ([qemu] + args).map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        guard posix_spawn(&pid, qemu, &actions, nil, cargs, environ) == 0 else { fatalError("cannot spawn \(qemu)") }
        return pid
    }

    /// Connects to `socket` once it accepts and polls until the VM runs; returns the fd.
    public static func waitRunning(_ socket: String) -> Int32 {
        var fd: Int32 = -1
        while fd < 0 {
            fd = cbench_qmp_connect(socket)
            if fd < 0 { usleep(200) }
        }
        while cbench_qmp_is_running(fd) != 1 {}
        return fd
    }

    /// The arguments of the tiny benchmark VM.
    public static func args(socket: String, accel: String) -> [String] {
        ["-machine", "q35", "-accel", accel, "-m", "64", "-nodefaults", "-no-user-config", "-display", "none",
         "-qmp", "unix:\(socket),server=on,wait=off"]
    }

    /// Kills and reaps a child.
    public static func kill(_ pid: Int32) {
        Foundation.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Milliseconds in a duration.
    public static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

    /// The median.
    public static func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }

    /// Runs a program to completion (posix_spawn, output to /dev/null, exactly as
    /// the raw side starts QEMU); returns its exit status.
    @discardableResult
    public static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) -> Int32 {
        measure(path, args, environment: environment).status
    }

    /// Like ``run(_:_:environment:)``, also returning the wall time in ms and the
    /// child's peak RSS in KiB.
    public static func measure(_ path: String, _ args: [String], environment: [String: String] = [:])
        -> (status: Int32, ms: Double, maxRSSKiB: Int) {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, n in n }
        let cenv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let cargs = ([path] + args).map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) }; cenv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let clock = ContinuousClock()
        let start = clock.now
        guard posix_spawn(&pid, path, &actions, nil, cargs, cenv) == 0 else { return (-1, 0, 0) }
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, ms(clock.now - start), usage.ru_maxrss)
    }

    /// A manifest of the same tiny VM. The CPU model is QEMU's default, as on the raw side (under
    /// KVM qemuctl would otherwise pick `host`, whose set-up costs QEMU measurably more CPU time);
    /// everything else is qemuctl's default VM, extra devices included.
    public static func manifest(_ name: String, accel: String) -> String {
        """
        apiVersion: qemuctl/v1
        kind: VirtualMachine
        metadata: {name: \(name)}
        spec:
          machine: {type: q35, accel: \(accel)}
          cpu: {model: qemu64}
          memory: {size: 64MiB}
        """
    }

    /// KVM when it opens and QEMU starts with it, else TCG.
    public static func accelerator(_ qemu: String) -> String {
        let fd = open("/dev/kvm", O_RDWR)
        guard fd >= 0 else { return "tcg" }
        close(fd)
        let s = "/tmp/qc-bench-probe-\(getpid()).sock"
        let pid = spawn(qemu, ["-machine", "q35", "-accel", "kvm", "-m", "64", "-nodefaults", "-display", "none", "-S",
                               "-qmp", "unix:\(s),server=on,wait=off"])
        var ok = false
        for _ in 0..<200 {
            let fd = cbench_qmp_connect(s)
            if fd >= 0 { close(fd); ok = true; break }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { break }
            usleep(10_000)
        }
        kill(pid)
        unlink(s)
        return ok ? "kvm" : "tcg"
    }
}
