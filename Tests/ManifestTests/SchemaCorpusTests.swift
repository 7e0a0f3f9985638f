import Foundation
import Manifest
import QemuCtlTestSupport
import Testing

/// The manifests of `schemas/corpus/{valid,invalid}`, relative to the package root.
private func corpus(_ kind: String) throws -> [String] {
    let dir = packageRoot.appendingPathComponent("schemas/corpus/\(kind)").path
    return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        .map { "schemas/corpus/\(kind)/\($0)" }
}

/// The listed disagreements of `schemas/corpus/README.md`: file name → reason.
private func listedExceptions() throws -> [String: String] {
    let text = try String(contentsOf: packageRoot.appendingPathComponent("schemas/corpus/README.md"), encoding: .utf8)
    var out: [String: String] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("| `") {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 2 else { continue }
        out[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
    }
    return out
}

@Suite("Schema corpus: the JSON Schema and qemuctl validate agree", .offPool)
struct SchemaCorpusTests {
    @Test func corpusIsLargeAndCoversTheRules() throws {
        let valid = try corpus("valid"), invalid = try corpus("invalid")
        #expect(valid.count >= 25 && invalid.count >= 91, "\(valid.count) valid, \(invalid.count) invalid")
        // Every rule between fields that the schema states has an invalid case named after it.
        let names = Set(invalid.map { URL(fileURLWithPath: $0).lastPathComponent })
        for expected in ["initrd-without-kernel.yaml", "cmdline-without-kernel.yaml", "slots-without-max.yaml",
                         "file-backend-without-path.yaml", "nbd-port-with-unix.yaml", "vars-with-bios.yaml",
                         "memory-over-16tib.yaml", "spice-agent-without-spice.yaml", "usb-host-with-both.yaml",
                         "throttle-total-and-read.yaml", "create-read-only.yaml", "spec-null.yaml",
                         // Rules of QemuCtl's Validation.swift a manifest reaches through formats and bounds.
                         "disk-name-too-long.yaml", "hostfwd-port-too-big.yaml", "spice-port-zero.yaml",
                         "tap-ifname-too-long.yaml", "disk-serial-too-long.yaml", "cpu-feature-bad.yaml",
                         "ide-read-only.yaml", "nvme-read-only.yaml"] {
            #expect(names.contains(expected), "missing corpus case \(expected)")
        }
    }

    @Test func schemaAndValidateAgreeOnEveryCaseButTheListedOnes() async throws {
        #expect(jsonschemaAvailable, "python3 with jsonschema and PyYAML is needed: make deps installs them")
        let valid = try corpus("valid"), invalid = try corpus("invalid")
        let exceptions = try listedExceptions()
        #expect(exceptions.count == 10)
        let checker = try await QemuctlBinary.run(
            ["python3", "schemas/corpus/check.py", "schemas/qemuctl-v1.schema.json"] + valid + invalid,
            executable: "/usr/bin/env")
        #expect(checker.status == 0, "\(checker.err)")
        var schemaVerdict: [String: (valid: Bool, reason: String)] = [:]
        for line in checker.out.split(separator: "\n") {
            let cells = line.split(separator: "\t", maxSplits: 2).map(String.init)
            guard cells.count >= 2 else { continue }
            schemaVerdict[cells[0]] = (cells[1] == "valid", cells.count > 2 ? cells[2] : "")
        }
        #expect(schemaVerdict.count == valid.count + invalid.count, "\(checker.out)\(checker.err)")

        var agreements = 0
        var disagreements: [String] = []
        var listedSeen: Set<String> = []
        for (file, expectedValid) in valid.map({ ($0, true) }) + invalid.map({ ($0, false) }) {
            let name = URL(fileURLWithPath: file).lastPathComponent
            let run = try await QemuctlBinary.run(["validate", "-f", file])
            #expect(run.status == 0 || run.status == 1, "\(file): \(run.err)")
            let qemuctlValid = run.status == 0
            guard let schema = schemaVerdict[file] else { continue }
            #expect(qemuctlValid == expectedValid, "qemuctl validate \(file): expected \(expectedValid ? "valid" : "invalid")\n\(run.err)")
            if schema.valid == qemuctlValid {
                agreements += 1
                #expect(exceptions[name] == nil, "\(name) is listed as an exception but both sides agree now: remove it from the list")
            } else if let reason = exceptions[name], schema.valid, !qemuctlValid {
                listedSeen.insert(name)
                _ = reason
            } else {
                disagreements.append("\(file): schema says \(schema.valid ? "valid" : "invalid \(schema.reason)"), "
                                     + "qemuctl says \(qemuctlValid ? "valid" : "invalid: \(run.err)")")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        #expect(listedSeen == Set(exceptions.keys), "listed but not seen: \(Set(exceptions.keys).subtracting(listedSeen))")
        #expect(agreements == valid.count + invalid.count - exceptions.count)
    }
}

@Suite("Decoder rules that QemuCtl's validation would otherwise only find at apply")
struct ApplyRulesInTheDecoderTests {
    @Test func readOnlyIDEAndNVMeDisksAreRefused() {
        let ide = load(manifest(spec: "  disks:\n    - {name: a, file: {path: a.img, format: raw}, interface: ide, readOnly: true}\n"))
        expectSingleError(ide, 7, 67, "'spec.disks[0].readOnly' is not possible with 'interface: ide'",
                          hint: "ide-hd cannot be read-only; use virtio, scsi or a CD-ROM")
        let nvme = load(manifest(spec: "  disks:\n    - {name: a, file: {path: a.img, format: raw}, interface: nvme, readOnly: true}\n"))
        expectSingleError(nvme, 7, 68, "'spec.disks[0].readOnly' is not possible with 'interface: nvme'")
        // An RBD snapshot is opened read-only whatever readOnly says (the mapping sets it): not an error.
        #expect(!load(manifest(spec: "  disks:\n    - {name: a, rbd: {pool: p, image: i, snapshot: s}}\n")).hasErrors)
        #expect(!load(manifest(spec: "  disks:\n    - {name: a, file: {path: a.img, format: raw}, interface: scsi, readOnly: true}\n")).hasErrors)
    }
}
