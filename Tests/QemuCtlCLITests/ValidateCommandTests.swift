import Foundation
import QemuCtlTestSupport
import Testing

/// Runs the built `qemuctl` binary (from `swift build`), feeding `stdin`.
private func qemuctl(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let p = Process()
    p.executableURL = root.appendingPathComponent(".build/debug/qemuctl")
    p.arguments = arguments
    p.currentDirectoryURL = root
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, o, e)
}

private let binaryBuilt = FileManager.default.isExecutableFile(
    atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/qemuctl").path)

@Suite("qemuctl validate and schema", .enabled(if: binaryBuilt, "needs swift build --product qemuctl"), .offPool)
struct ValidateCommandTests {
    @Test func validExamplesExitZeroWithASummaryPerVM() throws {
        let r = try qemuctl(["validate", "-f", "examples"])
        #expect(r.status == 0, "\(r.err)")
        // One summary line per VirtualMachine document of the examples, counted without qemuctl.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let examples = root.appendingPathComponent("examples").path
        let documents = (FileManager.default.enumerator(atPath: examples)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .map { (try? String(contentsOfFile: examples + "/" + $0, encoding: .utf8)) ?? "" }
            .reduce(0) { $0 + $1.split(separator: "\n").filter { $0 == "kind: VirtualMachine" }.count }
        #expect(documents >= 9)
        #expect(r.out.split(separator: "\n").count == documents, "\(r.out)")
        #expect(r.out.contains("web-1: valid (amd64, 2 vCPUs, 2GiB, 2 disks, 1 NIC, running)"))
    }

    @Test func invalidManifestExitsOneWithDiagnosticsOnStderr() throws {
        let yaml = "apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: a}\nspec:\n  runState: on\n"
        let r = try qemuctl(["validate", "-f", "-"], stdin: yaml)
        #expect(r.status == 1)
        #expect(r.out.isEmpty)
        #expect(r.err.hasPrefix("-:5:13: error: the string 'on' is not a valid 'spec.runState'"))
    }

    @Test func unreadablePathAndMissingArgumentsExitTwo() throws {
        #expect(try qemuctl(["validate", "-f", "/nonexistent.yaml"]).status == 2)
        #expect(try qemuctl(["validate"]).status == 2)
    }

    @Test func jsonOutputHasTheDiagnosticFields() throws {
        let r = try qemuctl(["validate", "-o", "json", "-f", "-"], stdin: "apiVersion: qemuctl/v1\nkind: Pod\n")
        #expect(r.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect(object?["valid"] as? Bool == false)
        let first = (object?["diagnostics"] as? [[String: Any]])?.first
        #expect(first?["file"] as? String == "-")
        #expect(first?["line"] as? Int == 2 && first?["column"] as? Int == 7)
        #expect(first?["severity"] as? String == "error")
        #expect(first?["message"] as? String == "unsupported kind 'Pod'")
        #expect(first?["hint"] as? String == "expected 'kind: VirtualMachine'")
    }

    @Test func schemaCommandPrintsTheCommittedSchema() throws {
        let r = try qemuctl(["schema"])
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let committed = try String(contentsOf: root.appendingPathComponent("schemas/qemuctl-v1.schema.json"), encoding: .utf8)
        #expect(r.status == 0 && r.out == committed)
    }
}
