import Manifest
import Testing
@testable import Reconcile

// MARK: - Fixtures

/// 1 MiB.
let mib: UInt64 = 1 << 20
/// 1 GiB.
let gib: UInt64 = 1 << 30

/// The spec most cases start from: q35 (amd64 default), 2 of 4 vCPUs, 1 of 4 GiB, a throttled
/// root disk, an empty CD-ROM, one user NIC, VNC with a password.
func baseSpec() -> VirtualMachineSpec {
    var s = VirtualMachineSpec()
    s.arch = .amd64
    s.cpu.model = "host"
    s.cpu.count = 2
    s.cpu.maxCount = 4
    s.memory.size = gib
    s.memory.max = 4 * gib
    var root = VirtualMachineSpec.Disk(name: "root", backend: .file(path: "/images/web.qcow2", format: .qcow2))
    var t = VirtualMachineSpec.Disk.Throttle()
    t.bps = 100 * mib
    t.iops = 1000
    root.throttle = t
    s.disks = [root]
    s.cdroms = [VirtualMachineSpec.CDROM(name: "cd0")]
    s.networks = [VirtualMachineSpec.Network(name: "net0", backend: .user(.init()), mac: "52:54:00:aa:bb:01")]
    var vnc = VirtualMachineSpec.Display.VNC()
    vnc.passwordFrom = .file("/secrets/vnc")
    s.display.vnc = vnc
    s.display.video = .std
    return s
}

/// A manifest VM named `name` with the base spec, edited.
func vm(
    _ name: String, labels: [String: String] = [:], _ edit: (inout VirtualMachineSpec) -> Void = { _ in }
) -> VirtualMachine {
    var s = baseSpec()
    edit(&s)
    return VirtualMachine(
        name: name, labels: labels, spec: s, source: SourceLocation(file: "\(name).yaml", line: 3, column: 9))
}

/// A disk without limits.
func disk(_ name: String, _ interface: VirtualMachineSpec.Disk.Interface = .virtio) -> VirtualMachineSpec.Disk {
    var d = VirtualMachineSpec.Disk(name: name, backend: .file(path: "/images/\(name).qcow2", format: .qcow2))
    d.interface = interface
    return d
}

/// A user-mode NIC.
func nic(_ name: String, mac: String = "52:54:00:aa:bb:02") -> VirtualMachineSpec.Network {
    VirtualMachineSpec.Network(name: name, backend: .user(.init()), mac: mac)
}

/// The uuid every fixture VM was launched with.
let fixtureUUID = "8c1f7a52-3c1e-4c55-9f5e-0d7d1b3a9e01"

/// A managed, running VM launched with `launched`'s spec and labels, untouched since;
/// `edit` changes what QMP reports.
func running(
    _ launched: VirtualMachine, ports: Int? = 4, restartPending: Bool = false,
    secrets: [String: SecretMarker] = [:], _ edit: (inout LiveState) -> Void = { _ in }
) -> ObservedVM {
    var live = LiveState(matching: launched.spec, runStatus: .running, freeHotplugPorts: ports)
    if launched.spec.runState == .paused { live.runStatus = .paused }
    edit(&live)
    return ObservedVM(
        name: launched.name, liveness: .alive,
        record: LaunchRecord(uuid: fixtureUUID, labels: launched.labels, spec: launched.spec, secrets: secrets),
        live: live, restartPending: restartPending)
}

/// A managed VM whose QEMU is gone, with its record.
func gone(_ launched: VirtualMachine) -> ObservedVM {
    ObservedVM(
        name: launched.name, liveness: .gone,
        record: LaunchRecord(uuid: fixtureUUID, labels: launched.labels, spec: launched.spec))
}

// MARK: - Expectations

/// What one VM of a plan should look like: action, pending flag and its changes as
/// `path: old -> new (class)` (absent values `null`); nil changes are not compared.
struct Expected: Sendable, Equatable, CustomStringConvertible {
    var name: String
    var action: Action
    var pending = false
    var changes: [String]?

    init(_ name: String, _ action: Action, pending: Bool = false, _ changes: [String]? = []) {
        self.name = name
        self.action = action
        self.pending = pending
        self.changes = changes
    }

    init(_ p: VMPlan) {
        self.init(p.name, p.action, pending: p.restartPending, p.changes.map(Expected.line))
    }

    static func line(_ c: FieldChange) -> String {
        "\(c.path): \(c.old ?? "null") -> \(c.new ?? "null") (\(c.changeClass.rawValue))"
    }

    var description: String { "\(name) \(action.rawValue)\(pending ? " pending" : "") \(changes ?? ["…"])" }
}

/// One row of the planner's table: inputs and the plan expected of them.
struct PlanCase: Sendable, CustomTestStringConvertible {
    var label: String
    var desired: [VirtualMachine]
    var actual: [ObservedVM]
    var options: PlanOptions
    var expected: [Expected]

    init(
        _ label: String, desired: [VirtualMachine], actual: [ObservedVM], options: PlanOptions = PlanOptions(),
        _ expected: [Expected]
    ) {
        self.label = label
        self.desired = desired
        self.actual = actual
        self.options = options
        self.expected = expected
    }

    var testDescription: String { label }

    /// The plan of this row.
    var plan: Plan { Reconcile.plan(desired: desired, actual: actual, options: options) }
}
