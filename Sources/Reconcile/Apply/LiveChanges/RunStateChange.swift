import Manifest
import QemuCtl

/// `spec.runState`: resume, pause (resetting a guest that shut down or panicked first), or stop.
struct RunStateChange: LiveChange {
    var fields: [String] { ["spec.runState"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        let s = vm.live.runStatus
        return switch vm.desired.runState {
        case .running: .live(s.needsReset ? "guest is \(s.rawValue): reset and resume" : "resume")
        case .paused: .live(s.needsReset ? "guest is \(s.rawValue): reset and pause" : "pause")
        case .stopped: .live("shut down (graceful stop)")
        }
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        let wanted = step.desired.spec.runState
        let instance = step.instance
        let timeout = step.timeout
        switch wanted {
        case .running:
            try await step.run("spec.runState") {
                if [.shutdown, .guestPanicked, .internalError].contains(instance.state) { try await instance.reset(timeout: timeout) }
                try await instance.resume(timeout: timeout)
            }
        case .paused:
            try await step.run("spec.runState") { try await instance.pause(timeout: timeout) }
        case .stopped:
            let stopTimeout = step.stopTimeout
            let outcome = try await step.run("spec.runState") { try await instance.stop(timeout: stopTimeout) }
            step.log.say("~ spec.runState stopped (\(outcome))")
            step.newSpec.runState = wanted
            step.stopped = true
            return
        }
        let state = try await step.run("spec.runState") { try await instance.refreshState(timeout: timeout) }
        let ok = wanted == .running ? state == .running : (state == .paused || state == .prelaunch)
        guard ok else { throw ApplyError("runState \(wanted.rawValue) requested, QEMU reports \(state)") }
        step.newSpec.runState = wanted
        step.log.say("~ spec.runState \(wanted.rawValue) (QEMU reports \(state))")
    }
}
