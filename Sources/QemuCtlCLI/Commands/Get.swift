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
import Reconcile

/// One row of `qemuctl get`.
struct VMSummary: Codable {
    var name: String
    var state: String
    var accelerator: String?
    var cpus: Int?
    var memory: String?
    var uptimeSeconds: Int?
    var restartPending: Bool
    var detail: String?
}

extension VMSummary {
    init(_ vm: ObservedVM, record: StoredRecord?) {
        let state: String = switch vm.liveness {
        case .alive: vm.live?.runStatus.rawValue ?? "running"
        case .gone: vm.record?.spec.runState == .stopped ? "stopped" : "not running"
        case .unresponsive: "unresponsive"
        }
        let uptime = vm.liveness == .alive ? record?.startedAt.map { Int(Date().timeIntervalSince1970 - $0) } : nil
        self.init(name: vm.name, state: vm.ownership == .foreign ? "\(state) (not managed)" : state,
                  accelerator: vm.liveness == .alive ? record?.accelerator : nil,
                  cpus: vm.live?.cpuCount ?? vm.record?.spec.cpu.count,
                  memory: (vm.live?.memorySize ?? vm.record?.spec.memory.size).map { ByteSizeText.format($0) },
                  uptimeSeconds: uptime, restartPending: vm.restartPending, detail: vm.detail)
    }

    var row: [String] {
        [name, state, accelerator ?? "-", cpus.map(String.init) ?? "-", memory ?? "-",
         uptimeSeconds.map(Self.duration) ?? "-", restartPending ? "yes" : "-"]
    }

    static func duration(_ s: Int) -> String {
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }
}

/// Byte counts as people read them.
enum ByteSizeText {
    static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 && value.truncatingRemainder(dividingBy: 1024) == 0 {
            value /= 1024
            unit += 1
        }
        return "\(Int(value))\(units[unit])"
    }
}

/// Output formats of read commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, yaml
}

extension QemuCtlCommand {
    /// `qemuctl get`: the managed VMs at a glance.
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List managed VMs: state (from QMP), accelerator, CPUs, memory, uptime, pending restart."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names (default: all managed VMs).", transform: VMNameArgument.parse)
        var names: [String] = []

        @Option(name: .shortAndLong, help: "table, json or yaml.")
        var output: OutputFormat = .table

        func run() async throws {
            let store = global.store
            let report = await Observer(store: store, timeout: global.deadline).observe(extraNames: names)
            for w in report.warnings { Terminal.warn(w) }
            var vms = report.vms
            if !names.isEmpty {
                let missing = names.filter { n in !vms.contains { $0.name == n } }
                for m in missing {
                    Terminal.fail("no VM named \(m) in \(store.directory)", hint: "--state-dir (or QEMUCTL_STATE_DIR) selects another state directory")
                }
                vms = vms.filter { names.contains($0.name) }
                if !missing.isEmpty && vms.isEmpty { throw ExitCode(1) }
            }
            let rows = vms.map { VMSummary($0, record: try? store.loadRecord(StoredRecord.self, name: $0.name)) }
            switch output {
            case .json:
                try Terminal.json(rows)
            case .yaml:
                for r in rows {
                    print("- name: \(r.name)\n  state: \(r.state)\n  accelerator: \(r.accelerator ?? "null")\n  cpus: \(r.cpus.map(String.init) ?? "null")\n  memory: \(r.memory ?? "null")\n  uptimeSeconds: \(r.uptimeSeconds.map(String.init) ?? "null")\n  restartPending: \(r.restartPending)")
                }
            case .table:
                if rows.isEmpty {
                    print("No VMs in \(store.directory).")
                } else {
                    print(Terminal.table(["NAME", "STATE", "ACCEL", "CPUS", "MEMORY", "UPTIME", "RESTART-PENDING"], rows.map(\.row)), terminator: "")
                }
            }
        }
    }
}
