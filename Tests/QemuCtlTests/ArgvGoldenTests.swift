import Foundation
import Testing
@testable import QemuCtl

@Suite("Argv golden files")
struct ArgvGoldenTests {
    @Test(arguments: GoldenCase.all)
    func argvMatchesGolden(_ c: GoldenCase) throws {
        let cmd = try c.config.commandLine(c.launch)
        if let dir = ProcessInfo.processInfo.environment["GOLDEN_DUMP"] {
            try goldenText(cmd.arguments).write(toFile: dir + "/" + c.name + ".args", atomically: true, encoding: .utf8)
        }
        #expect(cmd.arguments == c.expectedArgv, "actual:\n\(goldenText(cmd.arguments))")
    }
}
