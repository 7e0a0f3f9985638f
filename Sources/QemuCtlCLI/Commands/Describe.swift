import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Manifest
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl describe NAME`: every fact about one VM and where it came from.
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one VM in detail; each value says whether it came from QMP or from the launch record."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name.", transform: VMNameArgument.parse)
        var name: String

        @Option(name: .shortAndLong, help: "table (text) or json.")
        var output: OutputFormat = .table

        struct Field: Codable {
            var field: String
            var value: String
            var source: String
        }

        func run() async throws {
            let store = global.store
            let (observed, warning) = await Observer(store: store, timeout: global.deadline).observe(name)
            if let warning { Terminal.warn(warning) }
            guard let vm = observed, vm.record != nil || vm.liveness != .gone else {
                Terminal.fail("no VM named \(name) in \(store.directory)",
                              hint: "`qemuctl get` lists the VMs there; --state-dir (or QEMUCTL_STATE_DIR) selects another state directory")
                throw ExitCode(1)
            }
            let stored = try? store.loadRecord(StoredRecord.self, name: name)
            var fields: [Field] = []
            func add(_ f: String, _ v: String?, _ s: String) { if let v { fields.append(Field(field: f, value: v, source: s)) } }
            let layout = store.layout(name)
            add("name", name, "state dir")
            add("managed", vm.ownership == .managed ? "yes" : "no (no launch record)", "state dir")
            add("liveness", vm.liveness.rawValue + (vm.detail.map { " (\($0))" } ?? ""), "process + QMP")
            add("socket", layout.socketPath, "state dir")
            if let live = vm.live {
                add("runState", live.runStatus.rawValue, "qmp")
                add("cpus", live.cpuCount.map(String.init), "qmp")
                add("memory", live.memorySize.map { ByteSizeText.format($0) }, "qmp")
                for d in live.disks ?? [] {
                    add("disks[\(d.name)].throttle", d.throttle.map { t in
                        [("bps", t.bps), ("iops", t.iops), ("bpsRead", t.bpsRead), ("bpsWrite", t.bpsWrite),
                         ("iopsRead", t.iopsRead), ("iopsWrite", t.iopsWrite)]
                            .compactMap { k, v in v.map { "\(k)=\($0)" } }.joined(separator: " ")
                    } ?? "none", "qmp")
                }
                for c in live.cdroms ?? [] { add("cdroms[\(c.name)].media", c.media ?? "empty", "qmp") }
            }
            if let stored {
                add("pid", stored.pid.map(String.init), "record")
                add("uuid", stored.launch.uuid, "record")
                add("accelerator", stored.accelerator, "record")
                for (i, r) in stored.acceleratorReasons.enumerated() { add("accelerator.reason[\(i)]", r, "record") }
                add("labels", stored.launch.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","), "record")
                add("machine", stored.launch.spec.machine.type ?? "default", "record")
                add("arch", stored.launch.spec.arch.rawValue, "record")
                add("boot.kernel", stored.launch.spec.boot.kernel, "record")
                let recorded = VirtualMachine(name: name, spec: stored.launch.spec, source: SourceLocation(file: "record", line: 1, column: 1))
                if let fw = FirmwareFacts(recorded, pid: store.runningPID(name), socketDirectory: store.directory) {
                    add("firmware.code", fw.code ?? "(none found)", fw.source)
                    add("firmware.vars", fw.vars ?? "(none)", fw.source)
                    add("firmware.secureBoot", fw.secureBoot ? "yes" : "no", "record")
                }
                for d in stored.launch.spec.disks {
                    if case .file(let path, let format) = d.backend { add("disks[\(d.name)].file", "\(path) (\(format.rawValue))", "record") }
                    if let b = d.declaredBacking { add("disks[\(d.name)].backing", "\(b.path) (\(b.format.rawValue), read-only)", "record") }
                }
                for n in stored.launch.spec.networks { add("networks[\(n.name)].link", n.link.rawValue, "record") }
                for (path, _) in stored.launch.secrets.sorted(by: { $0.key < $1.key }) { add(path, "(sensitive)", "record") }
                add("restartPending", stored.restartPending ? "yes" : "no", "record")
                add("restartPolicy", stored.launch.spec.effectiveRestartPolicy.rawValue, "record")
                add("restarts", String(stored.restarts?.count ?? 0), "record")
                if let h = stored.restarts {
                    if let e = h.lastExit { add("lastExit", "\(e.reason) at \(EventFollower.timestamp(e.at))", "record") }
                    if let t = h.lastRestartAt { add("lastRestart", EventFollower.timestamp(t), "record") }
                    if let t = h.nextRestartAt { add("nextRestart", "\(EventFollower.timestamp(t)) (backoff after \(h.consecutive) in a row)", "record") }
                    if let why = h.leftDown { add("leftDown", why, "record") }
                }
                add("manifest", stored.source, "record")
                add("serialLog", layout.runtimeDirectory + "/serial.log", "state dir")
            }
            if output == .json {
                try Terminal.json(fields)
            } else {
                print(Terminal.table(["FIELD", "VALUE", "FROM"], fields.map { [$0.field, $0.value, $0.source] }), terminator: "")
            }
        }
    }
}
