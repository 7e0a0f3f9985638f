import Foundation
import QMP
import QemuCtl
@testable import Reconcile
import QemuCtlTestSupport
import Testing

/// The observer against scripted monitors, for what end-to-end tests with real VMs do not reach:
/// more VMs than connections at once, connections opened ahead, one silent monitor.
/// (Observation of real QEMUs is covered end to end in QemuCtlCLITests.)
@Suite(.timeLimit(.minutes(1)), .offPool) struct ObserverRoundsTests {
    /// A monitor that answers every query the observer sends for a VM without a record.
    static func monitor(at path: String, vcpus: Int) throws -> FakeQMPPeer {
        try FakeQMPPeer(at: path) { c in
            c.greet()
            while let command = c.readCommandIfAny() {
                let reply: String
                switch command.name {
                case "query-status": reply = #"{"status": "running", "singlestep": false, "running": true}"#
                case "query-block": reply = "[]"
                case "query-cpus-fast": reply = "[" + Array(repeating: #"{"cpu-index": 0}"#, count: vcpus).joined(separator: ",") + "]"
                case "query-memory-size-summary": reply = #"{"base-memory": 67108864}"#
                default: reply = "{}"
                }
                c.send(#"{"return": \#(reply), "id": \#(command.id)}"# + "\r\n")
            }
        }
    }

    @Test func moreVMsThanConnectionsAtOnceShareTheSlots() async throws {
        let dir = try TempDir("observer")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        let names = (1...5).map { "vm\($0)" }
        let monitors = try names.enumerated().map { i, name in try Self.monitor(at: store.layout(name).socketPath, vcpus: i + 1) }
        // Two silent monitors, sorted first and last: each holds a slot until its deadline.
        let silent = try ["a-quiet", "z-quiet"].map { name in
            try FakeQMPPeer(at: store.layout(name).socketPath) { c in
                c.greet()
                c.waitForClose()
            }
        }
        let observer = Observer(store: store, timeout: .milliseconds(2000), concurrency: 2)
        // Connected ahead, as plan/diff/apply do before loading manifests: no more than the
        // observation holds at once (the first two by name).
        let early = observer.preconnect(Array(names.prefix(3)))
        #expect(early.names == Array(names.prefix(3)) && early.connections.count == 2)
        let start = ContinuousClock.now
        let report = await observer.observe(extraNames: names + ["a-quiet", "z-quiet"], preconnected: early)
        let elapsed = ContinuousClock.now - start
        #expect(report.vms.map(\.name) == ["a-quiet"] + names + ["z-quiet"])  // sorted by name
        for (i, vm) in report.vms.dropFirst().prefix(5).enumerated() {
            #expect(vm.liveness == .alive && vm.ownership == .foreign)
            #expect(vm.live?.runStatus.rawValue == "running")
            #expect(vm.live?.cpuCount == i + 1)
            #expect(vm.live?.memorySize == 64 << 20)
        }
        for vm in [report.vms.first, report.vms.last] {
            #expect(vm?.liveness == .unresponsive)
            #expect(vm?.detail?.contains("unresponsive") == true)
        }
        // The second silent one started as soon as the answering ones freed the other slot, not
        // after the first silent one's deadline: both deadlines ran side by side (one after the
        // other would take 4 s; the margin is for a loaded machine).
        #expect(elapsed >= .milliseconds(1990) && elapsed < .milliseconds(3600), "\(elapsed)")
        for m in monitors { #expect(m.waitForScript()) }
        _ = silent
    }

    @Test func connectionsOpenedAtStartAreTakenOnceAndOnlyInTheirStateDirectory() async throws {
        let dir = try TempDir("early")
        defer { dir.remove() }
        let store = StateStore(directory: dir.path)
        // A monitor that expects one connection only: the one opened early, with the opening on it.
        let monitor = try Self.monitor(at: store.layout("vm1").socketPath, vcpus: 2)
        let observer = Observer(store: store, timeout: .seconds(5))
        let early = observer.preconnect(["vm1"])
        await Observer.$early.withValue(early) {
            #expect(Observer(store: StateStore(directory: dir.path + "/other")).takeEarly() == nil)
            let taken = observer.takeEarly()
            #expect(taken?.directory == dir.path && taken?.names == ["vm1"])
            #expect(observer.takeEarly() == nil)  // once
            let report = await observer.observe(extraNames: ["vm1"], preconnected: taken)
            #expect(report.vms.first?.live?.cpuCount == 2)
        }
        #expect(monitor.waitForScript())
    }
}
