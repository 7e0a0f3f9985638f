import CSocketShims
import Foundation
import QMP
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// A back end that accepts QEMU's connection at start and never answers must not hold a start forever
/// (found by the option-injection test: a VDE "switch" that accepted and stayed silent hung `apply`).
@Suite(.timeLimit(.minutes(1)), .offPool) struct StartDeadlineTests {
    @Test func startFailsAtTheLaunchDeadlineAndLeavesNoQEMU() async throws {
        let dir = try TempDir("dl")
        defer { dir.remove() }
        // A silent NBD "server": the connection is accepted by the kernel (backlog), the handshake never comes.
        let socket = dir.file("silent.sock")
        let listener = csock_unix_listen(socket, 8)
        #expect(listener >= 0)
        defer { close(listener) }
        var config = VMConfig(name: "slow")
        config.machine = Machine(type: "q35", accel: .tcg)
        config.memory.sizeMiB = 64
        config.disks = [Disk(name: "d", backend: .nbd(NBDDisk(server: .unix(path: socket))))]
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: InstanceError.self) {
            try await Instance.start(config, options: StartOptions(socketDirectory: dir.file("s"), startPaused: true,
                                                                   launchTimeout: .seconds(2)))
        }
        let took = clock.now - start
        #expect(error?.code == .startFailed)
        #expect(error?.message.contains("did not finish starting VM slow within 2") == true, "\(error?.message ?? "")")
        #expect(took >= .seconds(2) && took < .seconds(20), "\(took)")
        // Neither QEMU's launching parent nor its daemon is left.
        var leftovers: [Int32] = []
        for _ in 0..<200 {
            leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmd.contains(dir.path + "/") else { return false }
                let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?.split(separator: " ").first
                return state != "Z"
            }
            if leftovers.isEmpty { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(leftovers.isEmpty, "QEMU processes left: \(leftovers)")
        #expect(RuntimeLayout(name: "slow", socketDirectory: dir.file("s")).runningPID() == nil)
    }
}
