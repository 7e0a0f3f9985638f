import Foundation
import QMP
import QemuCtlTestSupport
import Testing

/// The RFB 3.8 opening through a hand-off: QEMU speaks first with its version, the
/// client answers with the same, and QEMU lists its security types (1 = None when no
/// password is set).
func rfbHandshake(read: (Int) async throws -> [UInt8], send: ([UInt8]) -> Void) async throws -> [UInt8] {
    let version = try await read(12)
    #expect(String(decoding: version, as: UTF8.self) == "RFB 003.008\n")
    send(Array("RFB 003.008\n".utf8))
    let count = try await read(1)
    try #require(count[0] > 0)
    return try await read(Int(count[0]))
}

/// A SPICE link message (header magic `REDQ`, protocol 2.2, main channel, no caps):
/// the server answers with a link reply that starts with the same magic.
let spiceLinkMessage: [UInt8] = {
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    let body = le32(0) + [1, 0] + le32(0) + le32(0) + le32(18)  // connection id, channel main/0, caps, caps offset
    return Array("REDQ".utf8) + le32(2) + le32(2) + le32(UInt32(body.count)) + body
}()

/// `Listening on 127.0.0.1:PORT: …` on stderr → PORT.
func listeningPort(_ stderr: String) -> Int? {
    guard let r = stderr.range(of: #"Listening on 127\.0\.0\.1:([0-9]+)"#, options: .regularExpression) else { return nil }
    return Int(stderr[r].split(separator: ":").last ?? "")
}

@Suite(.timeLimit(.minutes(2)), .offPool) struct DisplayHandoffTests {
    @Test func vncClientsThroughListenAndStdioGetAnRFBHandshake() async throws {
        let w = try Workspace("vn1")
        defer { w.cleanUp() }
        let vms = try w.manifest("v", bareVM("v", extra: "  display: {vnc: {listen: none}}"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")

        // --stdio: this process's stdin/stdout are the client's connection.
        let pipe = try Spawned(["vnc", "v", "--stdio"], environment: w.env, pty: false)
        var offset = 0
        let types = try await rfbHandshake(read: { n in
            defer { offset += n }
            return try await pipe.read(n, after: offset)
        }, send: { pipe.write($0) })
        #expect(types.contains(1))
        pipe.closeInput()
        #expect(await pipe.waitForExit() == 0)

        // --listen (127.0.0.1, a free port printed on stderr): one hand-off per client. This VM has no
        // VNC password, so TCP (which every local user reaches) takes --insecure-listen.
        let listener = try Spawned(["vnc", "v", "--listen", "127.0.0.1:0", "--insecure-listen"], environment: w.env, pty: false)
        try await listener.waitFor("the listening address") { _, err in listeningPort(err) != nil }
        let port = try #require(listeningPort(listener.errorText))
        for i in 1...3 {
            let clock = ContinuousClock()
            let start = clock.now
            let client = try TCPTestClient(port: port)
            let types = try await rfbHandshake(read: { try await client.receive($0) }, send: client.send)
            #expect(types.contains(1))
            print("vnc hand-off \(i): connect to security types in \(clock.now - start)")
        }
        try await listener.waitFor("three hand-offs") { _, err in err.components(separatedBy: "client handed to v").count == 4 }
        // QEMU's VNC server has the clients; no TCP port of QEMU's is open.
        let servers = try await QMPClient.withConnection(to: "\(w.state)/v.sock") { try await $0.execute("query-vnc-servers") }
        #expect(servers.arrayValue?.first?["server"]?.arrayValue?.isEmpty == true)
        kill(listener.process.processIdentifier, SIGTERM)
        #expect(await listener.waitForExit() == 0)

        // Only loopback addresses are accepted.
        let open = try await w.qemuctl("vnc", "v", "--listen", "0.0.0.0:5901")
        #expect(open.status != 0)
        #expect(open.err.contains("only loopback addresses"))
    }

    @Test func spiceClientsGetTheLinkReply() async throws {
        let w = try Workspace("sp1")
        defer { w.cleanUp() }
        let vms = try w.manifest("s", bareVM("s", extra: "  display: {spice: {listen: unix, disableTicketing: true}}"))
        let applied = try await w.qemuctl("apply", "-f", vms)
        try #require(applied.status == 0, "\(applied.out)\(applied.err)")

        let pipe = try Spawned(["spice", "s", "--stdio"], environment: w.env, pty: false)
        pipe.write(spiceLinkMessage)
        let reply = try await pipe.read(16, after: 0)
        #expect(Array(reply[0..<4]) == Array("REDQ".utf8))
        #expect(Array(reply[4..<8]) == [2, 0, 0, 0])  // major version 2
        pipe.closeInput()
        #expect(await pipe.waitForExit() == 0)

        let listener = try Spawned(["spice", "s", "--listen", "127.0.0.1:0", "--insecure-listen", "--once"], environment: w.env, pty: false)
        try await listener.waitFor("the listening address") { _, err in listeningPort(err) != nil }
        let client = try TCPTestClient(port: try #require(listeningPort(listener.errorText)))
        client.send(spiceLinkMessage)
        #expect(try await client.receive(4) == Array("REDQ".utf8))
        #expect(await listener.waitForExit() == 0)  // --once: done after one client
    }

    @Test func aVMWithoutTheDisplayIsAnErrorWithAHint() async throws {
        let w = try Workspace("vn2")
        defer { w.cleanUp() }
        let vms = try w.manifest("n", bareVM("n"))
        #expect(try await w.qemuctl("apply", "-f", vms).status == 0)
        let vnc = try await w.qemuctl("vnc", "n", "--stdio")
        #expect(vnc.status == 1)
        #expect(vnc.err.contains("qemuctl: error: VM n has no VNC display: add spec.display.vnc"), "\(vnc.err)")
        let spice = try await w.qemuctl("spice", "n", "--stdio")
        #expect(spice.status == 1)
        #expect(spice.err.contains("has no SPICE display"), "\(spice.err)")
        let missing = try await w.qemuctl("vnc", "nothere")
        #expect(missing.status == 1)
        #expect(missing.err.contains("no running VM named nothere"))
    }
}
