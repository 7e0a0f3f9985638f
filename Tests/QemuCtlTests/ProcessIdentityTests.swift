import Foundation
@testable import QemuCtl
import Testing

/// What proves a process is the one recorded: pid, start time, executable, and for a
/// socket the listener's credentials; never its command line.
@Suite(.timeLimit(.minutes(1))) struct ProcessIdentityTests {
    @Test func theCurrentProcessIsProvenAndAnyRecordedDifferenceIsReported() throws {
        let me = try #require(ProcessIdentity.current(pid: getpid()))
        #expect(me.executable == (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")))
        #expect(me.disproofOfLiveProcess() == nil)
        #expect(me.disproof(peerPID: getpid(), peerUID: geteuid()) == nil)
        // Another uid, another pid, an unknown peer.
        #expect(me.disproof(peerPID: getpid(), peerUID: geteuid() + 1)?.contains("runs as uid") == true)
        #expect(me.disproof(peerPID: getpid() + 1, peerUID: geteuid())?.contains("not the recorded pid") == true)
        #expect(me.disproof(peerPID: nil, peerUID: nil) != nil)
        // A reused pid (another start time) and another binary.
        var reused = me
        reused.startTime += 1
        #expect(reused.disproofOfLiveProcess()?.contains("reused") == true)
        var other = me
        other.executable = "/usr/bin/qemu-system-x86_64"
        #expect(other.disproofOfLiveProcess()?.contains("runs \(me.executable)") == true)
        // A process that is gone.
        #expect(ProcessIdentity.current(pid: Int32.max) == nil)
    }

    @Test func aSocketsListenerIsWhoTheKernelSaysNotWhoItClaimsToBe() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/l.sock"
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        // It claims to be a QEMU on its command line.
        python.arguments = ["-c", "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(4)\ntime.sleep(60)",
                            path, "-name", "guest=web", "-uuid", "0f0f0f0f-0000-4000-8000-000000000000"]
        try python.run()
        defer { kill(python.processIdentifier, SIGKILL); python.waitUntilExit() }
        let end = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: path) && Date() < end { usleep(10_000) }
        let listener = try #require(ProcessIdentity.listener(of: path))
        #expect(listener.pid == python.processIdentifier)
        #expect(listener.uid == geteuid())
        // Recorded as a QEMU it is not.
        let start = try #require(ProcessIdentity.startTime(of: python.processIdentifier))
        let claimed = ProcessIdentity(pid: python.processIdentifier, startTime: start, executable: "/usr/bin/qemu-system-x86_64")
        #expect(claimed.disproof(servingSocket: path)?.contains("not the recorded") == true)
        // Its true identity is proven, and only at its own socket.
        let actual = try #require(ProcessIdentity.current(pid: python.processIdentifier))
        #expect(actual.disproof(servingSocket: path) == nil)
        #expect(actual.disproof(servingSocket: dir.path + "/none.sock") != nil)
    }
}

/// A temporary directory removed at deinit.
private final class TempDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/qc-pid-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: p)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
