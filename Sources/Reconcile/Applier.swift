#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Manifest
import QMP
import QemuCtl

/// The outcome of applying one VM's plan.
package struct VMResult: Sendable, Hashable, Codable {
    /// How it ended.
    package enum Status: String, Sendable, Hashable, Codable {
        /// Nothing to do.
        case unchanged
        /// Launched.
        case created
        /// Live changes applied and verified.
        case updated
        /// Stopped and launched again (disks and uuid kept).
        case restarted
        /// Stopped and its runtime files removed (disks kept).
        case deleted
        /// Live changes applied; a restart-class change waits for `--restart=if-needed`.
        case restartPending = "restart-pending"
        /// Not touched: unresponsive or not managed by qemuctl.
        case skipped
        /// Something failed; see ``VMResult/messages``.
        case failed
    }
    /// The VM.
    package var name: String
    /// How it ended.
    package var status: Status
    /// What was done, one line each (never a secret).
    package var messages: [String]
}

/// Carries out a ``Plan``: VMs in parallel (bounded), each step journaled, each
/// live change read back over QMP.
package struct Applier: Sendable {
    /// The state directory.
    package var store: StateStore
    /// How many VMs are changed at once.
    package var parallel: Int
    /// How long a graceful stop may take before the ladder escalates.
    package var stopTimeout: Duration
    /// Deadline for each QMP call.
    package var timeout: Duration
    /// Called with a line of progress (VM name, message).
    package var progress: @Sendable (String, String) -> Void
    /// Called when a VM is done, with its result.
    package var finished: @Sendable (VMResult) -> Void = { _ in }

    /// Creates an applier.
    package init(store: StateStore, parallel: Int = 4, stopTimeout: Duration = .seconds(30), timeout: Duration = .seconds(10),
                 progress: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.store = store
        self.parallel = max(1, parallel)
        self.stopTimeout = stopTimeout
        self.timeout = timeout
        self.progress = progress
    }

    /// Applies every VM of `plan`; failures of one VM do not stop the others.
    package func apply(_ plan: Plan, observed: [ObservedVM]) async -> [VMResult] {
        let markers: SecretMarkers
        do { markers = try SecretMarkers(store: store) } catch {
            return plan.vms.map { VMResult(name: $0.name, status: .failed, messages: ["\(error)"]) }
        }
        let byName = Dictionary(observed.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var results: [VMResult] = []
        // Off the cooperative pool: each VM's steps make blocking calls (fsync, spawn).
        await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
        await withTaskGroup(of: VMResult.self) { group in
            var iterator = plan.vms.makeIterator()
            func next() -> Bool {
                guard let vm = iterator.next() else { return false }
                group.addTask { await self.apply(vm, observed: byName[vm.name], markers: markers) }
                return true
            }
            for _ in 0..<parallel where next() {}
            while let r = await group.next() {
                finished(r)
                results.append(r)
                _ = next()
            }
        }
        }
        return results.sorted { $0.name < $1.name }
    }

    private func apply(_ vm: VMPlan, observed: ObservedVM?, markers: SecretMarkers) async -> VMResult {
        var log = Log(name: vm.name, store: store, progress: progress)
        progress(vm.name, "\(vm.action)…")
        do throws(ApplyError) {
            switch vm.action {
            case .noOp:
                if vm.pendingRestartCleared, var stored = try loadRecord(vm.name) {
                    stored.restartPending = false
                    try save(stored, vm.name)
                    log.say("the pending restart is no longer needed (manifest reverted)")
                }
                return log.result(.unchanged)
            case .unresponsive, .unmanaged:
                log.say(vm.reason)
                return log.result(.skipped)
            case .create:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                try await create(desired, uuid: vm.uuid ?? observed?.record?.uuid, markers: markers, log: &log)
                return log.result(.created)
            case .delete:
                try await delete(vm.name, observed: observed, log: &log)
                return log.result(.deleted)
            case .restart where !vm.restartPending:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                let uuid = vm.uuid ?? observed?.record?.uuid
                log.say("restarting: \(vm.changes.filter { $0.changeClass == .restart }.map(\.path).joined(separator: ", "))")
                try await stop(vm.name, log: &log)
                FaultPoint.hit(.restartAfterStop)
                try await create(desired, uuid: uuid, markers: markers, log: &log)
                return log.result(.restarted)
            case .update, .restart:
                guard let desired = vm.desired else { throw ApplyError("the plan has no manifest for \(vm.name)") }
                try await update(vm, desired: desired, observed: observed, markers: markers, log: &log)
                return log.result(vm.restartPending ? .restartPending : .updated)
            }
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    // MARK: - Create

    private func create(_ vm: VirtualMachine, uuid: String?, markers: SecretMarkers, log: inout Log) async throws(ApplyError) {
        try await createDisks(vm, log: &log)
        let uuid = uuid ?? UUID().uuidString.lowercased()
        let secretMarkers: [String: SecretMarker]
        do { secretMarkers = try markers.markers(for: vm.spec) } catch { throw ApplyError(error.message) }
        var stored = StoredRecord(launch: LaunchRecord(uuid: uuid, labels: vm.labels, spec: vm.spec, secrets: secretMarkers),
                                  source: vm.source.file)
        if vm.spec.runState == .stopped {
            try save(stored, vm.name)
            log.say("recorded (runState: stopped, not started)")
            return
        }
        try await launch(vm, uuid: uuid, stored: &stored, log: &log)
    }

    /// Launches `vm` (its spec's run state says running or paused); `stored` is the
    /// record as it will be once QEMU is set up, and gets pid, accelerator and start time.
    ///
    /// The record on disk says, at every step, only what is true of the QEMU at that
    /// step, so a crash anywhere leaves the next apply something it can finish:
    /// 1. before QEMU starts: the spec with every NIC link up (QEMU's launch state) and
    ///    no secret markers, so whatever QEMU this launch leaves behind is found as
    ///    managed (its uuid is on its command line) and its links and passwords are
    ///    planned again (QMP cannot read either back);
    /// 2. once QEMU runs and its passwords are set: the pid and the secret markers;
    /// 3. once the links the manifest wants down are down: the spec as given.
    private func launch(_ vm: VirtualMachine, uuid: String, stored: inout StoredRecord, log: inout Log) async throws(ApplyError) {
        let config: VMConfig
        do {
            config = try VMConfigMapping.config(for: vm, uuid: uuid, socketDirectory: store.directory)
        } catch {
            throw ApplyError(error.description)
        }
        do { try store.prepare() } catch { throw ApplyError(error.message) }
        // An adopted VM's socket name is a symlink to the socket it was started with: the
        // relaunch is qemuctl's own and binds a socket of its own there.
        let socket = store.layout(vm.name).socketPath
        if Posix.isSymbolicLink(socket) {
            Posix.unlinkFile(socket)
        }
        var accelerator: AcceleratorChoice? = nil
        if config.machine.accel != .tcg {
            do {
                let binary = try QEMUDiscovery.findBinary(arch: config.arch ?? .host, configuredPath: config.qemuPath)
                accelerator = try await AcceleratorCache(store: store).choice(
                    binary: binary, machineType: config.machine.type, requested: config.machine.accel)
            } catch {
                throw ApplyError("VM \(vm.name): \(error)")
            }
        }
        // Step 1: recorded before QEMU exists, so no crash can leave a QEMU without a record.
        let settled = stored.launch
        for i in stored.launch.spec.networks.indices { stored.launch.spec.networks[i].link = .up }
        stored.launch.secrets = [:]
        let previous: StoredRecord?
        do { previous = try store.loadRecord(StoredRecord.self, name: vm.name) } catch { previous = nil }
        try save(stored, vm.name)
        FaultPoint.hit(.beforeSpawn)
        log.journal("launch uuid=\(uuid)")
        let instance: Instance
        var earlyWritten: StoredRecord? = nil
        do {
            // Paused until set up when a NIC's link must go down first or the manifest wants it paused.
            let paused = vm.spec.runState != .running || !VMConfigMapping.nicsWithLinkDown(vm).isEmpty
            // Step 2 for a VM without passwords to set happens while QEMU sets the VM up (it has a
            // pid from the start): nothing in it waits for QEMU.
            let early = settled.secrets.isEmpty ? EarlyRecord(store: store, name: vm.name, record: stored) : nil
            var options = StartOptions(socketDirectory: store.directory, startPaused: paused, timeout: timeout, accelerator: accelerator)
            if let early {
                options.onSpawn = { @Sendable (pid: Int32, choice: AcceleratorChoice) -> Void in early.save(pid: pid, choice: choice) }
            }
            instance = try await Instance.start(config, options: options)
            earlyWritten = early?.written
        } catch {
            // QEMU did not start (and Instance.start left none running): put the record back as it was.
            if let previous { try? store.saveRecord(previous, name: vm.name) } else { Posix.unlinkFile(store.recordPath(vm.name)) }
            throw ApplyError(error.message)
        }
        defer { instance.close() }
        FaultPoint.hit(.beforeRecord)
        // Step 2.
        let choice = instance.acceleratorChoice
        if let earlyWritten, earlyWritten.pid == instance.pid {
            stored = earlyWritten
        } else {
            EarlyRecord.fill(&stored, pid: instance.pid, accelerator: instance.accelerator?.rawValue, reasons: choice?.reasons ?? [])
            stored.launch.secrets = settled.secrets
            try save(stored, vm.name)
        }
        FaultPoint.hit(.afterRecord)
        log.say("started (pid \(instance.pid), \(instance.accelerator?.rawValue ?? "?")\(choice.map { " — " + ($0.reasons.last ?? "") } ?? ""))")
        let linksDown = VMConfigMapping.nicsWithLinkDown(vm)
        for nic in linksDown {
            do { try await instance.qmp.execute("set_link", arguments: ["name": .string(nic), "up": false], timeout: timeout) } catch {
                throw ApplyError("setting the link of \(nic) down: \(error)")
            }
        }
        if !linksDown.isEmpty {
            // Step 3.
            stored.launch.spec = settled.spec
            try save(stored, vm.name)
        }
        if vm.spec.runState == .running && instance.state != .running {
            FaultPoint.hit(.beforeCont)
            do { try await instance.resume(timeout: timeout) } catch { throw ApplyError(error.message) }
        }
        let state: VMState
        do { state = try await instance.refreshState(timeout: timeout) } catch { throw ApplyError(error.message) }
        let want: VMState = vm.spec.runState == .running ? .running : .prelaunch
        guard state == want || (want == .prelaunch && state == .paused) else {
            throw ApplyError("started, but QEMU reports \(state) instead of \(want)")
        }
        FaultPoint.hit(.afterVerify)
        log.journal("running state=\(state)")
    }

    /// Creates the images declared with `create:` that do not exist (format explicit, never probed).
    ///
    /// Missing parent directories are made 0700 and the image 0600 whatever the umask: the file is created
    /// empty first (`O_EXCL`, so an existing file is never overwritten) and `qemu-img create` keeps its mode.
    /// qemu-img runs with a minimal environment (no secret of this process's environment reaches it).
    private func createDisks(_ vm: VirtualMachine, log: inout Log) async throws(ApplyError) {
        for disk in vm.spec.disks {
            guard let size = disk.createSize, case .file(let path, let format) = disk.backend, !Posix.fileExists(path) else { continue }
            let qemuImg = (try? QEMUDiscovery.findBinary(arch: .amd64)).map { URL(fileURLWithPath: $0).deletingLastPathComponent().path + "/qemu-img" } ?? "/usr/bin/qemu-img"
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if let e = Posix.makeMissingDirectories(dir) { throw ApplyError("cannot create disk \(disk.name): \(e)") }
            if let e = Posix.createEmptyFile(path, mode: 0o600) { throw ApplyError("cannot create disk \(disk.name): \(e)") }
            let binary = Posix.fileExists(qemuImg) ? qemuImg : "/usr/bin/qemu-img"
            let result = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
                Posix.run(binary, ["create", "-q", "-f", format.rawValue, path, String(size)],
                          environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
            }
            if let spawnError = result.spawnError {
                Posix.unlinkFile(path)
                throw ApplyError("cannot run qemu-img: \(spawnError)")
            }
            if result.status != 0 {
                Posix.unlinkFile(path)
                throw ApplyError("qemu-img could not create disk \(disk.name) at \(path): \(Posix.trimmed(result.stderr))")
            }
            FaultPoint.hit(.afterDiskCreate)
            log.say("created disk \(disk.name): \(path) (\(format.rawValue), \(ByteSize.format(size)))")
        }
    }

    // MARK: - Update

    private func update(_ plan: VMPlan, desired: VirtualMachine, observed: ObservedVM?, markers: SecretMarkers,
                        log: inout Log) async throws(ApplyError) {
        guard var stored = try loadRecord(plan.name) else { throw ApplyError("no record for \(plan.name)") }
        // An adopted VM's devices keep the ids they were started with.
        let aliases = stored.adopted?.deviceAliases ?? [:]
        func qemuID(_ ours: String) -> String { aliases.first { $0.value == ours }?.key ?? ours }
        // A VM that must run is continued last, once its links and media are as the manifest says.
        let resume = desired.spec.runState == .running
        let changes = plan.executedChanges.filter { !(resume && $0.path == "spec.runState") }
            + plan.executedChanges.filter { resume && $0.path == "spec.runState" }
        let instance: Instance?
        let needsQEMU = changes.contains { $0.changeClass == .live }
        if needsQEMU {
            do {
                instance = try await Instance.attach(socketPath: store.layout(plan.name).socketPath, timeout: timeout)
            } catch {
                throw ApplyError(error.message)
            }
            if let i = instance, let why = store.disproof(ofPeer: i.pid, uid: i.qmp.peerUID, name: plan.name) {
                i.close()
                throw ApplyError("refusing to change \(plan.name): \(why)")
            }
        } else {
            instance = nil
        }
        defer { instance?.close() }
        var newSpec = stored.launch.spec
        var done: Set<String> = []
        for change in changes {
            let path = change.path
            if change.changeClass == .metadata {
                if path.hasPrefix("metadata.labels") { stored.launch.labels = desired.labels }
                log.say("~ \(path) (recorded)")
                continue
            }
            guard let instance else { continue }
            if path == "spec.runState" {
                try await setRunState(desired.spec.runState, instance, log: &log)
                newSpec.runState = desired.spec.runState
                if desired.spec.runState == .stopped { break }
            } else if let disk = Self.element(path, "spec.disks["), path.contains("].throttle") {
                guard done.insert("throttle:\(disk)").inserted else { continue }
                let wanted = desired.spec.disks.first { $0.name == disk }?.throttle
                do {
                    try await setThrottle(disk, wanted, instance, aliases: aliases)
                } catch let e as InstanceError {
                    throw ApplyError(e.message)
                } catch let e as ApplyError {
                    throw e
                } catch {
                    throw ApplyError("\(error)")
                }
                if let i = newSpec.disks.firstIndex(where: { $0.name == disk }) { newSpec.disks[i].throttle = wanted }
                log.say("~ spec.disks[\(disk)].throttle set and read back")
            } else if let cd = Self.element(path, "spec.cdroms["), path.hasSuffix(".path") {
                let media = desired.spec.cdroms.first { $0.name == cd }?.path
                do {
                    if let media {
                        try await instance.qmp.execute("blockdev-change-medium", arguments: [
                            "id": .string(qemuID("cd-\(cd)")), "filename": .string(media), "format": "raw", "read-only-mode": "read-only",
                        ], timeout: timeout)
                    } else {
                        try await instance.qmp.execute("eject", arguments: ["id": .string(qemuID("cd-\(cd)")), "force": true], timeout: timeout)
                    }
                } catch {
                    throw ApplyError("changing the media of \(cd): \(error)")
                }
                if let i = newSpec.cdroms.firstIndex(where: { $0.name == cd }) { newSpec.cdroms[i].path = media }
                log.say("~ spec.cdroms[\(cd)].path \(media == nil ? "ejected" : "inserted")")
            } else if let nic = Self.element(path, "spec.networks["), path.hasSuffix(".link") {
                let up = desired.spec.networks.first { $0.name == nic }?.link != .down
                do {
                    try await instance.qmp.execute("set_link", arguments: ["name": .string(qemuID("net-\(nic)")), "up": .bool(up)], timeout: timeout)
                } catch {
                    throw ApplyError("setting the link of \(nic): \(error)")
                }
                if let i = newSpec.networks.firstIndex(where: { $0.name == nic }) { newSpec.networks[i].link = up ? .up : .down }
                log.say("~ \(path) \(up ? "up" : "down")")
            } else if path.hasPrefix("spec.display.vnc.passwordFrom") || path.hasPrefix("spec.display.spice.passwordFrom") {
                let isVNC = path.hasPrefix("spec.display.vnc")
                guard let reference = isVNC ? desired.spec.display.vnc?.passwordFrom : desired.spec.display.spice?.passwordFrom else {
                    throw ApplyError("\(path): removing a display password needs a restart")
                }
                let value: String
                do { value = try SecretMarkers.read(reference, path: path) } catch { throw ApplyError(error.message) }
                do {
                    try await instance.setPassword(isVNC ? .vnc : .spice, .value(value), timeout: timeout)
                } catch {
                    throw ApplyError(error.message)
                }
                stored.launch.secrets[path] = markers.marker(for: value)
                if isVNC { newSpec.display.vnc?.passwordFrom = reference } else { newSpec.display.spice?.passwordFrom = reference }
                log.say("~ \(path) set (sensitive)")
            } else if path == "spec.cpu.count" {
                let count = desired.spec.cpu.count
                do {
                    try await instance.setCPUCount(count, wait: stopTimeout, timeout: timeout)
                    let read = try await instance.qmp.execute("query-cpus-fast", timeout: timeout).arrayValue?.count
                    guard read == count else { throw ApplyError("spec.cpu.count: \(count) asked, QEMU reports \(read ?? 0) vCPUs") }
                } catch {
                    throw Self.stepError(error, "spec.cpu.count")
                }
                newSpec.cpu.count = count
                log.say("~ spec.cpu.count \(count) (vCPUs hot-plugged, read back)")
            } else if path == "spec.memory.size" {
                let size = desired.spec.memory.size
                do {
                    try await instance.setMemorySize(size, wait: stopTimeout, timeout: timeout)
                    let summary = try await instance.qmp.execute("query-memory-size-summary", timeout: timeout)
                    let read = UInt64((summary["base-memory"]?.intValue ?? 0) + (summary["plugged-memory"]?.intValue ?? 0))
                    guard read == size else { throw ApplyError("spec.memory.size: \(ByteSize.format(size)) asked, QEMU reports \(ByteSize.format(read))") }
                } catch {
                    throw Self.stepError(error, "spec.memory.size")
                }
                newSpec.memory.size = size
                log.say("~ spec.memory.size \(ByteSize.format(size)) (memory hot-plugged, read back)")
            } else if let disk = Self.element(path, "spec.disks["), path == "spec.disks[\(disk)]" {
                if change.operation == .add {
                    try await hotplugDisk(disk, desired: desired, uuid: stored.launch.uuid, instance, log: &log)
                    if let d = desired.spec.disks.first(where: { $0.name == disk }) {
                        newSpec.disks.removeAll { $0.name == disk }
                        newSpec.disks.append(d)
                    }
                } else {
                    try await unplug(.disk(disk), recorded: stored, name: plan.name, instance, log: &log)
                    newSpec.disks.removeAll { $0.name == disk }
                }
            } else if let nic = Self.element(path, "spec.networks["), path == "spec.networks[\(nic)]" {
                if change.operation == .add {
                    try await hotplugNIC(nic, desired: desired, uuid: stored.launch.uuid, instance, log: &log)
                    if let n = desired.spec.networks.first(where: { $0.name == nic }) {
                        newSpec.networks.removeAll { $0.name == nic }
                        newSpec.networks.append(n)
                    }
                } else {
                    try await unplug(.network(nic), recorded: stored, name: plan.name, instance, log: &log)
                    newSpec.networks.removeAll { $0.name == nic }
                }
            } else {
                throw ApplyError("\(path): this live change is not supported by apply yet; use --restart=if-needed to relaunch")
            }
        }
        stored.launch.spec = plan.restartPending ? newSpec : desired.spec
        if !plan.restartPending {
            stored.launch.labels = desired.labels
            do { stored.launch.secrets = try markers.markers(for: desired.spec) } catch { throw ApplyError(error.message) }
        }
        stored.restartPending = plan.restartPending
        try save(stored, plan.name)
        if plan.restartPending {
            log.say("restart pending: \(plan.deferredChanges.map(\.path).joined(separator: ", ")) (use --restart=if-needed)")
        }
    }

    // MARK: - Hot-plug

    /// Hot-plugs disk `name` of `desired`: creates its image when declared with `create:`, adds its
    /// nodes and device (a free root port for virtio/NVMe, a free SCSI id on `scsi0`), reads it back.
    private func hotplugDisk(_ name: String, desired: VirtualMachine, uuid: String, _ instance: Instance,
                             log: inout Log) async throws(ApplyError) {
        guard let disk = desired.spec.disks.first(where: { $0.name == name }) else { throw ApplyError("no disk \(name) in the manifest") }
        var one = desired
        one.spec.disks = [disk]
        try await createDisks(one, log: &log)
        let config = try config(for: desired, uuid: uuid)
        // The same image checks as at launch: nothing the image header names beyond the image is opened.
        if let d = config.disks.first(where: { $0.name == name }), case .file(let f) = d.backend,
           let problem = HostFileCheck.imageProblem(path: f.path, format: f.format) {
            throw ApplyError("disk \(name): \(problem)")
        }
        do {
            var port: String? = nil
            var scsiID: Int? = nil
            if disk.interface == .scsi {
                scsiID = try await freeSCSIID(instance)
            } else {
                port = try await instance.freeHotplugPorts(timeout: timeout).first
                guard port != nil else { throw ApplyError("disk \(name): no free hot-plug root port left; use --restart=if-needed") }
            }
            let plug = try config.hotplug(disk: name, port: port, scsiID: scsiID)
            log.journal("hotplug \(plug.deviceID) \(port ?? "scsi0.0 id \(scsiID ?? 0)")")
            try await instance.hotplug(plug, timeout: timeout)
            let present = try await instance.blockDevices(timeout: timeout).contains {
                $0.qdev?.split(separator: "/").contains(Substring(plug.deviceID)) == true
            }
            guard present else { throw ApplyError("disk \(name): hot-plugged, but query-block does not list \(plug.deviceID)") }
            log.say("+ spec.disks[\(name)] hot-plugged (\(port ?? "scsi0, id \(scsiID ?? 0)")) and read back")
        } catch {
            throw Self.stepError(error, "disk \(name)")
        }
    }

    /// Hot-plugs network `name` of `desired` into a free root port and reads it back; sets its link
    /// down when the manifest says so.
    private func hotplugNIC(_ name: String, desired: VirtualMachine, uuid: String, _ instance: Instance,
                            log: inout Log) async throws(ApplyError) {
        let config = try config(for: desired, uuid: uuid)
        do {
            guard let port = try await instance.freeHotplugPorts(timeout: timeout).first else {
                throw ApplyError("network \(name): no free hot-plug root port left; use --restart=if-needed")
            }
            let plug = try config.hotplug(network: name, port: port)
            log.journal("hotplug \(plug.deviceID) \(port)")
            try await instance.hotplug(plug, timeout: timeout)
            if desired.spec.networks.first(where: { $0.name == name })?.link == .down {
                _ = try await instance.qmp.execute("set_link", arguments: ["name": .string(plug.deviceID), "up": false], timeout: timeout)
            }
            let reply = try await instance.qmp.execute("query-pci", timeout: timeout)
            guard Observer.devicesOnHotplugPorts(reply).contains(plug.deviceID) else {
                throw ApplyError("network \(name): hot-plugged, but query-pci does not show \(plug.deviceID) on a hot-plug port")
            }
            log.say("+ spec.networks[\(name)] hot-plugged (\(port)) and read back")
        } catch let e as QMPError {
            throw ApplyError("network \(name): \(e.message)")
        } catch {
            throw Self.stepError(error, "network \(name)")
        }
    }

    /// A device an unplug removes: a disk (its image is kept) or a NIC.
    private enum Unpluggable {
        case disk(String), network(String)
    }

    /// Unplugs a disk or NIC (the guest must release a PCI device) and removes its backends;
    /// a disk's image is never touched. A device the record does not know (plugged by hand)
    /// is unplugged without backend clean-up.
    private func unplug(_ device: Unpluggable, recorded: StoredRecord, name vmName: String, _ instance: Instance,
                        log: inout Log) async throws(ApplyError) {
        let (name, known, fallbackID, what, done): (String, Bool, String, String, String)
        switch device {
        case .disk(let d):
            (name, known, fallbackID, what, done) = (d, recorded.launch.spec.disks.contains { $0.name == d }, "disk-\(d)",
                                                    "disk", "- spec.disks[\(d)] unplugged (the image is kept)")
        case .network(let n):
            (name, known, fallbackID, what, done) = (n, recorded.launch.spec.networks.contains { $0.name == n }, "net-\(n)",
                                                    "network", "- spec.networks[\(n)] unplugged")
        }
        var plug = HotplugSteps(deviceID: fallbackID)
        if known {
            do {
                let config = try config(for: recordedVM(recorded, vmName), uuid: recorded.launch.uuid)
                switch device {
                case .disk: plug = try config.unplug(disk: name)
                case .network: plug = try config.unplug(network: name)
                }
            } catch {
                throw ApplyError("\(what) \(name): \(error)")
            }
        }
        log.journal("unplug \(plug.deviceID)")
        do { try await instance.unplug(plug, wait: stopTimeout, timeout: timeout) } catch {
            throw ApplyError(error.message + "; retry, or use --restart=if-needed")
        }
        log.say(done)
    }

    /// The lowest SCSI id no device on `scsi0` uses.
    private func freeSCSIID(_ instance: Instance) async throws -> Int {
        let children = try await instance.qmp.execute("qom-list", arguments: ["path": "/machine/peripheral"], timeout: timeout)
        var used: Set<Int> = []
        for child in children.arrayValue ?? [] {
            guard let type = child["type"]?.stringValue, type == "child<scsi-hd>" || type == "child<scsi-cd>",
                  let id = child["name"]?.stringValue else { continue }
            let value = try await instance.qmp.execute("qom-get", arguments: [
                "path": .string("/machine/peripheral/\(id)"), "property": "scsi-id"], timeout: timeout)
            if let n = value.intValue { used.insert(n) }
        }
        guard let free = (0..<256).first(where: { !used.contains($0) }) else { throw ApplyError("no free SCSI id on scsi0") }
        return free
    }

    /// The manifest of what the record says runs.
    private func recordedVM(_ stored: StoredRecord, _ name: String) -> VirtualMachine {
        VirtualMachine(name: name, labels: stored.launch.labels, spec: stored.launch.spec,
                       source: SourceLocation(file: stored.source ?? "record", line: 1, column: 1))
    }

    private func config(for vm: VirtualMachine, uuid: String) throws(ApplyError) -> VMConfig {
        do { return try VMConfigMapping.config(for: vm, uuid: uuid, socketDirectory: store.directory) } catch {
            throw ApplyError(error.description)
        }
    }

    /// Sets a disk's limits where they live (its throttle group, else the block backend), clears
    /// backend limits set by hand on a disk with a group, and reads the result back.
    /// - Parameter aliases: For an adopted VM, QEMU's block device names → qemuctl's ids.
    private func setThrottle(_ disk: String, _ wanted: VirtualMachineSpec.Disk.Throttle?, _ instance: Instance,
                             aliases: [String: String] = [:]) async throws {
        func find() async throws -> QMPBlockDevice? {
            try await instance.blockDevices(timeout: timeout).first { b in
                b.qdev.map { aliases[$0] ?? $0 }?.split(separator: "/").contains("disk-\(disk)"[...]) == true
            }
        }
        guard let block = try await find() else { throw ApplyError("disk \(disk): QEMU has no such disk") }
        // Instance.setIOThrottle finds a disk by qemuctl's name, or by QEMU's qdev as given.
        let disk = block.qdev.flatMap { aliases[$0] != nil ? $0 : nil } ?? disk
        let path = ThrottleGroups.objectPath(disk)
        if ThrottleGroups.hasGroup(block) {
            try await instance.qmp.execute("qom-set", arguments: [
                "path": .string(path), "property": "limits", "value": ThrottleGroups.qomLimits(wanted)], timeout: timeout)
            if block.inserted.map({ !$0.throttle.isUnlimited }) == true {
                try await instance.setIOThrottle(disk: disk, QMPIOThrottle(), timeout: timeout)
            }
            let group = try await instance.qmp.execute("qom-get", arguments: ["path": .string(path), "property": "limits"], timeout: timeout)
            let backend = try await find()?.inserted?.throttle
            guard Observer.throttle(ThrottleGroups.limits(group)) == wanted, backend?.isUnlimited != false else {
                throw ApplyError("disk \(disk): QEMU reports a different throttle after setting it")
            }
        } else {
            try await instance.setIOThrottle(disk: disk, Observer.qmpThrottle(wanted), timeout: timeout)
            guard Observer.throttle(try await find()?.inserted?.throttle) == wanted else {
                throw ApplyError("disk \(disk): QEMU reports a different throttle after setting it")
            }
        }
    }

    private func setRunState(_ wanted: RunState, _ instance: Instance, log: inout Log) async throws(ApplyError) {
        do {
            switch wanted {
            case .running:
                if [.shutdown, .guestPanicked, .internalError].contains(instance.state) {
                    try await instance.reset(timeout: timeout)
                }
                try await instance.resume(timeout: timeout)
            case .paused:
                try await instance.pause(timeout: timeout)
            case .stopped:
                let outcome = try await instance.stop(timeout: stopTimeout)
                log.say("~ spec.runState stopped (\(outcome))")
                return
            }
            let state = try await instance.refreshState(timeout: timeout)
            let ok = wanted == .running ? state == .running : (state == .paused || state == .prelaunch)
            guard ok else { throw ApplyError("runState \(wanted.rawValue) requested, QEMU reports \(state)") }
            log.say("~ spec.runState \(wanted.rawValue) (QEMU reports \(state))")
        } catch let e as InstanceError {
            throw ApplyError(e.message)
        } catch let e as ApplyError {
            throw e
        } catch {
            throw ApplyError("\(error)")
        }
    }

    // MARK: - Stop and delete

    /// Stops a VM by the ladder, if it runs.
    private func stop(_ name: String, log: inout Log) async throws(ApplyError) {
        let layout = store.layout(name)
        guard Posix.fileExists(layout.socketPath) else { return }
        let instance: Instance
        do {
            instance = try await Instance.attach(socketPath: layout.socketPath, timeout: timeout)
        } catch {
            if error.code == .notFound { return }
            if error.code == .unresponsive {
                throw ApplyError("VM \(name) is unresponsive (its monitor did not answer within \(timeout)); not stopped. "
                                 + "Retry when it answers, or `qemuctl delete --force \(name)` kills it")
            }
            throw ApplyError(error.message)
        }
        defer { instance.close() }
        if let why = store.disproof(ofPeer: instance.pid, uid: instance.qmp.peerUID, name: name) {
            throw ApplyError("refusing to stop \(name): \(why)")
        }
        do {
            let outcome = try await instance.stop(timeout: stopTimeout)
            log.say("stopped (\(outcome))")
            log.journal("stopped \(outcome)")
        } catch {
            throw ApplyError(error.message)
        }
    }

    /// `qemuctl delete`: stops the VM (by the ladder, or at once with `force`) and
    /// removes its runtime files. Disk images are never touched.
    package func deleteVM(_ name: String, force: Bool) async -> VMResult {
        var log = Log(name: name, store: store, progress: progress)
        do throws(ApplyError) {
            if force {
                let layout = store.layout(name)
                let record = try loadRecord(name)
                // Only a pid proven to be the recorded QEMU serving the VM's socket is signalled.
                var proven: Int32? = nil
                switch record?.signallablePID(layout: layout) {
                case .success(let pid)?: proven = pid
                case .failure(let why)? where record?.expectedProcess(fallbackPID: Instance.readPIDFile(layout.pidFile)) != nil:
                    throw ApplyError("not killed: \(why.message)")
                default: break  // nothing of it runs
                }
                if let pid = proven {
                    Posix.signal(pid, Posix.sigkill)
                    var gone = false
                    for _ in 0..<500 where !gone {
                        gone = !Posix.processExists(pid)
                        if !gone { try? await Task.sleep(for: .milliseconds(10)) }
                    }
                    guard gone else { throw ApplyError("pid \(pid) survived SIGKILL") }
                    log.say("killed (SIGKILL, pid \(pid))")
                }
                store.removeRuntimeFiles(name)
                log.say("deleted (disk images kept)")
            } else {
                try await delete(name, observed: nil, log: &log)
            }
            return log.result(.deleted)
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    /// `qemuctl start`: launches a managed VM that is not running from its launch
    /// record (the spec it was last launched or applied with), vCPUs running.
    ///
    /// The record keeps its spec, labels, secret markers and pending-restart flag; only
    /// the pid, accelerator and start time change. So a start that contradicts the
    /// manifest (which says `runState: stopped`) shows as drift in `qemuctl diff`.
    /// A VM that already runs is left alone and reported ``VMResult/Status/unchanged``.
    package func startVM(_ name: String) async -> VMResult {
        var log = Log(name: name, store: store, progress: progress)
        do throws(ApplyError) {
            guard var stored = try loadRecord(name) else {
                throw ApplyError("\(name) is not a VM managed in \(store.directory)")
            }
            if let pid = store.runningPID(name) {
                log.messages.append("already running (pid \(pid))")
                return log.result(.unchanged)
            }
            var spec = stored.launch.spec
            spec.runState = .running
            let vm = VirtualMachine(name: name, labels: stored.launch.labels, spec: spec,
                                    source: SourceLocation(file: stored.source ?? store.recordPath(name), line: 1, column: 1))
            try await launch(vm, uuid: stored.launch.uuid, stored: &stored, log: &log)
            return log.result(.created)
        } catch {
            log.say("failed: \(error.message)")
            return log.result(.failed)
        }
    }

    /// Stops the VM and removes its runtime files; disk images are never touched.
    package func delete(_ name: String, observed: ObservedVM?, log: inout Log) async throws(ApplyError) {
        try await stop(name, log: &log)
        FaultPoint.hit(.deleteAfterStop)
        store.removeRuntimeFiles(name)
        log.say("deleted (disk images kept)")
    }

    // MARK: - Helpers

    private func loadRecord(_ name: String) throws(ApplyError) -> StoredRecord? {
        do { return try store.loadRecord(StoredRecord.self, name: name) } catch { throw ApplyError(error.message) }
    }

    private func save(_ record: StoredRecord, _ name: String) throws(ApplyError) {
        do { try store.saveRecord(record, name: name) } catch { throw ApplyError(error.message) }
    }

    /// The error of a failed step: an ``ApplyError`` as it is, an ``InstanceError`` by its message
    /// (which names the VM and what failed), anything else after `context`.
    static func stepError(_ error: any Error, _ context: String) -> ApplyError {
        switch error {
        case let e as ApplyError: e
        case let e as InstanceError: ApplyError(e.message)
        default: ApplyError("\(context): \(error)")
        }
    }

    /// `spec.disks[NAME].throttle.bps` → `NAME` for prefix `spec.disks[`.
    static func element(_ path: String, _ prefix: String) -> String? {
        guard path.hasPrefix(prefix), let close = path.firstIndex(of: "]") else { return nil }
        return String(path[path.index(path.startIndex, offsetBy: prefix.count)..<close])
    }

    /// Collects a VM's messages and journals them.
    package struct Log: Sendable {
        let name: String
        let store: StateStore
        let progress: @Sendable (String, String) -> Void
        var messages: [String] = []

        mutating func say(_ message: String) {
            messages.append(message)
            progress(name, message)
            store.journal(name, message)
        }

        func journal(_ line: String) { store.journal(name, line) }

        func result(_ status: VMResult.Status) -> VMResult {
            VMResult(name: name, status: status, messages: messages)
        }
    }
}

/// A failed step of an apply.
package struct ApplyError: Error, Sendable, CustomStringConvertible {
    /// What failed (never a secret).
    package var message: String
    init(_ message: String) { self.message = message }
    /// The message.
    package var description: String { message }
}

/// Step 2 of a launch written as soon as QEMU has a pid (``StartOptions/onSpawn``), for a VM
/// with no password to set: the record then says what is true of that QEMU.
private final class EarlyRecord: Sendable {
    let store: StateStore
    let name: String
    let record: StoredRecord
    private let done = Mutex<StoredRecord?>(nil)

    init(store: StateStore, name: String, record: StoredRecord) {
        self.store = store
        self.name = name
        self.record = record
    }

    /// The record as written, or nil if it was not.
    var written: StoredRecord? { done.withLock { $0 } }

    func save(pid: Int32, choice: AcceleratorChoice) {
        var r = record
        Self.fill(&r, pid: pid, accelerator: choice.accelerator.rawValue, reasons: choice.reasons)
        guard (try? store.saveRecord(r, name: name)) != nil else { return }
        done.withLock { $0 = r }
    }

    /// Puts what a running QEMU adds into `record`.
    static func fill(_ record: inout StoredRecord, pid: Int32, accelerator: String?, reasons: [String]) {
        record.pid = pid
        record.process = ProcessIdentity.current(pid: pid)
        record.accelerator = accelerator
        record.acceleratorReasons = reasons
        record.startedAt = Date().timeIntervalSince1970
    }
}
