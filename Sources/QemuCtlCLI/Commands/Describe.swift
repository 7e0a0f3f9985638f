import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Manifest
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl describe NAME`: the whole VM as one object (``VMDescription``): the spec as applied,
    /// what QEMU reports, conditions, the last exit, and how to reach it.
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one VM in detail: spec as applied, observed state, conditions, last exit, and how to reach it.",
            discussion: """
                The text form (default) ends with how to reach the VM: ssh hints for port forwards, \
                the VNC and SPICE endpoints, and the console. -o json and -o yaml print the same \
                values as one object, every key present (null when unknown). Values read from QEMU \
                say so (`source: qmp`); the others come from the launch record. Secrets are never shown. \
                With spec.guestAgent, the guest agent is asked for the OS and the addresses (within 2 s).

                EXAMPLES:
                  qemuctl describe web-1
                  qemuctl describe web-1 -o yaml
                  # the first guest address the agent reports
                  qemuctl describe web-1 -o json | jq -r '.guestAgent.interfaces[0].addresses[0]'
                  qemuctl describe web-1 --state-dir ~/qemuctl/state
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name.", transform: VMNameArgument.parse)
        var name: String

        @Option(name: .shortAndLong, help: "text (default), json or yaml (table: the same as text).",
                completion: .list(TextOutputFormat.allCases.map(\.rawValue)), transform: Self.format)
        var output: TextOutputFormat = .text

        /// Parses `-o`: a ``TextOutputFormat``, or `table`, describe's old name for `text`.
        static func format(_ text: String) throws -> TextOutputFormat {
            if text == "table" { return .text }
            guard let format = TextOutputFormat(rawValue: text) else {
                throw ValidationError("-o '\(text)' is not one of text, json or yaml")
            }
            return format
        }

        func run() async throws {
            let store = global.store
            Verbosity.say("\(name): reading it over QMP (within \(global.deadline)) and its launch record in \(store.directory)")
            let (observed, warning) = await Observer(store: store, timeout: global.deadline).observe(name)
            if let warning { Terminal.warn(warning) }
            guard let vm = observed, vm.record != nil || vm.liveness != .gone else {
                Terminal.fail("no VM named \(name) in \(store.directory)",
                              hint: "`qemuctl get` lists the VMs there; --state-dir (or QEMUCTL_STATE_DIR) selects another state directory")
                throw ExitCode(1)
            }
            let description = await Self.describe(vm, store: store, deadline: global.deadline)
            switch output {
            case .json: print(description.document.json())
            case .yaml: print(description.document.yaml(), terminator: "")
            case .text: print(description.text, terminator: "")
            }
        }

        /// Gathers everything about `vm` that observation did not: the record, the exit, the
        /// journal, pending changes, QEMU's command line and the guest agent's answers.
        static func describe(_ vm: ObservedVM, store: StateStore, deadline: Duration) async -> VMDescription {
            let name = vm.name
            let layout = store.layout(name)
            let stored = try? store.loadRecord(StoredRecord.self, name: name)
            let pid: Int32? = vm.liveness == .gone ? nil : (stored?.adopted?.pid ?? store.runningPID(name))
            // The exit only for a QEMU that is gone: a running one's log has no keeper line yet.
            let exit = vm.liveness == .gone && stored != nil ? ExitReport.read(layout: layout, record: stored) : nil
            let journal = JournalLine.read(store, name: name)
            let pending = vm.restartPending ? pendingChanges(vm, source: stored?.source) : []
            var guest: VMDescription.GuestInfo? = nil
            if vm.liveness == .alive, vm.record?.spec.guestAgent == true {
                // A short deadline: a guest without a running agent must not hold describe up.
                Verbosity.say("\(name): asking the guest agent for the OS and the addresses")
                guest = await VMDescription.askGuest(layout, deadline: min(deadline, .seconds(2)))
            } else if vm.record?.spec.guestAgent == true {
                guest = VMDescription.GuestInfo(answered: false, problem: "QEMU is not running or its monitor does not answer", interfaces: [])
            }
            let firmware = stored.flatMap { s in
                FirmwareFacts(VirtualMachine(name: name, spec: s.launch.spec, source: SourceLocation(file: "record", line: 1, column: 1)),
                              pid: pid, socketDirectory: store.directory)
            }
            // The declared spec.readiness probe, tried as `get`'s READY column tries it, decides Ready.
            var readiness: VMConditions.ProbeResult? = nil
            if vm.liveness == .alive, let probe = VMReadiness.declaredProbe(name, store: store) {
                Verbosity.say("\(name): trying the readiness probe \(probe) once")
                let status = await VMReadiness.quickStatus(name, store: store)
                readiness = (status == .yes, "readiness probe \(probe) " + (status == .yes ? "passes" : "does not pass yet"))
            }
            let conditions = VMConditions.all(vm, record: stored, journal: journal, exit: exit, pendingFields: pending,
                                              readiness: readiness)
            return VMDescription(name: name, store: store, vm: vm, stored: stored, exit: exit, conditions: conditions,
                                 pendingChanges: pending, commandLine: pid.flatMap(VMDescription.commandLine(pid:)), pid: pid,
                                 guest: guest, firmware: firmware)
        }

        /// The restart-class changes between the VM's manifest and its record (what a restart would
        /// apply), as `path: old -> new`; empty when the manifest cannot be read.
        static func pendingChanges(_ vm: ObservedVM, source: String?) -> [String] {
            guard let source, !source.isEmpty, source != "-" else { return [] }
            let set = ManifestLoader(hostFiles: .ignore).load(paths: [source])
            guard !set.hasErrors, let desired = set.virtualMachines.first(where: { $0.name == vm.name }) else { return [] }
            let p = plan(desired: [desired], actual: [vm], options: PlanOptions(prune: false, restart: .never, fingerprint: false))
            return (p[vm.name]?.changes ?? []).filter { $0.changeClass == .restart }.map { c in
                let old = c.sensitive ? "(sensitive)" : (c.old ?? "(none)")
                let new = c.sensitive ? "(sensitive)" : (c.new ?? "(none)")
                return "\(c.path): \(old) -> \(new)"
            }
        }
    }
}
