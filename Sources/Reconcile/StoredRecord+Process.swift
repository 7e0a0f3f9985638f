#if canImport(Glibc)
import Glibc
#endif
package import QemuCtl

// MARK: - Proving the recorded QEMU

extension StoredRecord {
    /// The identity of the QEMU this record vouches for: the one written at launch or
    /// adoption (``process``); for a record written before identities were recorded, the
    /// recorded pid (or, for a launch interrupted before the pid was recorded, `fallbackPID`:
    /// the pid file in the VM's private directory) with the start time and executable it
    /// has now, accepted only when that executable is a QEMU system emulator and, for an
    /// adopted VM, the start time is the adopted one. `nil` when there is no such process.
    ///
    /// Either way the executable must be named like QEMU (`qemu-system-*`, `qemu-kvm`): a
    /// record never vouches for another program, whatever it says.
    package func expectedProcess(fallbackPID: Int32? = nil) -> ProcessIdentity? {
        if let process { return Self.isQEMU(process.executable) ? process : nil }
        guard let pid = adopted?.pid ?? pid ?? fallbackPID, let now = ProcessIdentity.current(pid: pid) else { return nil }
        if let adopted, let start = adopted.startTime, start != now.startTime { return nil }
        return Self.isQEMU(now.executable) ? now : nil
    }

    /// Whether an executable path names a QEMU system emulator (`qemu-system-*`, `qemu-kvm`).
    package static func isQEMU(_ executable: String) -> Bool { ProcessIdentity.isQEMU(executable: executable) }

    /// Why the peer of a monitor connection is not the QEMU this record names, or `nil`
    /// when it is proven to be (``ProcessIdentity/disproof(peerPID:peerUID:)``). Callers
    /// refuse to send the peer anything but read-only queries (never a secret) unless
    /// this is `nil`.
    package func disproof(peer: (pid: Int32, uid: UInt32)?, layout: RuntimeLayout) -> String? {
        guard let expected = expectedProcess(fallbackPID: Self.pidFile(layout)) else {
            return "no live QEMU matches its record"
        }
        return expected.disproof(peerPID: peer?.pid, peerUID: peer?.uid)
    }

    /// The pid of the recorded QEMU, proven to be alive as recorded and to listen on the
    /// VM's socket (``ProcessIdentity/disproof(servingSocket:)``): the only pid qemuctl
    /// signals. Throws (as `Result.failure`) why not, for the caller's message.
    package func signallablePID(layout: RuntimeLayout) -> Result<Int32, ProofFailure> {
        guard let expected = expectedProcess(fallbackPID: Self.pidFile(layout)) else {
            return .failure(ProofFailure(message: "no live QEMU matches its record"))
        }
        let socket = adopted?.socketPath ?? layout.socketPath
        // A QEMU stopped or wedged long enough fills its listen queue, and a connect then fails: the
        // recorded identity alone (start time, executable, this user's process) has to do for it.
        // (One connection only: each one takes a place in that queue.)
        let why: String?
        if let peer = ProcessIdentity.listener(of: socket) {
            why = expected.disproof(peerPID: peer.pid, peerUID: peer.uid)
        } else {
            why = expected.disproofOfLiveProcess() ?? (Posix.ownerAndMode("/proc/\(expected.pid)")?.uid == Posix.effectiveUID
                                                      ? nil : "pid \(expected.pid) does not run as this user")
        }
        if let why {
            return .failure(ProofFailure(message: "pid \(expected.pid) is not proven to be its QEMU: \(why)"))
        }
        return .success(expected.pid)
    }

    /// Why a process could not be proven to be the recorded QEMU.
    package struct ProofFailure: Error, Sendable, CustomStringConvertible {
        /// What was found instead.
        package var message: String
        /// The message.
        package var description: String { message }
    }

    /// The pid in the VM's pid file, if it holds one.
    private static func pidFile(_ layout: RuntimeLayout) -> Int32? { Instance.readPIDFile(layout.pidFile) }
}

extension StateStore {
    /// Why the QEMU behind an attached monitor (`pid` and `uid` from `SO_PEERCRED`) is not
    /// the one recorded for VM `name`, or `nil` when it is proven to be; with no record,
    /// only its uid is checked (it must be this user's). Checked before anything is sent
    /// that is not a read-only query: a secret, or a stop ladder that ends in signals.
    package func disproof(ofPeer pid: Int32, uid: UInt32?, name: String) -> String? {
        guard let record = try? loadRecord(StoredRecord.self, name: name) else {
            guard let uid, uid == Posix.effectiveUID else {
                return "its monitor's peer runs as uid \(uid.map(String.init) ?? "unknown"), not as this user"
            }
            return nil
        }
        return record.disproof(peer: uid.map { (pid, $0) }, layout: layout(name))
    }
}

// MARK: - Completing an interrupted launch

extension StateStore {
    /// Completes the records of launches that were interrupted between starting QEMU and
    /// recording it (a qemuctl killed in the moments after the spawn leaves a record with the
    /// spec and uuid but no pid, process identity, accelerator or start time, and nothing
    /// else would ever write them): for each such record whose QEMU is proven to run, the
    /// record gets that QEMU's pid, identity, accelerator and start time; a record whose
    /// QEMU does not run is left as it is (the observer reports it not running, and apply
    /// launches it). Run by the lock holder (``withApplyLock(wait:onWait:_:)``), the only
    /// writer of records. Returns the names completed, with the pid.
    ///
    /// The QEMU is proven as a signal's target is (``StoredRecord/signallablePID(layout:)``):
    /// the pid in the VM's pid file runs a QEMU system emulator as this user, it is the
    /// process listening on the VM's socket (`SO_PEERCRED`), and its command line carries
    /// the record's uuid. Anything less and the record stays incomplete.
    @discardableResult
    package func completeInterruptedLaunches() -> [(name: String, pid: Int32)] {
        var completed: [(name: String, pid: Int32)] = []
        for name in recordedNames() {
            guard var record = try? loadRecord(StoredRecord.self, name: name),
                  record.pid == nil, record.process == nil, record.adopted == nil else { continue }
            let layout = layout(name)
            guard let pid = Instance.readPIDFile(layout.pidFile), let identity = ProcessIdentity.current(pid: pid),
                  StoredRecord.isQEMU(identity.executable),
                  Posix.ownerAndMode("/proc/\(pid)")?.uid == Posix.effectiveUID,
                  let argv = Posix.commandLineBytes(of: pid),
                  Posix.mentionsAnyOf([record.launch.uuid], commandLine: argv),
                  let peer = Self.listenerOfStartingQEMU(identity, socket: layout.socketPath),
                  identity.disproof(peerPID: peer.pid, peerUID: peer.uid) == nil else { continue }
            let args = argv.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            record.pid = pid
            record.process = identity
            if let i = args.firstIndex(of: "-accel"), i + 1 < args.count {
                record.accelerator = String(args[i + 1].split(separator: ",").first ?? "")
                record.acceleratorReasons = ["recorded from QEMU's command line: the launch that started it was interrupted before recording it"]
            }
            record.startedAt = Self.startTime(ticks: identity.startTime)
            guard (try? saveRecord(record, name: name)) != nil else { continue }
            journal(name, "completed the record of an interrupted launch: pid \(pid)")
            completed.append((name, pid))
        }
        return completed
    }

    /// The listener of `socket` (``ProcessIdentity/listener(of:)``), waited for up to 10 s while
    /// `qemu` is alive as identified: a QEMU spawned moments ago binds and listens a little
    /// after it started.
    private static func listenerOfStartingQEMU(_ qemu: ProcessIdentity, socket: String) -> (pid: Int32, uid: UInt32)? {
        let clock = ContinuousClock()
        let end = clock.now + .seconds(10)
        while true {
            if let peer = ProcessIdentity.listener(of: socket) { return peer }
            guard clock.now < end, qemu.disproofOfLiveProcess() == nil else { return nil }
            usleep(20_000)
        }
    }

    /// When a process that started `ticks` clock ticks after boot started, in seconds since the
    /// Unix epoch (`btime` of `/proc/stat` plus the ticks); `nil` when the boot time cannot be read.
    static func startTime(ticks: UInt64) -> Double? {
        guard let bytes = Posix.readFile("/proc/stat", limit: 1 << 20) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("btime ") {
            guard let boot = Double(Posix.trimmed(String(line.dropFirst(6)))), hz > 0 else { return nil }
            return boot + Double(ticks) / hz
        }
        return nil
    }
}
