import Manifest
import Testing
@testable import Reconcile

@Suite("Rendering")
struct RenderTests {
    /// One VM of every kind: pending restarts, a create, a prune, drift plus hot-plug, an unresponsive VM.
    static var mixedPlan: Plan {
        plan(
            desired: [
                vm("app") { $0.cpu.model = "max" },
                vm("db") { $0.machine.type = "pc-q35-9.0"; $0.runState = .paused },
                vm("hello"),
                vm("web", labels: ["role": "web"]) { $0.disks.append(disk("data")) },
                vm("wedged"),
            ],
            actual: [
                running(vm("app")), running(vm("db")), running(vm("old")),
                running(PlanCase.web) { $0.disks![0].throttle!.bps = 50 * mib },
                ObservedVM(name: "wedged", liveness: .unresponsive, detail: "QMP did not answer within 2s"),
            ],
            options: PlanOptions(prune: true))
    }

    @Test func goldenMixedPlan() {
        #expect(PlanRenderer().render(Self.mixedPlan) == """
            ~ app: update, restart pending (1 change needs a relaunch; use --restart=if-needed)
                ~ spec.cpu.model: "host" -> "max" (restart, pending) # needs a relaunch
            ~ db: update, restart pending (1 change needs a relaunch; use --restart=if-needed)
                ~ spec.runState: running -> paused (live) # pause
                ~ spec.machine.type: null -> "pc-q35-9.0" (restart, pending) # needs a relaunch
            + hello: create (not running)
                + spec.runState: running (live)
                + spec.cpu.model: "host" (restart)
                + spec.cpu.count: 2 (live)
                + spec.cpu.maxCount: 4 (restart)
                + spec.memory.size: 1GiB (live)
                + spec.memory.max: 4GiB (restart)
                + spec.disks[root]: file "/images/web.qcow2" (qcow2), virtio (live)
                + spec.disks[root].throttle.bps: 100MiB (live)
                + spec.disks[root].throttle.iops: 1000 (live)
                + spec.cdroms[cd0]: ide, empty (restart)
                + spec.networks[net0]: user, virtio-net-pci, mac 52:54:00:aa:bb:01 (live)
                + spec.display.vnc.listen: "none" (restart)
                + spec.display.vnc.passwordFrom: (sensitive) (live)
                + spec.display.video: std (restart)
            - old: delete (not in any manifest; disks are kept)
            ~ web: update (2 live changes, 1 record-only change)
                + metadata.labels[role]: "web" (metadata) # record only
                ~ spec.disks[root].throttle.bps: 50MiB -> 100MiB (live) # set live (block_set_io_throttle); drift (changed outside qemuctl)
                + spec.disks[data]: file "/images/data.qcow2" (qcow2), virtio (live) # hot-plug into a free root port
            ! wedged: unresponsive (QMP did not answer within 2s; not planned, never launched twice)

            Plan: 1 to create, 1 to update, 0 to restart, 1 to delete. 2 restarts pending (use --restart=if-needed). 1 VM not planned.

            """)
    }

    @Test func goldenRestartAndRemoval() {
        let p = plan(
            desired: [vm("web") { $0.cpu.model = "max"; $0.networks[0].link = .down }],
            actual: [running(vm("web") { $0.disks.append(disk("data")) }) { $0.disks![1].hotplugged = true }],
            options: PlanOptions(restart: .ifNeeded))
        #expect(PlanRenderer().render(p) == """
            -/+ web: restart (1 change needs a relaunch; disks and uuid kept)
                ~ spec.cpu.model: "host" -> "max" (restart) # needs a relaunch
                - spec.disks[data]: file "/images/data.qcow2" (qcow2), virtio (live) # hot-unplug; the image is kept
                ~ spec.networks[net0].link: up -> down (live) # link set live (set_link)

            Plan: 0 to create, 0 to update, 1 to restart, 0 to delete.

            """)
    }

    @Test func goldenWithoutReasons() {
        let p = plan(
            desired: [vm("web") { $0.runState = .paused }], actual: [running(PlanCase.web)], options: PlanOptions())
        #expect(PlanRenderer(reasons: false).render(p) == """
            ~ web: update (1 live change)
                ~ spec.runState: running -> paused (live)

            Plan: 0 to create, 1 to update, 0 to restart, 0 to delete.

            """)
    }

    @Test func noChanges() {
        let p = plan(desired: [PlanCase.web], actual: [running(PlanCase.web)], options: PlanOptions())
        #expect(PlanRenderer().render(p) == "No changes. The VMs match their manifests.\n")
        #expect(PlanRenderer(showUnchanged: true).render(p) == """
              web: no-op (matches its manifest)

            No changes. The VMs match their manifests.

            """)
    }

    @Test func revertedPendingRestartIsShownButIsNoChange() {
        let p = plan(
            desired: [PlanCase.web], actual: [running(PlanCase.web, restartPending: true)], options: PlanOptions())
        #expect(PlanRenderer().render(p) == """
              web: no-op, restart no longer pending (matches its manifest again; the pending restart is dropped)

            No changes. The VMs match their manifests.

            """)
    }

    @Test func colourIsOffByDefaultAndANSIWhenAsked() {
        let plain = PlanRenderer().render(Self.mixedPlan)
        #expect(!plain.contains("\u{1B}["))
        let coloured = PlanRenderer(color: true).render(Self.mixedPlan)
        #expect(coloured.contains("\u{1B}[32m+\u{1B}[0m hello: create"))
        #expect(coloured.contains("\u{1B}[31m-\u{1B}[0m old: delete"))
        #expect(coloured.contains("\u{1B}[33m~\u{1B}[0m spec.cpu.model"))
    }
}

// MARK: - Exit codes

/// A plan and the two exit statuses the CLI derives from it.
struct ExitCase: Sendable, CustomTestStringConvertible {
    var label: String
    var result: Plan
    var diff: Int32
    var detailed: Int32
    var testDescription: String { label }

    static let all: [ExitCase] = [
        ExitCase(
            label: "no differences",
            result: plan(desired: [PlanCase.web], actual: [running(PlanCase.web)], options: PlanOptions()),
            diff: 0, detailed: 0),
        ExitCase(
            label: "drift", result: plan(
                desired: [PlanCase.web], actual: [running(PlanCase.web) { $0.runStatus = .paused }],
                options: PlanOptions()),
            diff: 1, detailed: 2),
        ExitCase(
            label: "restart pending only", result: plan(
                desired: [vm("web") { $0.cpu.model = "max" }], actual: [running(PlanCase.web)], options: PlanOptions()),
            diff: 1, detailed: 2),
        ExitCase(label: "create", result: plan(desired: [PlanCase.web], actual: [], options: PlanOptions()), diff: 1, detailed: 2),
        ExitCase(
            label: "unresponsive VM", result: plan(
                desired: [PlanCase.web], actual: [ObservedVM(name: "web", liveness: .unresponsive)],
                options: PlanOptions()),
            diff: 2, detailed: 1),
    ]
}

@Suite("Exit codes")
struct ExitCodeTests {
    @Test(arguments: ExitCase.all)
    func diffAndDetailedExitCodes(_ c: ExitCase) {
        #expect(c.result.diffExitCode == c.diff)
        #expect(c.result.detailedExitCode == c.detailed)
    }

    @Test func errorCodes() {
        #expect(Plan.diffErrorExitCode == 2)
        #expect(Plan.planErrorExitCode == 1)
    }
}
