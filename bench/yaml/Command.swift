// bench/yaml, `yaml-bench command [COUNT] [ROUNDS]`: the whole `qemuctl validate -f DIR`
// command against raw libyaml over the same files, both from disk.
//
// The corpus is the generator's (COUNT one-VM manifests, default 10,000, in 40 team
// directories), with every host file the manifests name present (kernels, initrd, ISO, one
// VNC secret per VM), so `validate` has nothing to warn about and prints one summary line
// per VM, as on a healthy repository. Then ROUNDS rounds (default 11), each measuring:
//   raw      — C, in this process (CYAMLRaw): for each file, in a list made beforehand,
//              open, fstat, one read into a reused buffer, close, every libyaml event
//              pulled and freed; nothing else (no directory walk, no tree, no output).
//   qemuctl  — the release `qemuctl validate -f DIR` as a child process (posix_spawn,
//              stdout and stderr to /dev/null, exit status 0 checked): start-up, argument
//              parsing, directory walk, reads, parse, decode, checks (host files looked up:
//              `validate` warns about missing ones), cross-file checks, 10,000 output lines.
// The two alternate (which goes first flips every round), so load from other processes on a
// shared machine hits both alike. Each side's wall time and CPU time (user + system: the
// child's from wait4, raw's from getrusage) are kept per round; the medians are printed,
// and the ratios of the medians (qemuctl's throughput ÷ raw's = raw time ÷ qemuctl time).
// The CPU-time ratio is the last line: on a busy machine it is the steadier of the two
// (both sides run on one thread, so on an idle machine they agree).
//
// The qemuctl measured is QEMUCTL, or `qemuctl` beside this executable (.build/release/
// after `make release` or `make bench`). A first, untimed run checks the output: exit status
// 0, one line per VM on stdout, nothing on stderr. YAML_BENCH_KEEP=1 keeps the corpus;
// QEMUCTL_COMPARE=PATH measures a second qemuctl in the same rounds (before/after a change).
import CYAMLRaw

#if canImport(Glibc)
import Glibc
#endif

/// Wall and CPU seconds of one measurement.
struct Timing {
    var wall: Double
    var cpu: Double
}

/// The median of `values` (the mean of the middle two for an even count).
func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }

/// This process's user + system CPU seconds so far.
func selfCPU() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return seconds(u.ru_utime) + seconds(u.ru_stime)
}

/// Runs `argv` with stdout and stderr sent to the given files; its wall time, CPU time and exit status.
func spawn(_ argv: [String], stdout: String, stderr: String) -> (Timing, Int32) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { for a in cArgs { free(a) } }
    var pid: pid_t = 0
    let start = now()
    let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
    precondition(rc == 0, "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let wall = now() - start
    let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (Timing(wall: wall, cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime)), exitStatus)
}

/// Writes `text` to a new file at `path`.
func writeFile(_ path: String, _ text: String) {
    let f = fopen(path, "wb")!
    _ = text.withCString { fputs($0, f) }
    fclose(f)
}

/// The number of lines in the file at `path` (-1 when it cannot be read), and whether it is empty.
func lineCount(_ path: String) -> Int {
    guard let f = fopen(path, "rb") else { return -1 }
    defer { fclose(f) }
    var n = 0
    while true {
        let c = fgetc(f)
        if c == EOF { break }
        if c == 0x0A { n += 1 }
    }
    return n
}

/// The `command` mode: see the header of this file.
@MainActor
func runCommandBenchmark() {
    // YAML_BENCH_KEEP=1 leaves the corpus in place (for profiling `qemuctl validate` on it).
    let keep = getenv("YAML_BENCH_KEEP") != nil
    defer { if keep { print("kept: \(root)") } else { _ = system("rm -rf '\(dir)'") } }
    let qemuctl: String = getenv("QEMUCTL").map { String(cString: $0) } ?? {
        let me = CommandLine.arguments[0]
        let slash = me.lastIndex(of: "/").map { String(me[...$0]) } ?? "./"
        return slash + "qemuctl"
    }()
    guard access(qemuctl, X_OK) == 0 else {
        print("yaml-bench command: no executable qemuctl at \(qemuctl) (build it with `make release`, or set QEMUCTL)")
        exit(2)
    }
    // The manifests, and the host files they name: <dir>/{kernels,isos,secrets}, outside the walked tree.
    let corpus = makeCorpus(in: root, up: "../../../")
    _ = system("mkdir -p '\(dir)/kernels' '\(dir)/isos' '\(dir)/secrets'")
    for f in ["kernels/vmlinuz-6.1", "kernels/initrd-6.1.img", "isos/debian-12.iso"] { writeFile("\(dir)/\(f)", "x\n") }
    for i in 0..<count { writeFile("\(dir)/secrets/vm-\(i).vnc", "secret\n") }
    let totalBytes = corpus.reduce(0) { $0 + $1.bytes.count }
    let mb = Double(totalBytes) / 1e6
    print("corpus: \(corpus.count) manifests, \(totalBytes) bytes (\(fmt(mb)) MB) in \(root)")
    print("qemuctl: \(qemuctl)")

    let argv = [qemuctl, "validate", "-f", root]
    // The check run, untimed.
    let out = "\(dir)/validate.out", err = "\(dir)/validate.err"
    let (_, status) = spawn(argv, stdout: out, stderr: err)
    let lines = lineCount(out), errLines = lineCount(err)
    guard status == 0, lines == count, errLines == 0 else {
        print("yaml-bench command: `\(argv.joined(separator: " "))` exited \(status) with \(lines) lines on stdout "
              + "and \(errLines) on stderr (expected 0, \(count) and 0); its output is in \(out) and \(err)")
        _ = system("head -5 '\(err)'")
        exit(1)
    }

    // The raw side's file list, made once (the walk is not part of the baseline).
    let cPaths = corpus.map { strdup($0.path) }
    defer { for p in cPaths { free(p) } }
    func raw() -> Timing {
        var bytes = 0
        let (w0, c0) = (now(), selfCPU())
        let events = cPaths.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            cyamlraw_count_events_in_files($0.baseAddress, $0.count, &bytes)
        }
        let t = Timing(wall: now() - w0, cpu: selfCPU() - c0)
        precondition(events > 0 && bytes == totalBytes, "raw libyaml failed on the corpus")
        return t
    }
    func ours(_ argv: [String]) -> Timing {
        let (t, status) = spawn(argv, stdout: "/dev/null", stderr: "/dev/null")
        precondition(status == 0, "\(argv[0]) validate exited \(status)")
        return t
    }
    // QEMUCTL_COMPARE=PATH: another qemuctl (an older build, say) measured in the same rounds,
    // between the two, for a before/after under the same load.
    let compare = getenv("QEMUCTL_COMPARE").map { String(cString: $0) }
    var raws: [Timing] = [], oursAll: [Timing] = [], compared: [Timing] = []
    for r in 0..<rounds {
        if r % 2 == 0 {
            raws.append(raw())
            if let c = compare { compared.append(ours([c] + argv.dropFirst())) }
            oursAll.append(ours(argv))
        } else {
            oursAll.append(ours(argv))
            if let c = compare { compared.append(ours([c] + argv.dropFirst())) }
            raws.append(raw())
        }
    }
    func show(_ label: String, _ ts: [Timing]) -> (wall: Double, cpu: Double) {
        let w = median(ts.map(\.wall)), c = median(ts.map(\.cpu))
        print("\(label) median wall \(fmt(w * 1000)) ms (\(fmt(mb / w)) MB/s), median CPU \(fmt(c * 1000)) ms (\(fmt(mb / c)) MB/s)")
        print("    wall ms by round: \(ts.map { fmt($0.wall * 1000) }.joined(separator: " "))")
        print("    CPU ms by round:  \(ts.map { fmt($0.cpu * 1000) }.joined(separator: " "))")
        return (w, c)
    }
    print("\(rounds) rounds, alternating (qemuctl first in odd rounds); medians:")
    let r = show("raw libyaml, from disk (C):  ", raws)
    let o = show("qemuctl validate -f DIR:     ", oursAll)
    if let c = compare {
        let m = show("QEMUCTL_COMPARE (\(c)):\n                              ", compared)
        print("compared ratio, wall time: \(fmt(r.wall / m.wall)); CPU time: \(fmt(r.cpu / m.cpu))")
    }
    print("command ratio, wall time: \(fmt(r.wall / o.wall))")
    print("command ratio, CPU time: \(fmt(r.cpu / o.cpu))")
}
