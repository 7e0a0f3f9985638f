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
import QemuCtl

// MARK: - Create and launch

extension Applier {

    /// Creates the VM's disks and launches it, or records it when its manifest says `runState: stopped`.
    /// - Parameter config: `vm` mapped onto a QEMU configuration (any uuid), when the session did it already.
    /// - Parameter applySet: The ``ApplySet`` id recorded as the VM's set.
    func create(_ vm: VirtualMachine, config: VMConfig? = nil, uuid: String?, applySet: String? = nil, markers: SecretMarkers,
                log: inout Log) async throws(ApplyError) {
        try await createDisks(vm, log: &log)
        let uuid = uuid ?? UUID().uuidString.lowercased()
        let secretMarkers: [String: SecretMarker]
        do { secretMarkers = try markers.markers(for: vm.spec) } catch { throw ApplyError(error.message) }
        var stored = StoredRecord(launch: LaunchRecord(uuid: uuid, labels: vm.labels, spec: vm.spec, secrets: secretMarkers),
                                  source: vm.source.file)
        stored.launch.applySet = applySet
        if vm.spec.runState == .stopped {
            try save(stored, vm.name)
            log.say("recorded (runState: stopped, not started)")
            return
        }
        try await launch(vm, config: config, uuid: uuid, stored: &stored, log: &log)
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
    func launch(_ vm: VirtualMachine, config mapped: VMConfig? = nil, uuid: String, stored: inout StoredRecord,
                log: inout Log) async throws(ApplyError) {
        var uuid = uuid
        if LaunchRecord.isNilUUID(uuid) {
            // An adopted QEMU started without -uuid reports the nil uuid, and its record keeps it
            // so it stays found; qemuctl's own launch gives the VM a uuid of its own.
            uuid = UUID().uuidString.lowercased()
            stored.launch.uuid = uuid
            log.say("the recorded uuid was all zeros (an adopted VM started without -uuid); launched with a new uuid \(uuid)")
        }
        var config: VMConfig
        if let mapped { config = mapped } else { config = try self.config(for: vm, uuid: uuid) }
        config.uuid = uuid
        do { try store.prepare() } catch { throw ApplyError(error.message) }
        // An adopted VM's socket name is a symlink to the socket it was started with: the
        // relaunch is qemuctl's own and binds a socket of its own there.
        store.removeAdoptedSocketLink(vm.name)
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
        stored.cloudInitInstanceID = vm.spec.cloudInit?.effectiveInstanceID(uuid: uuid)
        let previous: StoredRecord?
        do { previous = try store.loadRecord(StoredRecord.self, name: vm.name) } catch { previous = nil }
        // Every device keeps the PCI slot it had at the last launch (a restart makes a new record:
        // the previous one has the slots); new devices take free slots, removed ones free theirs.
        config.pciSlotHints = stored.launch.pciSlots ?? previous?.launch.pciSlots ?? [:]
        let slots = config.pciSlotPlan().slots
        stored.launch.pciSlots = slots.isEmpty ? nil : slots
        // Whether this launch makes the VM's runtime directory and socket: only then may a failed
        // start take them away again (anything that was there before, planted or not, stays).
        let layout = store.layout(vm.name)
        let firstOfItsFiles = !Posix.fileExists(layout.runtimeDirectory) && !Posix.isSymbolicLink(layout.runtimeDirectory)
            && !Posix.fileExists(layout.socketPath) && !Posix.isSymbolicLink(layout.socketPath)
        // How the last QEMU ended is in its qemu.log, which this launch empties: kept in the record.
        if let previous, let exit = ExitReport.read(layout: layout, record: previous, tailLines: 0) {
            stored.restarts = previous.restarts ?? RestartHistory()
            stored.restarts?.lastExit = QEMUExit(reason: exit.summary, byGuest: exit.byGuest, at: exit.at ?? Date().timeIntervalSince1970)
            log.journal("last exit: \(exit.summary)")
        }
        try save(stored, vm.name)
        FaultPoint.hit(.beforeSpawn)
        log.journal("launch uuid=\(uuid)")
        let instance: Instance
        var earlyWritten: StoredRecord? = nil
        do throws(InstanceError) {
            // The cloud-init seed, rebuilt at every launch from the manifest (the volume QEMU attaches).
            do { _ = try writeCloudInitSeed(vm, uuid: uuid, log: &log) } catch {
                throw InstanceError(code: .startFailed, message: error.message)
            }
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
            // QEMU did not start (and Instance.start left none running): put the record back as it was,
            // or, for a VM this launch was the first of, leave nothing of it behind but its disk images
            // (never deleted): no runtime directory or socket that `get` would hide and `delete` refuse.
            if let previous {
                try? store.saveRecord(previous, name: vm.name)
                throw ApplyError(error.message)
            }
            guard firstOfItsFiles else {
                Posix.unlinkFile(store.recordPath(vm.name))
                throw ApplyError(error.message)
            }
            store.removeRuntimeFiles(vm.name)
            let images = vm.spec.disks.compactMap { d -> String? in
                if case .file(let path, _) = d.backend, d.creates, Posix.fileExists(path) { return path }
                return nil
            }
            throw ApplyError(error.message + "; nothing of \(vm.name) was left in the state directory"
                             + (images.isEmpty ? "" : " (disk images kept: \(images.joined(separator: ", ")))"))
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
            try saveRunning(stored, vm.name, pid: instance.pid)
        }
        FaultPoint.hit(.afterRecord)
        log.say("started (pid \(instance.pid), \(instance.accelerator?.rawValue ?? "?")\(choice.map { " — " + ($0.reasons.last ?? "") } ?? ""))")
        let linksDown = VMConfigMapping.nicsWithLinkDown(vm)
        for nic in linksDown {
            do { try await instance.setLink(device: nic, up: false, timeout: timeout) } catch {
                throw ApplyError("setting the link of \(nic) down: \(error)")
            }
        }
        if !linksDown.isEmpty {
            // Step 3.
            stored.launch.spec = settled.spec
            try saveRunning(stored, vm.name, pid: instance.pid)
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

    /// Saves the record of a VM whose QEMU (`pid`) was launched and runs: a failure (a full disk)
    /// says so, since "record.json is unchanged" alone would read as if nothing had happened. The
    /// record on disk then still says what was true before this step, which the next apply builds on.
    private func saveRunning(_ record: StoredRecord, _ name: String, pid: Int32) throws(ApplyError) {
        do { try save(record, name) } catch {
            throw ApplyError("\(error.message). QEMU was launched and runs (pid \(pid)), but its record could not be updated; "
                             + "the next apply completes it")
        }
    }

    /// Creates the images declared with `create:` that do not exist (format explicit, never probed),
    /// blank or from a base (`create.from`: an overlay on it or a copy of it), with
    /// ``ImageCreation/createIfMissing(path:format:size:from:qemuImg:)``: made in a private
    /// directory and linked into place, never opened by name at the final path; the base is only read.
    func createDisks(_ vm: VirtualMachine, log: inout Log) async throws(ApplyError) {
        for disk in vm.spec.disks {
            guard disk.creates, case .file(let path, let format) = disk.backend else { continue }
            // The manifest's formats are QemuCtl's, name for name.
            let base = disk.createFrom.flatMap { from in
                DiskFormat(rawValue: from.format.rawValue).map {
                    ImageCreation.Base(path: from.path, format: $0, mode: disk.createMode == .copy ? .copy : .overlay)
                }
            }
            do {
                guard try await ImageCreation.createIfMissing(path: path, format: format.rawValue, size: disk.createSize,
                                                              from: base) else { continue }
            } catch {
                throw ApplyError("cannot create disk \(disk.name): \(error.message)")
            }
            FaultPoint.hit(.afterDiskCreate)
            let size = disk.createSize.map { ", \(ByteSize.format($0))" } ?? ""
            if let base {
                log.say("created disk \(disk.name): \(path) (\(format.rawValue)\(size), \(base.mode.rawValue) of \(base.path) (\(base.format.rawValue)))")
            } else {
                log.say("created disk \(disk.name): \(path) (\(format.rawValue)\(size))")
            }
        }
    }
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
