import Manifest
import QemuCtl

/// After a live vCPU or memory change, what the guest itself says, asked through its guest agent: the
/// applier waits until the guest lists the vCPUs QEMU now has (or memory blocks covering the new size),
/// brings any it left offline online (`guest-set-vcpus`, `guest-set-memory-blocks`), and reports what is
/// online. The answer goes into the change's result line;
/// the change itself (made and read back over QMP) stands whatever the guest says.
enum GuestConfirmation {
    /// How long the guest may take to list the new vCPUs and bring them online.
    static let deadline: Duration = .seconds(60)
    /// The deadline of each agent call.
    static let callTimeout: Duration = .seconds(5)

    /// Confirms that the guest of `step`'s VM has `count` vCPUs online; returns the words for the result line.
    static func vcpus(_ count: Int, _ step: LiveStep) async -> String {
        let socket = step.applier.store.layout(step.desired.name).guestAgentSocket
        guard step.stored.launch.spec.guestAgent, Posix.fileExists(socket) else {
            return "not confirmed in the guest: no guest agent (spec.guestAgent)"
        }
        let end = ContinuousClock.now + deadline
        var last = "no answer yet"
        while true {
            do {
                let (seen, onlined) = try await GuestAgent.withConnection(socketPath: socket, timeout: callTimeout) {
                    agent -> ([GuestVCPU], Int) in
                    let listed = try await agent.vcpus(timeout: callTimeout)
                    guard listed.count == count else { return (listed, 0) }
                    let offline = listed.filter { !$0.online }.count
                    return offline == 0 ? (listed, 0) : (try await agent.onlineAllVCPUs(timeout: callTimeout), offline)
                }
                let online = seen.filter(\.online).count
                if seen.count == count && online == count {
                    return "\(count) vCPU\(count == 1 ? "" : "s") online in the guest (guest agent"
                        + (onlined > 0 ? "; \(onlined) brought online with guest-set-vcpus)" : ")")
                }
                last = "the guest lists \(seen.count) vCPUs, \(online) online"
            } catch {
                last = "\(error)"
            }
            if ContinuousClock.now >= end { return "not confirmed in the guest within \(deadline): \(last)" }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Confirms that the guest of `step`'s VM has memory blocks covering `size` online (within one block:
    /// the guest's blocks need not cover every byte of RAM); returns the words for the result line.
    static func memory(_ size: UInt64, _ step: LiveStep) async -> String {
        let socket = step.applier.store.layout(step.desired.name).guestAgentSocket
        guard step.stored.launch.spec.guestAgent, Posix.fileExists(socket) else {
            return "not confirmed in the guest: no guest agent (spec.guestAgent)"
        }
        let end = ContinuousClock.now + deadline
        var last = "no answer yet"
        var onlined = 0
        while true {
            do {
                let (blocks, blockSize, nowOnline) = try await GuestAgent.withConnection(socketPath: socket, timeout: callTimeout) {
                    agent -> ([GuestMemoryBlock], UInt64, Int) in
                    let blockSize = try await agent.memoryBlockSize(timeout: callTimeout)
                    let listed = try await agent.memoryBlocks(timeout: callTimeout)
                    let offline = listed.filter { !$0.online }.map { GuestMemoryBlock(physicalIndex: $0.physicalIndex, online: true) }
                    guard !offline.isEmpty else { return (listed, blockSize, 0) }
                    let answers = try await agent.setMemoryBlocks(offline, timeout: callTimeout)
                    return (try await agent.memoryBlocks(timeout: callTimeout), blockSize, answers.filter { $0.response == "success" }.count)
                }
                onlined += nowOnline
                let online = UInt64(blocks.filter(\.online).count) * blockSize
                if online + blockSize > size && blocks.allSatisfy(\.online) {
                    return "\(ByteSize.format(online)) in \(blocks.count) memory blocks online in the guest (guest agent"
                        + (onlined > 0 ? "; \(onlined) brought online with guest-set-memory-blocks)" : ")")
                }
                last = "the guest has \(ByteSize.format(online)) online in \(blocks.filter(\.online).count) of \(blocks.count) memory blocks"
            } catch {
                last = "\(error)"
            }
            if ContinuousClock.now >= end { return "not confirmed in the guest within \(deadline): \(last)" }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
