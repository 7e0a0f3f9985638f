import Manifest
import QemuCtl

/// After a live vCPU change, what the guest itself says, asked through its guest agent: the applier
/// waits until the guest lists the vCPUs QEMU now has, brings any it left offline online
/// (`guest-set-vcpus`), and reports the count online. The answer goes into the change's result line;
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
}
