#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import QemuCtl
import Manifest

/// The state directory: where each managed VM's socket and private files live.
///
/// Layout (the socket directory of the QemuCtl library, so VMs it started can be
/// attached by name):
/// ```
/// DIR/                  0700
/// DIR/.apply.lock       serialises apply/delete across processes (flock, dies with its holder;
///                       holds the holder's pid so a busy lock can be reported by whom)
/// DIR/NAME.sock         the VM's QMP socket
/// DIR/NAME/             0700: record.json, journal.log, qemu.pid, lock, serial.log
/// ```
/// Every file is written atomically (temporary file, fsync, rename, directory fsync):
/// a crash or a full disk at any moment leaves the old file or the new one. Journals
/// are appended, not synced, and tolerate a torn last line.
///
/// An unreadable record (empty, truncated, garbage) is reported with its path and is
/// never a crash: a VM whose QEMU is gone is launched again (the file is replaced); a
/// VM whose QEMU still answers is left running and untouched, with a recovery hint
/// (see ``Observer``), and never launched a second time.
package struct StateStore: Sendable {
    /// The directory.
    package let directory: String

    /// `$QEMUCTL_STATE_DIR`, else the library's default socket directory
    /// (`/var/run/qemu` as root, the user cache directory otherwise).
    package static func defaultDirectory(environment: [String: String]? = nil) -> String {
        // One variable: getenv, not a dictionary of the whole environment.
        if let d = environment.map({ $0["QEMUCTL_STATE_DIR"] }) ?? Posix.environmentValue("QEMUCTL_STATE_DIR"), !d.isEmpty { return d }
        return RuntimeLayout.defaultSocketDirectory
    }

    /// A store at `directory` (nothing is created until ``prepare()``).
    package init(directory: String) {
        var d = directory
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        if !d.hasPrefix("/") { d = FileManager.default.currentDirectoryPath + "/" + d }
        self.directory = d
    }

    /// Creates the directory 0700 (whatever the umask).
    package func prepare() throws(StateError) {
        if let e = Posix.makePrivateDirectory(directory) { throw StateError(message: e) }
    }

    /// The runtime layout of VM `name`.
    package func layout(_ name: String) -> RuntimeLayout { RuntimeLayout(name: name, socketDirectory: directory) }

    /// The launch record file of VM `name`.
    package func recordPath(_ name: String) -> String { layout(name).runtimeDirectory + "/record.json" }

    /// The journal of VM `name`.
    package func journalPath(_ name: String) -> String { layout(name).runtimeDirectory + "/journal.log" }

    /// The pid of VM `name`'s QEMU when it runs: the adopted process for a VM
    /// imported with `--adopt` (same pid and start time), else the pid file's QEMU
    /// (``RuntimeLayout/runningPID()``); `nil` when it does not run.
    package func runningPID(_ name: String) -> Int32? {
        if let stored = try? loadRecord(StoredRecord.self, name: name), let adopted = stored.adopted {
            return adopted.matches(pid: adopted.pid) ? adopted.pid : nil
        }
        return layout(name).runningPID()
    }

    /// Names of the VMs that have a runtime directory with a launch record, sorted.
    package func recordedNames() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { name in
            StringFormat.name.accepts(name) && Posix.fileExists("\(directory)/\(name)/record.json")
        }.sorted()
    }

    /// Reads the record of `name`: `nil` when there is none.
    ///
    /// - Throws: ``StateError`` naming the file when it exists but cannot be read or
    ///   decoded (empty, truncated, garbage); ``Observer`` says what follows from it.
    package func loadRecord<Record: Decodable>(_ type: Record.Type, name: String) throws(StateError) -> Record? {
        let path = recordPath(name)
        guard let bytes = Posix.readFile(path, limit: 16 << 20) else {
            if !Posix.fileExists(path) { return nil }
            throw StateError(message: "cannot read \(path)")
        }
        do {
            return try JSONDecoder().decode(Record.self, from: Data(bytes))
        } catch {
            throw StateError(message: "\(path) is unreadable (\(bytes.isEmpty ? "empty" : "truncated or not a valid record"))")
        }
    }

    /// Writes the record of `name` atomically (0600 in the VM's 0700 directory).
    package func saveRecord<Record: Encodable>(_ record: Record, name: String) throws(StateError) {
        let dir = layout(name).runtimeDirectory
        if let e = Posix.makePrivateDirectory(dir) { throw StateError(message: e) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data: Data
        do { data = try encoder.encode(record) } catch { throw StateError(message: "cannot encode the record of \(name): \(error)") }
        let path = recordPath(name)
        if let e = Posix.writeFileAtomically(path, Array(data), mode: 0o600, faultPoint: .midStateWrite) {
            throw StateError(message: e)
        }
    }

    /// Appends one line (`ISO-8601-STAMP TEXT`) to the journal of `name`, unsynced
    /// (see ``Posix/appendLine(_:_:)``). Failures to journal do not stop the apply:
    /// the record is the source of truth.
    package func journal(_ name: String, _ line: String) {
        // Only into an existing runtime directory: a deleted VM's is not recreated.
        guard Posix.fileExists(layout(name).runtimeDirectory) else { return }
        let stamp = Posix.utcTimestamp()
        Posix.appendLine(journalPath(name), "\(stamp) \(line)")
    }

    /// Removes temporary files that a qemuctl killed between writing and renaming a
    /// state file left behind (the old file is intact beside them). Only the lock
    /// holder writes state files, so it is the one to sweep.
    func removeStaleTemporaries() {
        Posix.removeStaleTemporaries(inDirectory: directory)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !entry.hasPrefix(".") {
            if Posix.isDirectory(directory + "/" + entry) {
                Posix.removeStaleTemporaries(inDirectory: directory + "/" + entry)
            }
        }
    }

    /// Removes the VM's runtime files (record, journal, pid file, logs, socket).
    /// Disk images live elsewhere and are never touched.
    package func removeRuntimeFiles(_ name: String) {
        let l = layout(name)
        try? FileManager.default.removeItem(atPath: l.runtimeDirectory)
        Posix.unlinkFile(l.socketPath)
    }

    /// Runs `body` holding the state directory's apply lock (a `flock` that the
    /// kernel drops when this process dies, even by SIGKILL).
    ///
    /// - Parameters:
    ///   - wait: How long to wait for another holder; zero fails at once.
    ///   - onWait: Called once, with the holder's pid when known, when the lock is busy and this call waits.
    /// - Throws: ``StateError`` naming the holder when the lock stays busy.
    package func withApplyLock<R>(wait: Duration, onWait: (Int32?) -> Void, _ body: () async throws -> R) async throws -> R {
        try prepare()
        let path = directory + "/.apply.lock"
        func holder() -> String { Posix.lockHolder(path).map { " (pid \($0))" } ?? "" }
        var (fd, error) = Posix.lockFile(path, wait: false)
        if let error { throw StateError(message: error) }
        if fd < 0 {
            if wait <= .zero {
                throw StateError(message: "another qemuctl\(holder()) holds the lock on \(directory) (\(path)); retry later or pass --wait SECONDS")
            }
            onWait(Posix.lockHolder(path))
            let clock = ContinuousClock()
            let end = clock.now + wait
            while fd < 0 {
                if clock.now >= end {
                    throw StateError(message: "gave up waiting \(wait) for the lock on \(directory): another qemuctl\(holder()) still holds \(path)")
                }
                try await Task.sleep(for: .milliseconds(50))
                (fd, error) = Posix.lockFile(path, wait: false)
                if let error { throw StateError(message: error) }
            }
        }
        defer { Posix.closeFD(fd) }
        Posix.writeLockHolder(fd)
        removeStaleTemporaries()
        FaultPoint.hit(.afterLock)
        return try await body()
    }
}

/// A problem with the state directory or one of its files.
package struct StateError: Error, Sendable, CustomStringConvertible {
    /// What happened and what to do.
    package var message: String
    /// Creates an error.
    package init(message: String) { self.message = message }
    /// The message.
    package var description: String { message }
}
