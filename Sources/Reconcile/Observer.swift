#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import Manifest
import QemuCtl

/// Reads the actual state of managed VMs: from the running QEMU over QMP, with the
/// launch record filling only what QMP cannot report.
///
/// Each VM gets a short-lived QMP connection (QEMU serves one monitor client at a
/// time, so nothing is held open), and VMs are observed concurrently up to a bound.
/// A VM whose monitor does not answer within the deadline is `unresponsive`: it is
/// reported, and never launched a second time.
package struct Observer: Sendable {
    /// The state directory.
    package var store: StateStore
    /// The deadline for connecting to each VM and for each query.
    package var timeout: Duration
    /// How many VMs are observed at once.
    package var concurrency: Int

    /// Creates an observer.
    package init(store: StateStore, timeout: Duration = .seconds(5), concurrency: Int = 64) {
        self.store = store
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
    }

    /// Problems met while observing (an unreadable record), as messages.
    package struct Report: Sendable {
        /// The observations, sorted by name.
        package var vms: [ObservedVM]
        /// Records that could not be read, and similar warnings.
        package var warnings: [String]
    }

    /// Observes every VM with a record in the state directory, plus `extraNames`
    /// (VMs the manifests declare, which may be running without a record).
    ///
    /// - Parameter desired: The manifests' specs by VM name, when a plan follows: a VM's PCI
    ///   devices are then read only when its plan can need them (see ``Reads``). A saved plan is
    ///   checked against an observation made with the same specs.
    /// - Parameter preconnected: Connections opened by ``preconnect(_:)`` while the caller loaded
    ///   the manifests; its VMs stand for the recorded ones.
    package func observe(extraNames: [String] = [], desired: [String: VirtualMachineSpec] = [:],
                         preconnected: Preconnection? = nil) async -> Report {
        let names = Array(Set((preconnected?.names ?? store.recordedNames()) + extraNames)).sorted()
        // Off the cooperative pool: reading records and /proc, and the poll loop, block.
        let results = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
            observeAll(names.map { ($0, desired[$0]) }, preconnected: preconnected?.connections)
        }
        let vms = results.compactMap(\.0).filter { vm in
            // A name the manifests declare that has neither a record nor a QEMU is simply absent.
            vm.record != nil || vm.liveness != .gone
        }.sorted { $0.name < $1.name }
        return Report(vms: vms, warnings: results.compactMap(\.1).sorted())
    }

    /// Observes one VM; returns the observation and a warning, if any.
    ///
    /// An unreadable record is a warning naming the file. When the VM's QEMU is gone,
    /// that is all (apply launches it again and replaces the file). When a QEMU answers
    /// on the VM's socket, the VM is reported as not managed, with a recovery hint, and
    /// is neither changed, pruned nor launched a second time: QMP cannot tell what it was
    /// launched with, so nothing is guessed.
    package func observe(_ name: String, desired: VirtualMachineSpec? = nil) async -> (ObservedVM?, String?) {
        await withTaskExecutorPreference(BlockingWorkExecutor.shared) { observeAll([(name, desired)], preconnected: nil)[0] }
    }

    /// Connections opened ahead of an observation, and the VMs they were opened for.
    package struct Preconnection: Sendable {
        /// The state directory of the VMs.
        package var directory: String
        /// The VMs connected to (or tried).
        package var names: [String]
        /// The connections, each with the opening queries written.
        var connections: MonitorObservation.Preconnection
    }

    /// Connects to the monitor of each of `names` (by default every VM with a record; at most
    /// ``concurrency`` of them, the first by name, as the observation starts them: a large state
    /// directory must not use up the process's descriptors before the manifests are read) now and
    /// sends the opening queries, so that the QEMUs greet and answer while the caller loads
    /// manifests; pass the result to ``observe(extraNames:desired:preconnected:)``. Connecting
    /// and the queries change nothing in a VM.
    package func preconnect(_ names: [String]? = nil) -> Preconnection {
        let names = names ?? store.recordedNames()
        return Preconnection(directory: store.directory, names: names, connections: MonitorObservation.Preconnection(
            paths: names.sorted().prefix(concurrency).map { store.layout($0).socketPath }))
    }

    /// Connections opened when the process started, before its command line was parsed (`diff`
    /// and `plan`: see `QemuCtlCommand`), so that the QEMUs answer meanwhile. A ``Session`` takes
    /// them, once, when they were opened in its state directory.
    @TaskLocal package static var early: Preconnection? = nil

    /// ``early``, when it was opened in this observer's state directory and not taken before.
    func takeEarly() -> Preconnection? {
        guard let early = Observer.early, early.directory == store.directory, early.connections.claim() else { return nil }
        return early
    }

    /// Observes `vms` on the calling thread, talking to every QEMU's monitor at once
    /// (``QMPExchange``, at most `concurrency` connections open, each with its deadline). What the
    /// state directory and `/proc` tell is read one VM after another (CPU work: threads would only
    /// contend) while the QEMUs answer the connections with their greetings.
    private func observeAll(_ vms: [(name: String, desired: VirtualMachineSpec?)],
                            preconnected: MonitorObservation.Preconnection?) -> [(ObservedVM?, String?)] {
        let probes = vms.map { Probe(observer: self, name: $0.name, desired: $0.desired) }
        // Without a socket only the record and /proc can tell: gone, broken, or starting (retried).
        for probe in probes where !probe.socketExists { probe.prepare() }
        let talking = probes.filter { $0.result == nil }
        let outcomes = MonitorObservation.run(talking.map { $0.target() }, timeout: timeout, maxOpen: concurrency,
                                              preconnected: preconnected, whileConnecting: { talking.forEach { $0.prepare() } })
        for (probe, outcome) in zip(talking, outcomes) { probe.ended(outcome) }
        return probes.map { $0.result ?? ($0.vm(.gone, "not running")) }
    }

    /// One VM's observation in progress.
    private final class Probe {
        let observer: Observer
        let name: String
        let desired: VirtualMachineSpec?
        let layout: RuntimeLayout
        let socketExists: Bool
        /// Whether ``prepare()`` ran.
        var prepared = false
        /// Whether ``locate()`` ran.
        var located = false
        var stored: StoredRecord? = nil
        var unreadable: String? = nil
        var running: (pid: Int32, commandLine: [UInt8])? = nil
        var pid: Int32? = nil
        var starting = false
        /// The outcome, once known.
        var result: (ObservedVM?, String?)? = nil

        var reads: Reads { Reads(record: stored?.launch, desired: desired) }

        init(observer: Observer, name: String, desired: VirtualMachineSpec?) {
            self.observer = observer
            self.name = name
            self.desired = desired
            layout = observer.store.layout(name)
            socketExists = Posix.fileExists(layout.socketPath)
        }

        /// Reads the record (once); when there is no socket to talk to, also finds the VM's QEMU
        /// and decides the outcome.
        func prepare() {
            guard !prepared else { return }
            prepared = true
            do {
                stored = try observer.store.loadRecord(StoredRecord.self, name: name)
            } catch {
                unreadable = error.message
            }
            guard !socketExists else { return }
            locate()
            if !starting {
                if let pid {
                    result = vm(.unresponsive, "QEMU (pid \(pid)) runs but its QMP socket \(layout.socketPath) is gone")
                } else {
                    result = vm(.gone, stored == nil ? nil : "not running")
                }
            }
        }

        /// Finds the VM's QEMU in `/proc` by its pid file (once), and whether it was launched moments
        /// ago. Needed only when its monitor does not answer, or to name its pid: a monitor that
        /// answers is checked by its peer's pid and command line.
        func locate() {
            prepare()  // the record first (without a socket, prepare calls this itself)
            guard !located else { return }
            located = true
            let adopted = stored?.adopted
            running = adopted == nil ? layout.runningQEMU() : nil
            pid = adopted.map { a in a.matches(pid: a.pid) ? a.pid : nil } ?? running?.pid
            // A QEMU launched moments ago (by a qemuctl that may have died since) binds its socket
            // early in its start and listens a moment later: connecting is retried within the deadline.
            starting = pid != nil && Observer.isStarting(layout)
        }

        func warning(_ liveness: ObservedVM.Liveness) -> String? {
            guard let unreadable else { return nil }
            locate()
            return liveness == .gone
                ? "\(name): \(unreadable); its QEMU is not running: apply launches it again and replaces the file"
                : "\(name): \(unreadable); its QEMU\(pid.map { " (pid \($0))" } ?? "") is left running and untouched"
        }

        func vm(_ liveness: ObservedVM.Liveness, _ detail: String?, _ live: LiveState? = nil) -> (ObservedVM?, String?) {
            var detail = detail
            if unreadable != nil && liveness != .gone {
                detail = "its record \(observer.store.recordPath(name)) is unreadable, so qemuctl cannot tell what this QEMU was launched with; "
                    + "it is left running. To recover: restore the file, or `qemuctl delete \(name)` (stops it; disks are kept) and apply again"
            }
            return (ObservedVM(name: name, ownership: stored != nil ? .managed : .foreign, liveness: liveness, detail: detail,
                               record: stored?.launch, live: live, restartPending: stored?.restartPending ?? false), warning(liveness))
        }

        func foreign(_ detail: String) -> (ObservedVM?, String?) {
            (ObservedVM(name: name, ownership: .foreign, liveness: .alive, detail: detail, record: nil, live: nil), nil)
        }

        /// Why the process answering on the VM's socket is not the QEMU the record names, if it is
        /// not: the one place the peer is checked (uid, pid, start time and executable, from the
        /// record's process identity; an adopted VM's likewise).
        func peerProblem(_ peer: MonitorObservation.MonitorPeer?) -> String? {
            guard let stored, let why = stored.disproof(peer: peer.map { ($0.pid, $0.uid) }, layout: layout) else { return nil }
            return "the process on \(layout.socketPath)\(peer.map { " (pid \($0.pid))" } ?? "") is not the QEMU qemuctl "
                + "\(stored.adopted == nil ? "launched" : "adopted"): \(why)"
        }

        /// What to ask this VM's QEMU: at the greeting, once its peer is checked, the reads the
        /// record and manifest call for (``Reads``).
        func target() -> MonitorObservation.Target {
            MonitorObservation.Target(path: layout.socketPath, retryRefused: { [self] in
                locate()
                return starting && pid.map(Posix.processExists) == true
            }) { [self] peer in
                prepare()
                if let problem = peerProblem(peer) {
                    result = foreign(problem)
                    return nil
                }
                let reads = self.reads
                return ObservationReads(cpus: reads.cpus, memory: reads.memory, pci: reads.pci)
            }
        }

        /// The observation ended as `outcome`.
        func ended(_ outcome: MonitorObservation.Outcome) {
            prepare()
            guard result == nil else { return }  // decided at the greeting (not the QEMU recorded)
            switch outcome {
            case .hungUp:
                result = vm(.gone, "not running")
            case .failed(greeted: false, let timedOut, let message):
                locate()
                if timedOut || pid != nil {
                    // Busy is not hung: the kernel shows whether another client holds the monitor.
                    switch MonitorProbe.diagnose(socketPath: layout.socketPath, pid: pid) {
                    case .busy:
                        result = vm(.unresponsive, "busy: another client holds \(layout.socketPath) (QEMU serves one monitor "
                                    + "client at a time); close it or retry")
                        result?.0?.monitorBusy = true
                    case .stopped(let stopped):
                        result = vm(.unresponsive, "stopped: QEMU (pid \(stopped)) is stopped (SIGSTOP or a debugger) and answers nobody")
                    case .unresponsive:
                        result = vm(.unresponsive, "unresponsive: QMP did not answer within \(observer.timeout): \(message)")
                    }
                } else {
                    result = vm(.gone, "not running (stale socket)")
                }
            case .failed(greeted: true, let timedOut, let message):
                result = vm(timedOut ? .unresponsive : .gone, timedOut ? "unresponsive: \(message)" : message)
            case .observed(let o):
                result = vm(.alive, nil, Observer.liveState(o, reads: reads, record: stored?.launch,
                                                            aliases: stored?.adopted?.deviceAliases ?? [:]))
            }
        }
    }

    /// Whether the VM's QEMU was launched within the last minute (its pid file, written at the
    /// launch, is that young).
    static func isStarting(_ layout: RuntimeLayout) -> Bool {
        guard let mtime = Posix.sizeAndModificationTime(layout.pidFile)?.mtime else { return false }
        return Date().timeIntervalSince1970 - Double(mtime) < 60
    }

    /// What one observation asks QEMU besides its run state and block devices (always read).
    ///
    /// Each query costs QEMU a trip through its main loop, and with many VMs on a busy host that
    /// trip is what an observation waits for; so a value that cannot have changed since the
    /// launch is taken from the record (``ObservedVM`` then says so), and PCI devices are read
    /// only when they can matter.
    package struct Reads: Sendable, Hashable {
        /// `query-cpus-fast`: vCPUs can be hot-plugged (`maxCount` above the boot count), or
        /// there is no record.
        package var cpus: Bool
        /// `query-memory-size-summary`: DIMMs can be hot-plugged (`memory.max` above the boot
        /// size), or there is no record.
        package var memory: Bool
        /// `query-pci`, on a machine with hot-plug root ports: the NICs present (drift), free
        /// ports and which devices were hot-plugged. Read when there is no manifest to plan for
        /// (get, describe, prune), when the VM has NICs, or when the manifest adds or removes a
        /// disk or NIC.
        package var pci: Bool

        /// The reads for a VM launched as `record`, planned towards `desired`.
        package init(record: LaunchRecord?, desired: VirtualMachineSpec?) {
            guard let record else {
                cpus = true; memory = true; pci = false
                return
            }
            let spec = record.spec
            cpus = spec.cpu.maxCount > (record.bootCPUCount ?? spec.cpu.count)
            memory = spec.memory.max.map { $0 > (record.bootMemorySize ?? spec.memory.size) } ?? false
            guard Observer.mayHotplug(spec) else {
                pci = false
                return
            }
            guard let desired else {
                pci = true
                return
            }
            pci = !spec.networks.isEmpty
                || Set(spec.disks.map(\.name)) != Set(desired.disks.map(\.name))
                || Set(spec.networks.map(\.name)) != Set(desired.networks.map(\.name))
        }
    }

    /// The live state from QEMU's observation.
    /// - Parameter aliases: For an adopted VM, QEMU's device names → qemuctl's ids.
    static func liveState(_ o: Observation, reads: Reads, record: LaunchRecord?, aliases: [String: String]) -> LiveState {
        let onPorts = Set((o.pci?.onHotplugPorts ?? []).map { aliases[$0] ?? $0 })
        var disks: [ObservedDisk] = []
        var cdroms: [ObservedCDROM] = []
        for b in o.blocks {
            guard let id = DeviceID.find(in: aliases[b.qdev] ?? b.qdev) else { continue }
            switch id.kind {
            case .cdrom:
                cdroms.append(ObservedCDROM(name: id.name, media: b.media))
            case .disk:
                disks.append(ObservedDisk(name: id.name, throttle: VMConfigMapping.manifestThrottle(b.throttle),
                                          hotplugged: onPorts.contains(id.rawValue)))
            case .network, .usb:
                continue
            }
        }
        var nics: [ObservedNIC]? = nil
        if let pci = o.pci, let record {
            // The devices tell which NICs exist; QMP cannot report link state, so the record's is trusted.
            let present = Set(pci.ids.map { aliases[$0] ?? $0 })
            var found: [ObservedNIC] = []
            for n in record.spec.networks where present.contains(DeviceID.network(n.name).rawValue) || n.model.hasPrefix("usb-") {
                found.append(ObservedNIC(name: n.name, link: n.link, hotplugged: onPorts.contains(DeviceID.network(n.name).rawValue)))
            }
            for raw in present {
                guard let id = DeviceID(rawValue: raw), id.kind == .network,
                      !record.spec.networks.contains(where: { $0.name == id.name }) else { continue }
                found.append(ObservedNIC(name: id.name, hotplugged: onPorts.contains(raw)))
            }
            nics = found.sorted { $0.name < $1.name }
        }
        return LiveState(
            // QEMU says `prelaunch` for a VM started with -S and never resumed: to a user, and
            // to the manifest's runState, it is paused.
            runStatus: o.status == QMPRunStatus.prelaunch.rawValue ? .paused : QMPRunStatus(rawValue: o.status),
            cpuCount: reads.cpus ? o.vcpus : nil,
            memorySize: reads.memory ? o.memorySize : nil,
            disks: disks.sorted { $0.name < $1.name },
            cdroms: cdroms.sorted { $0.name < $1.name },
            nics: nics,
            // Not read (nothing in the plan can take a port): unknown, not none.
            freeHotplugPorts: o.pci.map { $0.freeHotplugPorts.count }
                ?? (record.map { Self.mayHotplug($0.spec) } == true ? nil : 0),
            dimmSizes: reads.memory ? o.dimmSizes : nil)
    }

    /// Whether a VM launched with `spec` has hot-plug root ports (q35 with `machine.hotplugPorts` > 0).
    static func mayHotplug(_ spec: VirtualMachineSpec) -> Bool {
        guard spec.machine.hotplugPorts > 0 else { return false }
        if let type = spec.machine.type { return type == "q35" || type.hasPrefix("pc-q35") }
        return spec.arch == .amd64 || spec.arch == .i386
    }
}
