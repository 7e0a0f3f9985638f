import Manifest
import Testing
@testable import Reconcile

@Suite struct ManifestDocumentTests {
    /// Strings YAML would read as something else (booleans, numbers, sexagesimal-looking MACs,
    /// comments, flow syntax) come back unchanged through the manifest loader.
    @Test func trickyStringsRoundTripThroughTheManifestLoader() throws {
        let cmdline = "console=ttyS0 quiet # not a comment: {x} [y], 'q' \"dq\" \\ end"
        let doc = ManifestDocument.map([
            ("apiVersion", "qemuctl/v1"), ("kind", "VirtualMachine"),
            ("metadata", .map([("name", "on"), ("labels", .map([("a", "yes"), ("b", "0x10"), ("c", "1.5"), ("d", "")]))])),
            ("spec", .map([
                ("cpu", .map([("count", .int(3)), ("features", .list(["+ssse3", "-x2apic"]))])),
                ("memory", .map([("size", "96MiB")])),
                ("boot", .map([("kernel", "/k"), ("cmdline", .string(cmdline))])),
                ("networks", .list([.map([("name", "n"), ("user", .map([("hostfwd", .list(["tcp:127.0.0.1:2222-:22"]))])),
                                          ("mac", "52:54:00:12:34:56")])])),
                ("balloon", .bool(true)),
            ])),
        ])
        let set = ManifestLoader().load(bytes: Array(doc.yaml().utf8), file: "t.yaml", baseDirectory: "/")
        #expect(!set.hasErrors, "\(set.diagnostics)\n\(doc.yaml())")
        let vm = try #require(set.virtualMachines.first)
        #expect(vm.name == "on")
        #expect(vm.labels == ["a": "yes", "b": "0x10", "c": "1.5", "d": ""])
        #expect(vm.spec.cpu.count == 3)
        #expect(vm.spec.cpu.features == ["+ssse3", "-x2apic"])
        #expect(vm.spec.memory.size == 96 << 20)
        #expect(vm.spec.boot.cmdline == cmdline)
        #expect(vm.spec.networks.first?.mac == "52:54:00:12:34:56")
        #expect(vm.spec.networks.first.map { n in if case .user(let u) = n.backend { u.hostfwd } else { [] } } == ["tcp:127.0.0.1:2222-:22"])
        #expect(vm.spec.balloon)
    }

    @Test func jsonKeepsKeyOrderAndEscapes() {
        let doc = ManifestDocument.map([("b", "x\"y\n"), ("a", .list([.int(1), .bool(false)])), ("e", .map([]))])
        #expect(doc.json() == "{\n  \"b\": \"x\\\"y\\n\",\n  \"a\": [\n    1,\n    false\n  ],\n  \"e\": {}\n}")
    }
}
