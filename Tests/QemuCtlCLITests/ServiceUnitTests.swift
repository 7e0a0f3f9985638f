import Foundation
import QemuCtlTestSupport
import Testing

/// `contrib/systemd/qemuctl-controller.service`: checked by `systemd-analyze verify` where that
/// program exists, and by its keys in every case (CI images often have no systemd).
@Suite struct ServiceUnitTests {
    static let unitPath = Fixtures.repoRoot + "/contrib/systemd/qemuctl-controller.service"

    /// `[Section]` → key → values (a key may repeat, as Environment= does).
    static func parse(_ text: String) -> [String: [String: [String]]] {
        var out: [String: [String: [String]]] = [:]
        var section = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[section, default: [:]][String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        return out
    }

    @Test func theUnitRunsTheControllerAndLeavesTheVMsRunningWhenStopped() async throws {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        let unit = Self.parse(text)
        let service = try #require(unit["Service"])
        #expect(service["Type"] == ["simple"])
        #expect(service["Restart"] == ["on-failure"])
        #expect(unit["Unit"]?["After"]?.contains("network.target") == true)
        #expect(unit["Install"]?["WantedBy"] == ["multi-user.target"])
        // The state directory and the manifests are settings, and the command line uses them.
        let environment = service["Environment"] ?? []
        #expect(environment.contains { $0.hasPrefix("QEMUCTL_STATE_DIR=/") }, "\(environment)")
        #expect(environment.contains { $0.hasPrefix("QEMUCTL_MANIFESTS=/") }, "\(environment)")
        let exec = try #require(service["ExecStart"]?.first)
        #expect(exec.hasPrefix("/") && exec.contains(" controller -f ${QEMUCTL_MANIFESTS}"), "\(exec)")
        // Only the controller is signalled on stop: the QEMUs in its control group keep running.
        #expect(service["KillMode"] == ["process"])
        #expect(service["ExecReload"]?.first?.contains("-HUP $MAINPID") == true)

        // The options of ExecStart are the controller's (its help lists them).
        let help = try await QemuctlBinary.run(["controller", "--help"])
        for option in exec.split(separator: " ").dropFirst(2) where option.hasPrefix("-") {
            #expect(help.out.contains(String(option)), "qemuctl controller has no \(option)")
        }

        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let analyze else {
            // The path that ran is said in the test's output: no systemd-analyze, keys checked above only.
            print("ServiceUnitTests: systemd-analyze not found; checked the unit's keys only")
            return
        }
        print("ServiceUnitTests: checked the unit's keys and with \(analyze) verify")
        // verify also checks that ExecStart's program exists: a copy points at the built qemuctl.
        let dir = try TempDir("unit")
        defer { dir.remove() }
        let copy = dir.file("qemuctl-controller.service")
        try text.replacingOccurrences(of: "/usr/local/bin/qemuctl", with: QemuctlBinary.path)
            .write(toFile: copy, atomically: true, encoding: .utf8)
        let (status, output) = try await runTool(analyze, ["verify", copy])
        #expect(status == 0, "\(output)")
        #expect(output.isEmpty, "\(output)")
        // And it does catch a broken unit: a program that does not exist.
        let broken = dir.file("broken.service")
        try text.replacingOccurrences(of: "/usr/local/bin/qemuctl", with: dir.file("no-such-qemuctl"))
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let (badStatus, badOutput) = try await runTool(analyze, ["verify", broken])
        #expect(badStatus != 0, "\(badOutput)")
    }
}
