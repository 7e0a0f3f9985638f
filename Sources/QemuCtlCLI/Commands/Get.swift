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

/// One row of `qemuctl get`: the one model that the table, `-o json` and `-o yaml` show.
///
/// Both structured formats carry every key, with null for what is unknown (a stopped VM has
/// no accelerator or uptime; `detail` is null when there is nothing to add).
struct VMSummary: Codable {
    var name: String
    var state: String
    var accelerator: String?
    var cpus: Int?
    var memory: String?
    var uptimeSeconds: Int?
    var restartPending: Bool
    var detail: String?
    /// Relaunches by `qemuctl controller` after QEMU exited (its restart policy), from the record.
    var restarts: Int = 0
    /// Whether the VM passes its `spec.readiness` probe (``GetReadiness``); nil when it declares none.
    var ready: Bool? = nil
    /// For a VM whose QEMU is gone: how it ended, in a few words (``ExitReport/short``). Also the
    /// structured formats' `detail`; the table shows it after the state.
    var exitReason: String? = nil
    /// The guest's address, from its agent (``GetGuestColumns``); nil without an agent's answer.
    var ip: String? = nil
    /// The guest's OS, from its agent (``GetGuestColumns``); nil without an agent's answer.
    var os: String? = nil
}

extension VMSummary {
    init(_ vm: ObservedVM, record: StoredRecord?) {
        let state: String = switch vm.liveness {
        case .alive: vm.live?.runStatus.rawValue ?? "running"
        case .gone: vm.record?.spec.runState == .stopped ? "stopped" : "not running"
        case .unresponsive: vm.monitorBusy == true ? "busy" : "unresponsive"
        }
        let uptime = vm.liveness == .alive ? record?.startedAt.map { Int(Date().timeIntervalSince1970 - $0) } : nil
        self.init(name: vm.name, state: vm.ownership == .foreign ? "\(state) (not managed)" : state,
                  accelerator: vm.liveness == .alive ? record?.accelerator : nil,
                  cpus: vm.live?.cpuCount ?? vm.record?.spec.cpu.count,
                  memory: (vm.live?.memorySize ?? vm.record?.spec.memory.size).map { ByteSizeText.format($0) },
                  uptimeSeconds: uptime, restartPending: vm.restartPending, detail: vm.detail,
                  restarts: record?.restarts?.count ?? 0)
    }

    /// The row of `vm`, with how its QEMU ended when it is gone (read from `store`).
    init(_ vm: ObservedVM, record: StoredRecord?, store: StateStore) {
        self.init(vm, record: record)
        if vm.liveness == .gone, record != nil, state == "not running",
           let exit = ExitReport.read(layout: store.layout(vm.name), record: record, tailLines: 0) {
            exitReason = exit.short
            detail = "\(exit.summary) (see \(exit.logPath))"
        }
    }

    /// The keys, in the order the YAML shows them (JSON sorts them).
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, state, ready, accelerator, cpus, memory, uptimeSeconds, restarts, restartPending, detail, ip, os
    }

    /// Encodes every key, nulls included (synthesized coding would leave out nil values).
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        for key in CodingKeys.allCases {
            switch value(key) {
            case .null: try c.encodeNil(forKey: key)
            case .string(let s): try c.encode(s, forKey: key)
            case .int(let i): try c.encode(i, forKey: key)
            case .bool(let b): try c.encode(b, forKey: key)
            }
        }
    }

    /// A field's value.
    enum Value: Equatable {
        case null, string(String), int(Int), bool(Bool)
    }

    /// The value of `key`, for both structured formats.
    func value(_ key: CodingKeys) -> Value {
        func text(_ s: String?) -> Value { s.map(Value.string) ?? .null }
        return switch key {
        case .name: .string(name)
        case .state: .string(state)
        case .ready: ready.map(Value.bool) ?? .null
        case .accelerator: text(accelerator)
        case .cpus: cpus.map(Value.int) ?? .null
        case .memory: text(memory)
        case .uptimeSeconds: uptimeSeconds.map(Value.int) ?? .null
        case .restarts: .int(restarts)
        case .restartPending: .bool(restartPending)
        case .detail: text(detail)
        case .ip: text(ip)
        case .os: text(os)
        }
    }

    /// The row as one YAML list item, the same keys as the JSON.
    var yamlItem: String {
        CodingKeys.allCases.enumerated().map { i, key in
            let v: String = switch value(key) {
            case .null: "null"
            case .string(let s): Self.yamlString(s)
            case .int(let n): String(n)
            case .bool(let b): b ? "true" : "false"
            }
            return (i == 0 ? "- " : "  ") + key.rawValue + ": " + v
        }.joined(separator: "\n")
    }

    /// A plain scalar when YAML 1.2 reads it back as this string; otherwise double-quoted
    /// with JSON escapes (valid YAML).
    static func yamlString(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || " ._/()-".unicodeScalars.contains(c)
        } && (s.first!.isLetter || s.first!.isNumber) && s.last != " "
            && !["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"].contains(s)
            && Double(s) == nil && !s.hasPrefix("0x") && !s.hasPrefix("0o")
        if plain { return s }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 || c.value == 0x7f {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }

    var row: [String] {
        [name, exitReason.map { "\(state) (\($0))" } ?? state, ready.map { $0 ? "yes" : "no" } ?? "-", accelerator ?? "-", cpus.map(String.init) ?? "-", memory ?? "-",
         uptimeSeconds.map(Self.duration) ?? "-", "\(restarts)", restartPending ? "yes" : "-"]
    }

    /// The `-o wide` row: ``row`` and then IP and OS.
    var wideRow: [String] { row + [ip ?? "-", os ?? "-"] }

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

/// `-o` of `get`: a table by default (``TextOutputFormat`` is the other read commands').
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// One row per VM.
    case table
    /// The table with the guest agent's IP and OS columns (``GetGuestColumns``).
    case wide
    /// The rows (``VMSummary``) as a JSON list.
    case json
    /// The rows as a YAML list, the keys of the JSON.
    case yaml
}

extension QemuCtlCommand {
    /// `qemuctl get`: the managed VMs at a glance.
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List managed VMs: state (from QMP), readiness, accelerator, CPUs, memory, uptime, pending restart.",
            discussion: GetReadiness.help + "\n\n" + GetGuestColumns.help + """


                EXAMPLES:
                  qemuctl get
                  qemuctl get -o wide
                  qemuctl get web-1 -o yaml
                  qemuctl get -l team=web -o json | jq '.[].state'
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names (default: all managed VMs).", completion: .vmNames, transform: VMNameArgument.parse)
        var names: [String] = []

        @Option(name: .shortAndLong, help: "table, wide (with the guest's IP and OS), json or yaml.")
        var output: OutputFormat = .table

        @Option(name: [.customShort("l"), .customLong("selector")],
                help: ArgumentHelp("Only VMs whose labels (as last applied) match: key=value, key!=value, key, !key; comma-separated.",
                                   valueName: "selector"),
                transform: SelectorArgument.parse)
        var selector: LabelSelector?

        func run() async throws {
            let store = global.store
            Verbosity.say("reading the VMs of \(store.directory) over QMP (each monitor within \(global.deadline))")
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
            if let selector {
                vms = vms.filter { selector.matches((try? store.loadRecord(StoredRecord.self, name: $0.name))?.launch.labels ?? [:]) }
            }
            var rows = vms.map { VMSummary($0, record: try? store.loadRecord(StoredRecord.self, name: $0.name), store: store) }
            // The agents' answers (not for the plain table) while the readiness probes run.
            let selected = vms
            async let guests = output == .table ? [:] : GetGuestColumns.ask(selected, store: store)
            Verbosity.say("probing the declared readiness of the running VMs (within \(VMReadiness.quickDeadline))")
            await GetReadiness.fill(&rows, vms, store: store)
            GetGuestColumns.fill(&rows, await guests)
            switch output {
            case .json:
                try Terminal.json(rows)
            case .yaml:
                if rows.isEmpty { print("[]") }
                for r in rows { print(r.yamlItem) }
            case .table, .wide:
                let header = ["NAME", "STATE", "READY", "ACCEL", "CPUS", "MEMORY", "UPTIME", "RESTARTS", "RESTART-PENDING"]
                if rows.isEmpty {
                    print("No VMs in \(store.directory).")
                } else if output == .wide {
                    print(Terminal.table(header + ["IP", "OS"], rows.map(\.wideRow)), terminator: "")
                } else {
                    print(Terminal.table(header, rows.map(\.row)), terminator: "")
                }
            }
        }
    }
}
