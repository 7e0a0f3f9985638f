import Foundation
package import Manifest
import QMP
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
    package func observe(extraNames: [String] = [], desired: [String: VirtualMachineSpec] = [:]) async -> Report {
        let names = Array(Set(store.recordedNames() + extraNames)).sorted()
        var results: [(ObservedVM?, String?)] = []
        // Off the cooperative pool: reading records and /proc, and connecting, block.
        await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
            // Records are decoded one after another first: the first decode of each record type
            // fills the Swift runtime's metadata caches, which fifty threads decoding at once
            // would each fill on their own (it tripled the decoding time of a 50-VM diff).
            var records: [String: Result<StoredRecord?, StateError>] = [:]
            for name in names { records[name] = Result { () throws(StateError) in try store.loadRecord(StoredRecord.self, name: name) } }
            await withTaskGroup(of: (ObservedVM?, String?).self) { group in
                var iterator = names.makeIterator()
                func add(_ name: String) {
                    let record = records[name]
                    group.addTask { await self.observeOne(name, desired: desired[name], record: record) }
                }
                for _ in 0..<concurrency {
                    guard let name = iterator.next() else { break }
                    add(name)
                }
                while let r = await group.next() {
                    results.append(r)
                    if let name = iterator.next() { add(name) }
                }
            }
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
        // Off the cooperative pool: reading records and /proc, and talking to QEMU, block.
        await withTaskExecutorPreference(BlockingWorkExecutor.shared) { await observeOne(name, desired: desired, record: nil) }
    }

    /// ``observe(_:desired:)`` on the current executor (one that may block).
    /// - Parameter record: The VM's record as loaded already, or `nil` to load it.
    private func observeOne(_ name: String, desired: VirtualMachineSpec?,
                            record: Result<StoredRecord?, StateError>?) async -> (ObservedVM?, String?) {
        var unreadable: String? = nil
        var stored: StoredRecord? = nil
        do {
            stored = try (record ?? Result { () throws(StateError) in try store.loadRecord(StoredRecord.self, name: name) }).get()
        } catch {
            unreadable = error.message
        }
        let layout = store.layout(name)
        let ownership: ObservedVM.Ownership = stored != nil ? .managed : .foreign
        let adopted = stored?.adopted
        let running = adopted == nil ? layout.runningQEMU() : nil
        let pid = adopted.map { a in a.matches(pid: a.pid) ? a.pid : nil } ?? running?.pid
        let processAlive = pid != nil
        func warning(_ liveness: ObservedVM.Liveness) -> String? {
            guard let unreadable else { return nil }
            return liveness == .gone
                ? "\(name): \(unreadable); its QEMU is not running: apply launches it again and replaces the file"
                : "\(name): \(unreadable); its QEMU\(pid.map { " (pid \($0))" } ?? "") is left running and untouched"
        }
        func vm(_ liveness: ObservedVM.Liveness, _ detail: String?, _ live: LiveState? = nil) -> (ObservedVM?, String?) {
            var detail = detail
            if unreadable != nil && liveness != .gone {
                detail = "its record \(store.recordPath(name)) is unreadable, so qemuctl cannot tell what this QEMU was launched with; "
                    + "it is left running. To recover: restore the file, or `qemuctl delete \(name)` (stops it; disks are kept) and apply again"
            }
            return (ObservedVM(name: name, ownership: ownership, liveness: liveness, detail: detail, record: stored?.launch,
                               live: live, restartPending: stored?.restartPending ?? false), warning(liveness))
        }
        // A QEMU launched moments ago (by a qemuctl that may have died since) binds its socket
        // early in its start and listens a moment later: connecting is retried within the deadline.
        let starting = pid != nil && Self.isStarting(layout)
        guard starting || Posix.fileExists(layout.socketPath) else {
            if let pid {
                return vm(.unresponsive, "QEMU (pid \(pid)) runs but its QMP socket \(layout.socketPath) is gone")
            }
            return vm(.gone, stored == nil ? nil : "not running")
        }
        var qmp: QMPExchange? = nil
        let deadline = ContinuousClock.now + timeout
        while qmp == nil {
            do {
                // Blocks this thread (one of the blocking-work executor's) for at most the deadline.
                qmp = try QMPExchange(path: layout.socketPath, timeout: ContinuousClock.now.duration(to: deadline))
            } catch {
                if error.code == .connectFailed, starting, let pid, Posix.processExists(pid),
                   ContinuousClock.now + .milliseconds(10) < deadline {
                    try? await Task.sleep(for: .milliseconds(10))
                    continue
                }
                if error.code == .timedOut || processAlive {
                    return vm(.unresponsive, "unresponsive: QMP did not answer within \(timeout): \(error.message)")
                }
                return vm(.gone, "not running (stale socket)")
            }
        }
        guard let qmp else { return vm(.gone, "not running") }
        defer { qmp.close() }
        if let adopted, let peer = qmp.peerPID, !adopted.matches(pid: peer) {
            return (ObservedVM(name: name, ownership: .foreign, liveness: .alive,
                               detail: "the QEMU on \(layout.socketPath) (pid \(peer)) is not the one qemuctl adopted (pid \(adopted.pid))",
                               record: nil, live: nil), nil)
        }
        if let stored, adopted == nil, let peer = qmp.peerPID,
           (peer == running?.pid ? Posix.mentionsAnyOf([stored.launch.uuid], commandLine: running!.commandLine)
                                 : Posix.commandLine(of: peer, mentionsAnyOf: [stored.launch.uuid])) == false {
            // The socket answers, but the QEMU behind it is not the one recorded.
            return (ObservedVM(name: name, ownership: .foreign, liveness: .alive,
                               detail: "the QEMU on \(layout.socketPath) (pid \(peer)) is not the one qemuctl launched",
                               record: nil, live: nil), nil)
        }
        do {
            let live = try readLive(qmp, reads: Reads(record: stored?.launch, desired: desired), record: stored?.launch,
                                          aliases: adopted?.deviceAliases ?? [:])
            return vm(.alive, nil, live)
        } catch {
            return vm(error.code == .timedOut ? .unresponsive : .gone,
                      error.code == .timedOut ? "unresponsive: \(error.message)" : error.message)
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

    /// Reads what QMP can tell: one batch of queries, and one more for throttle groups.
    /// - Parameter aliases: For an adopted VM, QEMU's block device names → qemuctl's ids.
    private func readLive(_ qmp: QMPExchange, reads: Reads, record: LaunchRecord?,
                          aliases: [String: String] = [:]) throws(QMPError) -> LiveState {
        let readsPCI = reads.pci
        var commands: [(command: String, arguments: JSONValue?)] = [("query-status", nil), ("query-block", nil)]
        if reads.cpus { commands.append(("query-cpus-fast", nil)) }
        if reads.memory { commands.append(("query-memory-size-summary", nil)) }
        if readsPCI { commands.append(("query-pci", nil)) }
        var replies = try qmp.run(commands).makeIterator()
        let status = try QMP.QMPRunStatus(reply: try replies.next()!.get())
        let blocks = QMPBlockDevice.list(reply: try replies.next()!.get())
        let cpus = reads.cpus ? try replies.next()!.get() : JSONValue.null
        let memory = reads.memory ? try replies.next()!.get() : JSONValue.null
        let pci = readsPCI ? try replies.next()!.get() : JSONValue.null
        let onPorts = readsPCI ? Set(Self.devicesOnHotplugPorts(pci).map { aliases[$0] ?? $0 }) : []
        let groups = try groupLimits(qmp, blocks)
        var disks: [ObservedDisk] = []
        var cdroms: [ObservedCDROM] = []
        for b in blocks {
            guard let reported = b.qdev else { continue }
            let qdev = aliases[reported] ?? reported
            let components = qdev.split(separator: "/")
            if let c = components.first(where: { $0.hasPrefix("cd-") }) {
                cdroms.append(ObservedCDROM(name: String(c.dropFirst(3)), media: b.inserted.map(\.file)))
            } else if let c = components.first(where: { $0.hasPrefix("disk-") }) {
                let name = String(c.dropFirst(5))
                // The block backend's own limits when set (by hand, or live on a disk without a group), else the group's.
                let backend = b.inserted?.throttle
                let limits = backend.map { !$0.isUnlimited } == true ? backend : groups[name]
                disks.append(ObservedDisk(name: name, throttle: Self.throttle(limits),
                                          hotplugged: onPorts.contains(String(c))))
            }
        }
        var nics: [ObservedNIC]? = nil
        if readsPCI, let record {
            // The devices tell which NICs exist; QMP cannot report link state, so the record's is trusted.
            let present = Set(Self.pciDeviceIDs(pci).map { aliases[$0] ?? $0 })
            var found: [ObservedNIC] = []
            for n in record.spec.networks where present.contains("net-\(n.name)") || n.model.hasPrefix("usb-") {
                found.append(ObservedNIC(name: n.name, link: n.link, hotplugged: onPorts.contains("net-\(n.name)")))
            }
            for id in present where id.hasPrefix("net-") && !record.spec.networks.contains(where: { "net-\($0.name)" == id }) {
                found.append(ObservedNIC(name: String(id.dropFirst(4)), hotplugged: onPorts.contains(id)))
            }
            nics = found.sorted { $0.name < $1.name }
        }
        let base = memory["base-memory"]?.intValue ?? 0
        let plugged = memory["plugged-memory"]?.intValue ?? 0
        return LiveState(
            runStatus: QMPRunStatus(rawValue: status.status),
            cpuCount: reads.cpus ? cpus.arrayValue?.count : nil,
            memorySize: reads.memory ? UInt64(base + plugged) : nil,
            disks: disks.sorted { $0.name < $1.name },
            cdroms: cdroms.sorted { $0.name < $1.name },
            nics: nics,
            // Not read (nothing in the plan can take a port): unknown, not none.
            freeHotplugPorts: readsPCI ? Instance.freeHotplugPorts(queryPCI: pci).count
                : (record.map { Self.mayHotplug($0.spec) } == true ? nil : 0))
    }

    /// The limits of the throttle groups of the disks behind a throttle filter, by disk name (one
    /// `qom-get` each, in one batch).
    private func groupLimits(_ qmp: QMPExchange, _ blocks: [QMPBlockDevice]) throws(QMPError) -> [String: QMPIOThrottle] {
        let names: [String] = blocks.compactMap { b in
            guard ThrottleGroups.hasGroup(b), let c = b.qdev?.split(separator: "/").first(where: { $0.hasPrefix("disk-") }) else { return nil }
            return String(c.dropFirst(5))
        }
        if names.isEmpty { return [:] }
        let replies = try qmp.run(names.map { name in
            ("qom-get", ["path": .string(ThrottleGroups.objectPath(name)), "property": "limits"])
        })
        var out: [String: QMPIOThrottle] = [:]
        for (name, reply) in zip(names, replies) { out[name] = ThrottleGroups.limits(try reply.get()) }
        return out
    }

    /// Whether a VM launched with `spec` has hot-plug root ports (q35 with `machine.hotplugPorts` > 0).
    static func mayHotplug(_ spec: VirtualMachineSpec) -> Bool {
        guard spec.machine.hotplugPorts > 0 else { return false }
        if let type = spec.machine.type { return type == "q35" || type.hasPrefix("pc-q35") }
        return spec.arch == .amd64 || spec.arch == .i386
    }

    /// Every `qdev_id` in a `query-pci` reply.
    static func pciDeviceIDs(_ reply: JSONValue) -> Set<String> {
        var ids: Set<String> = []
        func walk(_ devices: [JSONValue]) {
            for d in devices {
                if let id = d["qdev_id"]?.stringValue, !id.isEmpty { ids.insert(id) }
                walk(d["pci_bridge"]?["devices"]?.arrayValue ?? [])
            }
        }
        for bus in reply.arrayValue ?? [] { walk(bus["devices"]?.arrayValue ?? []) }
        return ids
    }

    /// The ids of devices plugged into a `hotplugN` root port: the ones added after launch.
    static func devicesOnHotplugPorts(_ reply: JSONValue) -> Set<String> {
        var ids: Set<String> = []
        for bus in reply.arrayValue ?? [] {
            for d in bus["devices"]?.arrayValue ?? [] where d["qdev_id"]?.stringValue?.hasPrefix("hotplug") == true {
                for child in d["pci_bridge"]?["devices"]?.arrayValue ?? [] {
                    if let id = child["qdev_id"]?.stringValue { ids.insert(id) }
                }
            }
        }
        return ids
    }

    /// QEMU's throttle values as the manifest writes them: zero is "not set".
    static func throttle(_ t: QMP.QMPIOThrottle?) -> VirtualMachineSpec.Disk.Throttle? {
        guard let t, !t.isUnlimited else { return nil }
        func v(_ x: Int) -> UInt64? { x > 0 ? UInt64(x) : nil }
        var m = VirtualMachineSpec.Disk.Throttle()
        m.bps = v(t.bps); m.bpsRead = v(t.bpsRead); m.bpsWrite = v(t.bpsWrite)
        m.iops = v(t.iops); m.iopsRead = v(t.iopsRead); m.iopsWrite = v(t.iopsWrite)
        m.bpsMax = v(t.bpsMax); m.bpsReadMax = v(t.bpsReadMax); m.bpsWriteMax = v(t.bpsWriteMax)
        m.iopsMax = v(t.iopsMax); m.iopsReadMax = v(t.iopsReadMax); m.iopsWriteMax = v(t.iopsWriteMax)
        m.iopsSize = v(t.iopsSize)
        m.burstLength = max(1, t.burstLength)
        return m
    }

    /// The manifest's throttle as QMP takes it (`nil` clears).
    static func qmpThrottle(_ m: VirtualMachineSpec.Disk.Throttle?) -> QMP.QMPIOThrottle {
        guard let m else { return QMP.QMPIOThrottle() }
        func v(_ x: UInt64?) -> Int { Int(clamping: x ?? 0) }
        return QMP.QMPIOThrottle(
            bps: v(m.bps), bpsRead: v(m.bpsRead), bpsWrite: v(m.bpsWrite), iops: v(m.iops), iopsRead: v(m.iopsRead),
            iopsWrite: v(m.iopsWrite), bpsMax: v(m.bpsMax), iopsMax: v(m.iopsMax), bpsReadMax: v(m.bpsReadMax),
            bpsWriteMax: v(m.bpsWriteMax), iopsReadMax: v(m.iopsReadMax), iopsWriteMax: v(m.iopsWriteMax),
            iopsSize: v(m.iopsSize), burstLength: m.burstLength)
    }
}
