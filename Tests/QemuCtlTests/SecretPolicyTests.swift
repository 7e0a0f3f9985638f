import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Findings 4 and 15 of issue 14 at the one secret reader (``Secret/read(environment:)``).
@Suite struct SecretPolicyTests {
    @Test func theOneReaderEnforcesOnePolicy() throws {
        let dir = try TempDir("spol")
        defer { dir.remove() }
        func file(_ name: String, _ bytes: Data, mode: mode_t = 0o600) -> String {
            let p = dir.file(name)
            #expect(FileManager.default.createFile(atPath: p, contents: bytes))
            #expect(chmod(p, mode) == 0)
            return p
        }
        func refusal(_ s: Secret, env: [String: String]? = nil) -> String {
            do { _ = try s.read(environment: env); return "accepted" } catch { return error.message }
        }
        #expect(try Secret.file(file("ok", Data("pw\r\n".utf8))).read() == "pw")
        #expect(try Secret.file(file("ro", Data("pw\n".utf8), mode: 0o400)).read() == "pw")
        let limit = file("limit", Data(repeating: 0x61, count: Secret.sizeLimit))
        #expect(try Secret.file(limit).read().utf8.count == Secret.sizeLimit)
        #expect(refusal(.file(file("over", Data(repeating: 0x61, count: Secret.sizeLimit + 1)))).contains("over the 64 KiB limit"))
        #expect(refusal(.file(file("empty", Data()))).contains("is empty"))
        #expect(refusal(.file(file("nl", Data("\n".utf8)))).contains("is empty"))
        #expect(refusal(.file(file("g", Data("pw".utf8), mode: 0o640))).contains("chmod 600"))
        let fifo = dir.file("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(refusal(.file(fifo)).contains("not a regular file"))
        #expect(symlink(dir.file("ok"), dir.file("link")) == 0)
        #expect(refusal(.file(dir.file("link"))).contains("symbolic link"))
        #expect(refusal(.file(dir.file("absent"))).contains("No such file"))
        #expect(refusal(.environment("X"), env: ["X": ""]).contains("X is empty"))
        #expect(refusal(.environment("X"), env: [:]).contains("X is not set"))
        #expect(try Secret.environment("X").read(environment: ["X": "v"]) == "v")
    }
}
