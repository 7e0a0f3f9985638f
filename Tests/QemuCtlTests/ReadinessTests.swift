import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// A TCP listener on 127.0.0.1 that accepts each connection and then either keeps it, sends a
/// banner, or closes it at once (what QEMU's user network does when the guest refuses).
final class TCPPeer: @unchecked Sendable {
    enum Behaviour { case keep, banner, close }
    let port: Int
    private let fd: Int32
    private var kept: [Int32] = []

    init(_ behaviour: Behaviour) throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(sock, 8) == 0 else { throw FixtureError("cannot listen") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        fd = sock
        let listener = sock
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                switch behaviour {
                case .keep: kept.append(c)
                case .banner: _ = write(c, "SSH-2.0-fake\r\n", 14); kept.append(c)
                case .close: close(c)
                }
            }
        }.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd); kept.forEach { close($0) } }
}

@Suite(.timeLimit(.minutes(1)), .offPool) struct ReadinessTests {
    @Test func probesParseFromTheirCommandLineForm() throws {
        #expect(try ReadinessProbe(parsing: "agent") == .guestAgent)
        #expect(try ReadinessProbe(parsing: "tcp:22") == .tcpPort(22))
        #expect(try ReadinessProbe(parsing: "serial:login: *$") == .serialMatch("login: *$"))
        for bad in ["tcp:0", "tcp:70000", "tcp:x", "serial:", "serial:(", "ping", ""] {
            #expect(throws: ReadinessError.self) { try ReadinessProbe(parsing: bad) }
        }
        #expect(ReadinessProbe.tcpPort(22).description == "tcp:22")
    }

    @Test func hostForwardRulesParseAndProbeLoopbackForWildcards() {
        let f = HostForward(rule: "tcp:127.0.0.1:2222-:22")
        #expect(f == HostForward(proto: .tcp, hostAddress: "127.0.0.1", hostPort: 2222, guestPort: 22))
        #expect(HostForward(rule: "tcp::8080-10.0.2.15:80")?.probeAddress == "127.0.0.1")
        #expect(HostForward(rule: "udp:0.0.0.0:53-:53")?.proto == .udp)
        #expect(HostForward(rule: "tcp:1.2.3.4:2222-:22")?.qemuString == "tcp:1.2.3.4:2222-:22")
        for bad in ["tcp:127.0.0.1:2222", "sctp::1-:2", "tcp::0-:22", "tcp::22-:x"] { #expect(HostForward(rule: bad) == nil) }
    }

    @Test func aTCPProbeNeedsTheServersFirstBytesNotJustAnAcceptedConnection() async throws {
        for (behaviour, ready, why) in [(TCPPeer.Behaviour.banner, true, ""), (.keep, false, "sent nothing within"),
                                        (.close, false, "refused the connection")] {
            let peer = try TCPPeer(behaviour)
            defer { peer.stop() }
            let target = ReadinessTarget(hostForwards: [HostForward(proto: .tcp, hostAddress: "127.0.0.1", hostPort: peer.port, guestPort: 22)])
            if ready {
                let took = try await ReadinessCheck.wait(for: .tcpPort(22), target: target, timeout: .seconds(10))
                #expect(took < .seconds(5))
            } else {
                let error = await #expect(throws: ReadinessError.self) {
                    try await ReadinessCheck.wait(for: .tcpPort(22), target: target, timeout: .seconds(4))
                }
                #expect(error?.code == .timedOut)
                #expect(error?.description.contains(why) == true, "\(String(describing: error))")
            }
        }
    }

    @Test func probesTheTargetCannotServeFailAtOnce() async throws {
        let start = ContinuousClock.now
        for probe in [ReadinessProbe.guestAgent, .tcpPort(80), .serialMatch("x")] {
            let error = await #expect(throws: ReadinessError.self) {
                try await ReadinessCheck.wait(for: probe, target: ReadinessTarget(), timeout: .seconds(30))
            }
            #expect(error?.code == .notApplicable)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aSerialProbeMatchesALineWrittenLaterAndAnUnfinishedPrompt() async throws {
        let dir = try TempDir("ser")
        defer { dir.remove() }
        let log = dir.file("serial.log")
        try "booting\r\nnot yet\r\n".write(toFile: log, atomically: false, encoding: .utf8)
        let target = ReadinessTarget(serialLog: log)
        async let waited = ReadinessCheck.wait(for: .serialMatch("^Cloud-init v\\. [0-9.]+ finished"), target: target, timeout: .seconds(20))
        try await Task.sleep(for: .milliseconds(700))
        let h = try #require(FileHandle(forWritingAtPath: log))
        h.seekToEndOfFile()
        h.write(Data("Cloud-init v. 22.4.2 fin".utf8))
        try await Task.sleep(for: .milliseconds(700))
        h.write(Data("ished at Mon\r\n".utf8))
        try h.close()
        let took = try await waited
        #expect(took >= .milliseconds(1_000))

        // A prompt without a newline matches as it stands; a line that never comes times out.
        try "debian login: ".write(toFile: log, atomically: false, encoding: .utf8)
        try await ReadinessCheck.wait(for: .serialMatch("login: $"), target: target, timeout: .seconds(5))
        let error = await #expect(throws: ReadinessError.self) {
            try await ReadinessCheck.wait(for: .serialMatch("never"), target: target, timeout: .seconds(1))
        }
        #expect(error?.code == .timedOut)
    }
}
