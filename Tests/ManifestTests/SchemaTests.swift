import Foundation
import Manifest
import QemuCtlTestSupport
import Testing

/// The package's root directory, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Every example manifest, relative to the package root.
func exampleFiles() -> [String] {
    let examples = packageRoot.appendingPathComponent("examples")
    let walker = FileManager.default.enumerator(atPath: examples.path)
    var out: [String] = []
    while let rel = walker?.nextObject() as? String {
        if rel.hasSuffix(".yaml") || rel.hasSuffix(".yml") { out.append("examples/" + rel) }
    }
    return out.sorted()
}

/// Whether `python3 -c 'import jsonschema, yaml'` works (both installed by `make deps`).
let jsonschemaAvailable: Bool = {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import jsonschema, yaml"]
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}()

@Suite("Schema and examples", .offPool)
struct SchemaTests {
    @Test func committedSchemaIsTheGeneratedOne() throws {
        let committed = try String(contentsOf: packageRoot.appendingPathComponent("schemas/qemuctl-v1.schema.json"), encoding: .utf8)
        #expect(committed == ManifestSchema.jsonSchema(), "run: qemuctl schema > schemas/qemuctl-v1.schema.json")
    }

    @Test func committedReferenceIsTheGeneratedOne() throws {
        let committed = try String(contentsOf: packageRoot.appendingPathComponent("docs/manifest-reference.md"), encoding: .utf8)
        #expect(committed == ManifestSchema.markdownReference(), "run: qemuctl schema --markdown > docs/manifest-reference.md")
    }

    @Test func schemaIsJSONWithAnnotationsOnEveryField() throws {
        let text = ManifestSchema.jsonSchema()
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object?["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        // One change annotation per field of the table, per array element, plus the root.
        let count = text.components(separatedBy: "\"x-qemuctl-change\"").count - 1
        let arrays = FieldTable.all.filter { if case .array = $0.field.type { true } else { false } }.count
        #expect(count == FieldTable.all.count + arrays + 1)
    }

    @Test func everyExampleIsValid() throws {
        let files = exampleFiles()
        #expect(files.count >= 6)
        #expect(files.contains("examples/hello.yaml") && files.contains("examples/multi.yaml"))
        let cwd = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(packageRoot.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        let set = ManifestLoader().load(paths: ["examples"])
        #expect(!set.hasErrors, "\(set.diagnostics.map(\.description))")
        #expect(set.virtualMachines.count == 10)
        let multi = ManifestLoader().load(paths: ["examples/multi.yaml"])
        #expect(try multi.get().map(\.name) == ["ci-runner-1", "ci-runner-2", "ci-cache"])
        let fleet = ManifestLoader().load(paths: ["examples/fleet"])
        #expect(try fleet.get().map(\.name) == ["fleet-db-1", "fleet-web-1", "fleet-web-2"])
        let server = try ManifestLoader().load(paths: ["examples/server.yaml"]).get()[0]
        #expect(server.spec.disks.contains { $0.throttle != nil } && server.spec.guestAgent)
        let hello = try ManifestLoader().load(paths: ["examples/hello.yaml"]).get()[0]
        #expect(hello.spec.boot.kernel?.hasSuffix("/.cache/guest/current/vmlinuz") == true)
    }

    @Test(.enabled(if: jsonschemaAvailable, "python3 -m pip install jsonschema (make deps)"))
    func examplesPassAnIndependentValidatorAndBadOnesFail() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var goodFiles: [String] = []
        for file in exampleFiles() {
            let bytes = try [UInt8](Data(contentsOf: packageRoot.appendingPathComponent(file)))
            let (docs, diags) = ManifestSchema.jsonDocuments(ofYAML: bytes, file: file)
            #expect(diags.isEmpty)
            for (i, doc) in docs.enumerated() {
                let out = dir.appendingPathComponent("good-\(goodFiles.count)-\(i).json")
                try doc.write(to: out, atomically: true, encoding: .utf8)
                goodFiles.append(out.path)
            }
        }
        var badFiles: [String] = []
        for (i, yaml) in [
            manifest(spec: "  memroy: {size: 1GiB}\n"),
            manifest(spec: "  runState: on\n"),
            manifest(name: "Web/1"),
            manifest(spec: "  disks:\n    - {name: d, file: {path: a, format: raw}, nbd: {unix: /s}}\n"),
            manifest(spec: "  display: {vnc: {password: x}}\n"),
            manifest(spec: "  memory: {size: 100}\n"),
        ].enumerated() {
            let (docs, _) = ManifestSchema.jsonDocuments(ofYAML: Array(yaml.utf8), file: "bad")
            let out = dir.appendingPathComponent("bad-\(i).json")
            try docs[0].write(to: out, atomically: true, encoding: .utf8)
            badFiles.append(out.path)
        }
        let script = """
            import json, sys
            from jsonschema import Draft202012Validator
            schema = json.load(open(sys.argv[1]))
            Draft202012Validator.check_schema(schema)
            v = Draft202012Validator(schema)
            good, bad = sys.argv[2].split(","), sys.argv[3].split(",")
            failed = [f for f in good if list(v.iter_errors(json.load(open(f))))]
            accepted = [f for f in bad if not list(v.iter_errors(json.load(open(f))))]
            print("rejected good:", failed, "accepted bad:", accepted)
            sys.exit(1 if failed or accepted else 0)
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, packageRoot.appendingPathComponent("schemas/qemuctl-v1.schema.json").path,
                       goodFiles.joined(separator: ","), badFiles.joined(separator: ",")]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(output)")
        #expect(goodFiles.count == 10)
    }
}
