import Foundation
import Manifest
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The YAML edges of #21 item 4, and the loader part of #14 finding 13.
@Suite("YAML edges: empty input, directives, foreign formats")
struct YAMLEdgeTests {
    @Test(arguments: [
        ("", "no manifest in 't.yaml': the file is empty"),
        ("# only a comment\n\n# and another\n", "no manifest in 't.yaml': only comments or blank lines"),
        ("---\n", "no manifest in 't.yaml': only empty documents"),
        ("---\n...\n---\n# nothing\n", "no manifest in 't.yaml': only empty documents"),
    ])
    func inputWithoutAManifestIsAnError(_ yaml: String, _ message: String) {
        let set = load(yaml)
        expectSingleError(set, 1, 1, message)
        #expect(set.virtualMachines.isEmpty && set.hasErrors)
    }

    @Test func emptyFileAmongValidOnesIsStillAnError() {
        let set = ManifestLoader().load(files: [("a.yaml", Array(manifest().utf8)), ("b.yaml", [])], baseDirectory: "/base")
        #expect(set.virtualMachines.map(\.name) == ["vm1"])
        #expect(lines(set) == ["b.yaml:1:1: error: no manifest in 'b.yaml': the file is empty (a manifest starts with 'apiVersion: qemuctl/v1' and 'kind: VirtualMachine')"])
    }

    @Test func yaml11DirectiveIsRefusedByName() {
        let set = load("%YAML 1.1\n---\n" + manifest())
        expectSingleError(set, 1, 1, "the '%YAML 1.1' directive is not supported: qemuctl reads manifests as YAML 1.2")
        #expect(set.virtualMachines.isEmpty)
        // 1.2 is what qemuctl reads: accepted.
        #expect(!load("%YAML 1.2\n---\n" + manifest()).hasErrors)
    }

    /// yaml-test-suite MUS6/00 (`%YAML 1.1#...`) and MUS6/01 (a second `%YAML` after a document not
    /// ended by `...`): invalid YAML that libyaml 0.2.5 accepts. The first is also checked with 1.2,
    /// so the refusal is for the comment, not for the version.
    @Test func yamlTestSuiteMUS6InvalidDirectivesAreRefused() {
        expectSingleError(load("%YAML 1.1#...\n---\n"), 1, 10, "invalid YAML: a comment in a directive needs a space before '#'")
        expectSingleError(load("%YAML 1.2#x\n---\n" + manifest()), 1, 10,
                          "invalid YAML: a comment in a directive needs a space before '#'")
        expectSingleError(load("%YAML 1.2\n---\n%YAML 1.2\n---\n"), 3, 1,
                          "invalid YAML: a directive may only follow a document end marker ('...')")
        // The valid neighbours: a comment after a space, and a directive after '...'.
        #expect(!load("%YAML 1.2 # a comment\n---\n" + manifest()).hasErrors)
        let two = "%YAML 1.2\n---\n" + manifest(name: "a") + "...\n%YAML 1.2\n---\n" + manifest(name: "b")
        let set = load(two)
        #expect(!set.hasErrors, "\(lines(set))")
        #expect(set.virtualMachines.map(\.name) == ["a", "b"])
    }

    @Test func specWithoutValueIsReportedAtItsKey() {
        let set = load("apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: vm1\nspec:\n")
        expectSingleError(set, 5, 1, "'spec' has no value (null), but it is required",
                          hint: "write its fields indented below it, or 'spec: {}' for all defaults")
        let absent = load("apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: vm1\n")
        expectSingleError(absent, 1, 1, "missing required key 'spec'")
        let name = load("apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata:\n  name: ~\nspec: {}\n")
        expectSingleError(name, 4, 3, "'metadata.name' has no value (null), but it is required")
    }

    @Test func hugeIntegerIsAnIntegerOutOfRange() {
        let set = load(manifest(spec: "  cpu:\n    count: 99999999999999999999999\n"))
        expectSingleError(set, 7, 12, "'spec.cpu.count' is 99999999999999999999999, an integer out of range",
                          hint: "allowed range: 1 to 1024")
        let asString = load(manifest(spec: "  emulator: 99999999999999999999999\n"))
        #expect(asString.diagnostics.first?.message
                == "'spec.emulator' must be a string, not the integer 99999999999999999999999, which is out of range (beyond 64 bits)")
    }

    @Test func lowercaseKindGetsADidYouMean() {
        let set = load(manifest().replacingOccurrences(of: "kind: VirtualMachine", with: "kind: virtualmachine"))
        expectSingleError(set, 2, 7, "unsupported kind 'virtualmachine'", hint: "did you mean 'kind: VirtualMachine'?")
    }

    @Test func kubeVirtVirtualMachineIsRecognised() {
        let yaml = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata:
              name: testvm
            spec:
              running: false
              template:
                spec:
                  domain:
                    devices: {}

            """
        let set = load(yaml)
        expectSingleError(set, 1, 13, "this is a KubeVirt VirtualMachine (apiVersion 'kubevirt.io/v1'), not a qemuctl manifest")
        #expect(set.diagnostics.first?.hint?.contains("'qemuctl export kubevirt' goes the other way") == true)
    }

    @Test func limaTemplateIsRecognised() {
        let yaml = """
            # A Lima template
            vmType: qemu
            images:
            - location: "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img"
              arch: "x86_64"
            cpus: 4
            memory: "4GiB"

            """
        expectSingleError(load(yaml), 4, 1, "this looks like a Lima template (top-level 'images'), not a qemuctl manifest")
        expectSingleError(load("vmType: vz\n"), 1, 9, "this looks like a Lima template (top-level 'vmType'), not a qemuctl manifest")
    }

    /// #14 finding 13: a dangling or looping symlink in a manifest directory is an error like an
    /// unreadable file (a usage error), not skipped — `apply --prune` would delete its VM.
    @Test func danglingAndLoopingSymlinksInADirectoryAreErrors() {
        withTemporaryDirectory { dir in
            write(manifest(name: "a"), to: dir + "/vms/a.yaml")
            _ = symlink(dir + "/vms/missing.yaml", dir + "/vms/b.yaml")
            _ = symlink(dir + "/vms/c.yaml", dir + "/vms/c.yaml")
            let set = ManifestLoader().load(paths: [dir + "/vms"])
            #expect(set.hasErrors && set.hasUnreadablePaths)
            #expect(set.virtualMachines.map(\.name) == ["a"])
            #expect(lines(set) == [
                "\(dir)/vms/b.yaml: error: cannot read '\(dir)/vms/b.yaml': No such file or directory (a symbolic link whose target cannot be read)",
                "\(dir)/vms/c.yaml: error: cannot read '\(dir)/vms/c.yaml': Too many levels of symbolic links (a symbolic link whose target cannot be read)",
            ])
            #expect(throws: ManifestError.self) { try set.get() }
        }
    }
}
