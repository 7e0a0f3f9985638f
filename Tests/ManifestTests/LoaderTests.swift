import Manifest
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory removed at the end of the scope.
func withTemporaryDirectory(_ body: (String) throws -> Void) rethrows {
    var template = Array("/tmp/manifest-tests-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    defer { _ = system("rm -rf '\(dir)'") }
    try body(dir)
}

func write(_ text: String, to path: String) {
    let slash = path.lastIndex(of: "/")!
    _ = system("mkdir -p '\(path[..<slash])'")
    let f = fopen(path, "w")!
    fputs(text, f)
    fclose(f)
}

@Suite("Loading files and directories")
struct LoaderTests {
    @Test func directoryIsReadRecursivelySortedYAMLOnly() {
        withTemporaryDirectory { dir in
            write(manifest(name: "b"), to: "\(dir)/vms/b.yaml")
            write(manifest(name: "a"), to: "\(dir)/vms/a.yml")
            write(manifest(name: "c"), to: "\(dir)/vms/sub/c.yaml")
            write(manifest(name: "hidden"), to: "\(dir)/vms/.git/x.yaml")
            write("not yaml at all: [", to: "\(dir)/vms/README.md")
            let set = ManifestLoader().load(paths: ["\(dir)/vms"])
            #expect(set.diagnostics.isEmpty, "\(lines(set))")
            #expect(set.virtualMachines.map(\.name) == ["a", "b", "c"])
            #expect(set.files == ["\(dir)/vms/a.yml", "\(dir)/vms/b.yaml", "\(dir)/vms/sub/c.yaml"])
        }
    }

    @Test(arguments: [2, 3, 8])
    func severalThreadsGiveWhatOneThreadGives(_ threads: Int) {
        withTemporaryDirectory { dir in
            for i in 0..<7 { write(manifest(name: "vm\(i)"), to: "\(dir)/vms/t\(i % 3)/vm\(i).yaml") }
            write(manifest(name: "vm2"), to: "\(dir)/vms/t9/again.yaml")  // defined twice, across runs
            write(manifest(name: "bad", spec: "  memroy: {}\n  extraArgs: [x]\n"), to: "\(dir)/vms/t1/bad.yaml")
            write("apiVersion: qemuctl/v1\nkind: [", to: "\(dir)/vms/t2/broken.yml")
            write(manifest(name: "n", spec: "  networks:\n    - {name: a, user: {}}\n"), to: "\(dir)/vms/t0/n1.yaml")
            write(manifest(name: "m", spec: "  networks:\n    - {name: a, user: {}, mac: \"52:54:00:00:00:01\"}\n    - {name: b, user: {}, mac: \"52:54:00:00:00:01\"}\n"),
                  to: "\(dir)/vms/t2/macs.yaml")
            let paths = ["\(dir)/vms", "/nonexistent/x.yaml", "\(dir)/vms/t0/vm0.yaml"]
            let one = ManifestLoader().load(paths: paths)
            let many = ManifestLoader(threads: threads).load(paths: paths)
            #expect(one.hasErrors)
            #expect(lines(many) == lines(one))
            #expect(many.files == one.files)
            #expect(many.virtualMachines.map(\.name) == one.virtualMachines.map(\.name))
            #expect(many.virtualMachines.map(\.source) == one.virtualMachines.map(\.source))
            #expect(many.virtualMachines.map { $0.spec.networks.map(\.mac) } == one.virtualMachines.map { $0.spec.networks.map(\.mac) })
        }
    }

    @Test func directoryWithoutManifestsIsAUsageError() {
        withTemporaryDirectory { dir in
            write("hello", to: "\(dir)/empty/notes.txt")
            let set = ManifestLoader().load(paths: ["\(dir)/empty"])
            #expect(set.hasUnreadablePaths)
            #expect(lines(set) == ["\(dir)/empty: error: no manifests (*.yaml, *.yml) in directory '\(dir)/empty'"])
        }
    }

    @Test func missingPathIsAUsageError() {
        let set = ManifestLoader().load(paths: ["/nonexistent/vms.yaml"])
        #expect(set.hasUnreadablePaths)
        #expect(lines(set) == ["/nonexistent/vms.yaml: error: cannot read '/nonexistent/vms.yaml': No such file or directory"])
    }

    @Test func hundredMegabyteFileIsRefusedWithoutReadingIt() {
        withTemporaryDirectory { dir in
            let path = "\(dir)/big.yaml"
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            #expect(ftruncate(fd, 100 << 20) == 0)  // sparse: nothing is written or read
            close(fd)
            let clock = ContinuousClock()
            var set: ManifestSet? = nil
            let elapsed = clock.measure { set = ManifestLoader().load(paths: [path]) }
            #expect(elapsed < .seconds(1))  // refused from the size alone; reading 100 MiB would take longer
            expectSingleError(set!, 1, 1, "file is larger than the 4MiB limit (100MiB)")
            #expect(!set!.hasUnreadablePaths)
        }
    }

    @Test func relativePathsOfAFileFollowItsDirectory() throws {
        try withTemporaryDirectory { dir in
            write(manifest(spec: "  boot: {kernel: ../k/vmlinuz}\n"), to: "\(dir)/vms/a.yaml")
            let vms = try ManifestLoader().load(paths: ["\(dir)/vms/a.yaml"]).get()
            #expect(vms[0].spec.boot.kernel == "\(dir)/k/vmlinuz")
        }
    }

    @Test func missingHostFilesAreWarningsForValidate() {
        withTemporaryDirectory { dir in
            write(manifest(spec: "  boot: {kernel: vmlinuz}\n  disks:\n    - {name: d, file: {path: new.img, format: raw}, create: {size: 1GiB}}\n"),
                  to: "\(dir)/a.yaml")
            let set = ManifestLoader(hostFiles: .warn).load(paths: ["\(dir)/a.yaml"])
            #expect(!set.hasErrors)
            // The disk is created on apply, so only the kernel is missing.
            #expect(set.diagnostics.map(\.message) == ["kernel '\(dir)/vmlinuz' does not exist"])
            #expect(set.diagnostics.first?.severity == .warning)
            let strict = ManifestLoader(hostFiles: .error).load(paths: ["\(dir)/a.yaml"])
            #expect(strict.hasErrors)
            let pure = ManifestLoader().load(paths: ["\(dir)/a.yaml"])
            #expect(pure.diagnostics.isEmpty)
        }
    }
}
