import Manifest
import QemuCtl

/// `spec.cdroms[].path`: the media is changed or ejected live and read back.
struct CDROMMediaChange: LiveChange {
    var fields: [String] { ["spec.cdroms[].path"] }

    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict {
        .live("media changed live")
    }

    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError) {
        guard let cd = LiveChanges.element(change.path) else { throw ApplyError("\(change.path): not a CD-ROM") }
        let media = step.desired.spec.cdroms.first { $0.name == cd }?.path
        let device = step.qemuID(.cdrom(cd))
        let instance = step.instance
        let timeout = step.timeout
        let read = try await step.run("changing the media of \(cd)") {
            if let media {
                try await instance.changeMedia(device: device, file: media, timeout: timeout)
            } else {
                try await instance.ejectMedia(device: device, timeout: timeout)
            }
            return try await instance.media(device: device, timeout: timeout)
        }
        guard read == media else {
            throw ApplyError("spec.cdroms[\(cd)].path: QEMU reports \(read.map { "\"\($0)\"" } ?? "an empty drive") after the change")
        }
        if let i = step.newSpec.cdroms.firstIndex(where: { $0.name == cd }) { step.newSpec.cdroms[i].path = media }
        step.log.say("~ spec.cdroms[\(cd)].path \(media == nil ? "ejected" : "inserted") and read back")
    }
}
