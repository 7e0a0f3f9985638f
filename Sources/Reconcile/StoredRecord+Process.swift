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
    package static func isQEMU(_ executable: String) -> Bool {
        let base = executable.split(separator: "/").last.map(String.init) ?? ""
        return base.hasPrefix("qemu-system-") || base.hasPrefix("qemu-kvm")
    }

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
