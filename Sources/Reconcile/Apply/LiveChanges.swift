import Manifest
import QemuCtl

// MARK: - LiveChange

/// One live-changeable field (or a few fields changed together): how a change of it is
/// classified for one running VM, and how it is carried out and read back.
///
/// The planner and the applier both go through ``LiveChanges/table``, so `plan` can only promise
/// what `apply` does: a field ``FieldTable`` calls ``ChangeClass/live`` without a handler is a
/// test failure (`LiveChangeTableTests`). Adding a live field is one handler file in
/// `Apply/LiveChanges/` plus its entry in the table.
protocol LiveChange: Sendable {
    /// The ``FieldTable`` paths this handler owns, with `[]` for elements: `spec.disks[].throttle.bps`;
    /// a collection (`spec.disks`) stands for adding and removing its elements.
    var fields: [String] { get }

    /// Whether `change` can be made live on this VM (it is ``ChangeClass/live`` in the table), and why.
    /// - Parameter budget: What adds of this plan have used up so far (free hot-plug ports).
    func classify(_ change: LiveChangeSite, on vm: PlanningVM, budget: inout HotplugBudget) -> LiveVerdict

    /// Makes `change` on the running VM, reads it back, and updates ``LiveStep/newSpec``.
    /// - Throws: ``ApplyError`` naming the field and what QEMU said.
    func apply(_ change: FieldChange, _ step: inout LiveStep) async throws(ApplyError)
}

// MARK: - Table

/// The one table of live changes, keyed by ``FieldTable`` paths.
enum LiveChanges {
    /// Every handler.
    static let table: [any LiveChange] = [
        RunStateChange(), DiskThrottleChange(), CDROMMediaChange(), NICLinkChange(), DisplayPasswordChange(),
        VCPUCountChange(), MemorySizeChange(), DiskHotplug(), NICHotplug(), USBHotplug(), USBTabletChange(),
    ]

    /// Handlers by the field paths they own.
    static let byField: [String: any LiveChange] = {
        var out: [String: any LiveChange] = [:]
        for handler in table {
            for field in handler.fields {
                precondition(out[field] == nil, "two live handlers for \(field)")
                out[field] = handler
            }
        }
        return out
    }()

    /// The handler of a change's `path` (`spec.disks[data].throttle.bps`, `spec.networks[lan]`), if any.
    static func handler(for path: String) -> (any LiveChange)? {
        let field = fieldPath(path)
        if let h = byField[field] { return h }
        // An element (`spec.disks[]`) is added or removed through its collection's handler.
        if field.hasSuffix("[]") { return byField[String(field.dropLast(2))] }
        return nil
    }

    /// `spec.disks[data].throttle.bps` → `spec.disks[].throttle.bps`.
    static func fieldPath(_ path: String) -> String {
        var out = ""
        var skipping = false
        for ch in path {
            if ch == "[" { skipping = true; out.append("[") }
            else if ch == "]" { skipping = false; out.append("]") }
            else if !skipping { out.append(ch) }
        }
        return out
    }

    /// The element name in a path's first brackets: `spec.disks[data].throttle` → `data`.
    static func element(_ path: String) -> String? {
        guard let open = path.firstIndex(of: "["), let close = path[open...].firstIndex(of: "]") else { return nil }
        return String(path[path.index(after: open)..<close])
    }
}

// MARK: - Planning side

/// One difference the planner found in a live field of a running VM.
struct LiveChangeSite: Sendable {
    /// Where: `spec.cpu.count`, `spec.disks[data]`.
    var path: String
    /// Add, remove or modify.
    var operation: FieldChange.Operation
    /// The desired leaf (nil when removed, and for collection elements).
    var desired: Leaf? = nil
    /// The actual leaf (nil when added, and for collection elements).
    var actual: Leaf? = nil

    /// The element name in the first brackets, if any.
    var element: String? { LiveChanges.element(path) }
}

/// Whether a change is made live on this VM, and why.
struct LiveVerdict: Sendable, Equatable {
    /// ``ChangeClass/live`` or ``ChangeClass/restart``.
    var changeClass: ChangeClass
    /// A few words for the plan.
    var reason: String

    /// Made live.
    static func live(_ reason: String) -> LiveVerdict { LiveVerdict(changeClass: .live, reason: reason) }
    /// Needs a relaunch on this VM.
    static func restart(_ reason: String) -> LiveVerdict { LiveVerdict(changeClass: .restart, reason: reason) }
}

/// What the planner knows of one running VM when classifying its live changes.
struct PlanningVM: Sendable {
    /// The manifest's spec.
    let desired: VirtualMachineSpec
    /// What the VM was launched with (and live changes since).
    let record: LaunchRecord
    /// What QMP reported.
    let live: LiveState
    /// The record with QMP's values on top.
    let actualSpec: VirtualMachineSpec
    /// Element paths (`spec.disks[data]`) of devices plugged after launch.
    let hotplugged: Set<String>

    /// The machine has PCIe root ports for hot-plug (q35).
    var pcie: Bool {
        let s = record.spec
        if let type = s.machine.type { return type == "q35" || type.hasPrefix("pc-q35") }
        return s.arch == .amd64 || s.arch == .i386
    }

    /// The machine type as written, for messages.
    var machineName: String {
        record.spec.machine.type ?? (pcie ? "q35" : "the default machine of \(record.spec.arch.rawValue)")
    }

    /// The restart verdict of a machine without hot-plug root ports.
    var noPCIe: LiveVerdict { .restart("machine \(machineName) has no hot-plug root ports (q35 only)") }
}

/// The hot-plug root ports a plan's adds take, one each, in field order.
struct HotplugBudget: Sendable {
    /// Root ports still free.
    var freePorts: Int
    /// Whether the count is known (QEMU was asked).
    let portsKnown: Bool

    /// The budget of a VM as observed.
    init(_ live: LiveState) {
        freePorts = live.freeHotplugPorts ?? 0
        portsKnown = live.freeHotplugPorts != nil
    }

    /// Takes a free root port, if one is left.
    mutating func takePort() -> LiveVerdict {
        if freePorts > 0 {
            freePorts -= 1
            return .live("hot-plug into a free root port")
        }
        return .restart(portsKnown ? "no free hot-plug root port (machine.hotplugPorts)" : "free hot-plug root ports unknown")
    }
}

// MARK: - Applying side

/// One VM's live changes in progress: the handlers' view of the applier.
struct LiveStep: Sendable {
    /// The applier (state directory, deadlines).
    let applier: Applier
    /// The running VM.
    let instance: Instance
    /// The manifest.
    let desired: VirtualMachine
    /// The manifest mapped onto a QEMU configuration (once per VM).
    let desiredConfig: VMConfig
    /// The secret markers' key.
    let markers: SecretMarkers
    /// The record; handlers add secret markers.
    var stored: StoredRecord
    /// The spec as changed so far: what the record says once the step ends.
    var newSpec: VirtualMachineSpec
    /// The VM's messages.
    var log: Applier.Log
    /// Keys of work done once for several changes (a disk's throttle).
    var done: Set<String> = []
    /// Set when the VM was stopped: nothing after that applies.
    var stopped = false

    /// Deadline for each QMP call.
    var timeout: Duration { applier.timeout }
    /// How long the guest may take to release a device.
    var stopTimeout: Duration { applier.stopTimeout }

    /// The id QEMU knows device `id` by (an adopted VM keeps the ids it was started with).
    func qemuID(_ id: DeviceID) -> String {
        stored.adopted?.deviceAliases.first { $0.value == id.rawValue }?.key ?? id.rawValue
    }

    /// Runs one QEMU operation; its error becomes an ``ApplyError`` after `context`.
    func run<T>(_ context: String, _ body: () async throws -> T) async throws(ApplyError) -> T {
        do { return try await body() } catch {
            throw Applier.stepError(error, context)
        }
    }
}
