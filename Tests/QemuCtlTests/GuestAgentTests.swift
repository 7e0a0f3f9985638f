import CSocketShims
import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// A scripted guest agent on the other end of a socketpair: it splits what the client sends into
/// sentinels and JSON frames (as qemu-ga's parser does), logs them, and answers with whatever bytes
/// `respond` returns for each command (nothing: no answer; `nil` from `respond` closes the socket).
final class FakeAgent: @unchecked Sendable {
    let clientFD: Int32
    private let peerFD: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var arguments: [JSONValue] = []
    private let respond: @Sendable (_ command: String, _ arguments: JSONValue?, _ count: Int) -> [[UInt8]]?

    /// Creates the pair and starts the peer thread.
    init(respond: @escaping @Sendable (_ command: String, _ arguments: JSONValue?, _ count: Int) -> [[UInt8]]?) throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw FixtureError("socketpair failed")
        }
        clientFD = fds[0]
        peerFD = fds[1]
        self.respond = respond
        let t = Thread { [self] in serve() }
        t.start()
    }

    /// What the peer received, in order: `<FF>` for a sentinel, else the command name.
    var log: [String] { lock.withLock { received } }
    /// The arguments of each entry of ``log`` (`null` for a sentinel or a command without).
    var argumentLog: [JSONValue] { lock.withLock { arguments } }

    /// The bytes qemu-ga sends for a `guest-sync-delimited` with `id`.
    static func syncReply(_ id: Int) -> [UInt8] { [0xFF] + Array("{\"return\": \(id)}\n".utf8) }
    /// `{"return": value}` as the agent sends it.
    static func reply(_ value: JSONValue) -> [UInt8] { Array("{\"return\": \(value)}\n".utf8) }

    private func serve() {
        var reader = QMPFrameReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var counts: [String: Int] = [:]
        while true {
            let n = buffer.withUnsafeMutableBytes { read(peerFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            for b in buffer[0..<n] {
                if b == 0xFF {
                    lock.withLock {
                        received.append("<FF>")
                        arguments.append(.null)
                    }
                    reader = QMPFrameReader()
                    continue
                }
                reader.append([b])
                guard let frame = try? reader.nextFrame(), let value = try? JSONValue(parsing: frame),
                      let command = value["execute"]?.stringValue else { continue }
                counts[command, default: 0] += 1
                lock.withLock {
                    received.append(command)
                    arguments.append(value["arguments"] ?? .null)
                }
                guard let writes = respond(command, value["arguments"], counts[command]!) else {
                    close(peerFD)
                    return
                }
                for w in writes {
                    _ = w.withUnsafeBytes { write(peerFD, $0.baseAddress, $0.count) }
                }
            }
        }
        close(peerFD)
    }
}

@Suite(.timeLimit(.minutes(1)), .offPool) struct GuestAgentFramerTests {
    @Test func bytesBeforeTheSentinelAreDroppedAndFramesAfterItAreRead() throws {
        var f = GuestAgentFramer()
        f.beginSync()
        f.append(Array("{\"return\": 5}\n{\"retu".utf8))
        #expect(try f.nextFrame() == nil)
        f.append([0xFF] + Array("{\"return\": 7}\n".utf8))
        #expect(try f.nextFrame() == ["return": 7])
        #expect(f.discardedBytes == 20)
        f.endSync()
        f.append(Array("{\"return\": {}}".utf8))
        #expect(try f.nextFrame() == ["return": [:]])
    }

    @Test func aLaterSentinelRestartsTheStreamWhileSyncing() throws {
        var f = GuestAgentFramer()
        f.beginSync()
        // An earlier sync's reply, then half a frame, then our sync's sentinel and reply: all before
        // the last sentinel is stale.
        f.append([0xFF] + Array("{\"return\": 1}\n{\"return\": {\"half".utf8) + [0xFF] + Array("{\"return\": 2}".utf8))
        #expect(try f.nextFrame() == ["return": 2])
        // Delivered in separate reads, the earlier sync's reply is a frame the client skips by its id,
        // and the half frame still cannot spoil the next one.
        f.beginSync()
        f.append([0xFF] + Array("{\"return\": 3}\n{\"return\": {\"half".utf8))
        #expect(try f.nextFrame() == ["return": 3])
        f.append([0xFF] + Array("{\"return\": 4}".utf8))
        #expect(try f.nextFrame() == ["return": 4])
        #expect(try f.nextFrame() == nil)
    }

    @Test func aSentinelOutsideASyncIsAProtocolViolation() throws {
        var f = GuestAgentFramer()
        f.append([0xFF] + Array("{\"return\": 1}".utf8))
        let error = #expect(throws: GuestAgentError.self) { try f.nextFrame() }
        #expect(error?.code == .protocolViolation)
    }

    @Test func invalidJSONInAFrameIsAProtocolViolation() throws {
        var f = GuestAgentFramer()
        f.append(Array("{\"return\": tru}".utf8))
        let error = #expect(throws: GuestAgentError.self) { try f.nextFrame() }
        #expect(error?.code == .protocolViolation)
    }
}

@Suite(.timeLimit(.minutes(1)), .offPool) struct GuestAgentClientTests {
    @Test func theClientSendsTheSentinelThenSyncsPastStaleOutput() async throws {
        let peer = try FakeAgent { command, args, _ in
            switch command {
            case "guest-sync-delimited":
                // Stale output of an earlier client, a stale sync reply, then ours — in pieces.
                let id = args!["id"]!.intValue!
                return [Array("{\"return\": {\"stale\": true}}\n{\"ret".utf8), FakeAgent.syncReply(id - 1),
                        Array(FakeAgent.syncReply(id).prefix(4)), Array(FakeAgent.syncReply(id).dropFirst(4))]
            case "guest-ping": return [FakeAgent.reply([:])]
            default: return [[]]
            }
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        try await agent.ping(timeout: .seconds(5))
        #expect(peer.log == ["<FF>", "guest-sync-delimited", "guest-ping"])
        // Later calls do not sync again while the stream is in step.
        try await agent.ping(timeout: .seconds(5))
        #expect(peer.log == ["<FF>", "guest-sync-delimited", "guest-ping", "guest-ping"])
    }

    @Test func aReplyArrivingOneByteAtATimeIsAssembled() async throws {
        let peer = try FakeAgent { command, args, _ in
            let bytes = command == "guest-sync-delimited" ? FakeAgent.syncReply(args!["id"]!.intValue!)
                : FakeAgent.reply(["id": "debian", "version-id": "12", "pretty-name": "Debian GNU/Linux 12 (bookworm)"])
            return bytes.map { [$0] }
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        let info = try await agent.osInfo(timeout: .seconds(5))
        #expect(info.id == "debian")
        #expect(info.versionID == "12")
        #expect(info.prettyName == "Debian GNU/Linux 12 (bookworm)")
    }

    @Test func aTimedOutCallsLateReplyIsNeverTakenForTheNextAnswer() async throws {
        let peer = try FakeAgent { command, args, count in
            switch command {
            case "guest-sync-delimited":
                // The late answer to the first guest-get-osinfo arrives just before the second sync's reply.
                let late = count == 2 ? FakeAgent.reply(["id": "stale"]) : []
                return [late, FakeAgent.syncReply(args!["id"]!.intValue!)]
            case "guest-get-osinfo":
                return count == 1 ? [[]] : [FakeAgent.reply(["id": "fresh"])]
            default: return [[]]
            }
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        let start = ContinuousClock.now
        let error = await #expect(throws: GuestAgentError.self) { try await agent.osInfo(timeout: .milliseconds(400)) }
        #expect(error?.code == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(3))
        let info = try await agent.osInfo(timeout: .seconds(5))
        #expect(info.id == "fresh")
        #expect(peer.log == ["<FF>", "guest-sync-delimited", "guest-get-osinfo", "<FF>", "guest-sync-delimited", "guest-get-osinfo"])
    }

    @Test func anAgentErrorIsCommandFailedAndKeepsTheStreamInStep() async throws {
        let peer = try FakeAgent { command, args, _ in
            switch command {
            case "guest-sync-delimited": return [FakeAgent.syncReply(args!["id"]!.intValue!)]
            case "guest-set-vcpus":
                return [Array(#"{"error": {"class": "GenericError", "desc": "Permission denied"}}"#.utf8)]
            default: return [FakeAgent.reply([:])]
            }
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        let error = await #expect(throws: GuestAgentError.self) {
            _ = try await agent.setVCPUs([GuestVCPU(logicalID: 1, online: true)], timeout: .seconds(5))
        }
        #expect(error?.code == .commandFailed)
        #expect(error?.errorClass == "GenericError")
        #expect(error?.description.contains("Permission denied") == true)
        try await agent.ping(timeout: .seconds(5))
        #expect(peer.log == ["<FF>", "guest-sync-delimited", "guest-set-vcpus", "guest-ping"])
        #expect(peer.argumentLog[2] == ["vcpus": [["logical-id": 1, "online": true]]])
    }

    @Test func typedRepliesAreReadAndMalformedOnesRefused() async throws {
        let peer = try FakeAgent { command, args, _ in
            switch command {
            case "guest-sync-delimited": return [FakeAgent.syncReply(args!["id"]!.intValue!)]
            case "guest-get-vcpus":
                return [FakeAgent.reply([["logical-id": 0, "online": true, "can-offline": false],
                                         ["logical-id": 1, "online": false, "can-offline": true]])]
            case "guest-set-vcpus": return [FakeAgent.reply(1)]
            case "guest-get-memory-blocks":
                return [FakeAgent.reply([["phys-index": 8, "online": false, "can-offline": true]])]
            case "guest-set-memory-blocks":
                return [FakeAgent.reply([["phys-index": 8, "response": "success"]])]
            case "guest-network-get-interfaces":
                return [FakeAgent.reply([["name": "lo", "ip-addresses": [["ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8]]],
                                         ["name": "enp0s1", "hardware-address": "52:54:00:12:34:56",
                                          "ip-addresses": [["ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24]]]])]
            case "guest-get-osinfo": return [FakeAgent.reply([1, 2])]  // not an object
            default: return [[]]
            }
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        let after = try await agent.onlineAllVCPUs(timeout: .seconds(5))
        #expect(after.count == 2)
        #expect(peer.log.filter { $0 == "guest-set-vcpus" }.count == 1)
        #expect(peer.argumentLog[peer.log.firstIndex(of: "guest-set-vcpus")!] == ["vcpus": [["logical-id": 1, "online": true]]])
        let blocks = try await agent.memoryBlocks(timeout: .seconds(5))
        #expect(blocks == [GuestMemoryBlock(physicalIndex: 8, online: false, canOffline: true)])
        let responses = try await agent.setMemoryBlocks([GuestMemoryBlock(physicalIndex: 8, online: true)], timeout: .seconds(5))
        #expect(responses.count == 1 && responses[0].succeeded)
        let nics = try await agent.networkInterfaces(timeout: .seconds(5))
        #expect(nics.map(\.name) == ["lo", "enp0s1"])
        #expect(nics[1].ipAddresses == [GuestIPAddress(address: "10.0.2.15", type: "ipv4", prefix: 24)])
        let error = await #expect(throws: GuestAgentError.self) { _ = try await agent.osInfo(timeout: .seconds(5)) }
        #expect(error?.code == .unexpectedReply)
    }

    @Test func aPeerThatClosesGivesClosed() async throws {
        let peer = try FakeAgent { command, args, _ in
            command == "guest-sync-delimited" ? [FakeAgent.syncReply(args!["id"]!.intValue!)] : nil
        }
        let agent = GuestAgent(adopting: peer.clientFD, description: "fake")
        defer { agent.close() }
        let error = await #expect(throws: GuestAgentError.self) { try await agent.ping(timeout: .seconds(5)) }
        #expect(error?.code == .closed)
    }

    @Test func nothingListeningIsConnectFailedAndASilentPeerTimesOut() async throws {
        let dir = try TempDir("qga")
        defer { dir.remove() }
        let missing = await #expect(throws: GuestAgentError.self) {
            _ = try await GuestAgent.connect(socketPath: dir.file("none.sock"), timeout: .seconds(1))
        }
        #expect(missing?.code == .connectFailed)
        // A listener that accepts and never answers: what QEMU's chardev is while the guest has no agent.
        let listener = csock_unix_listen(dir.file("qga.sock"), 8)
        #expect(listener >= 0)
        defer { close(listener) }
        let start = ContinuousClock.now
        let silent = await #expect(throws: GuestAgentError.self) {
            _ = try await GuestAgent.connect(socketPath: dir.file("qga.sock"), timeout: .milliseconds(500))
        }
        #expect(silent?.code == .timedOut)
        #expect(silent?.description.contains("is qemu-guest-agent running in the guest?") == true)
        #expect(ContinuousClock.now - start < .seconds(3))
    }
}
