#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import QemuCtl
package import Manifest

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
/// Trust: the directory must be this user's and not writable by group or others, and its
/// parents root's or this user's (see ``prepare()``); every file below it is opened relative to
/// a directory descriptor without following links and must be this user's (see
/// ``Posix/openFile(at:_:parent:flags:mode:)``); read commands create nothing (``checkReadable()``).
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

    /// Creates the directory 0700 when missing (whatever the umask), then checks it as
    /// ``Posix/checkTrustedDirectory(_:)`` does: owned by the effective user, not writable by
    /// group or others, every parent owned by root or this user and not writable by others
    /// unless sticky. One of ours that is looser than 0700 is tightened through its descriptor.
    ///
    /// - Throws: ``StateError`` naming the path, its owner and mode and the fix, or the failed call.
    package func prepare() throws(StateError) {
        let fd = try openDirectory(create: true)!
        Posix.closeFD(fd)
    }

    /// Checks the directory without creating anything, for commands that only read.
    ///
    /// - Returns: whether it exists (a missing directory holds no VMs).
    /// - Throws: ``StateError`` when it is refused (see ``prepare()``) or cannot be examined
    ///   (`/etc/passwd/x`: the failed call, the path and why).
    @discardableResult
    package func checkReadable() throws(StateError) -> Bool {
        guard let fd = try openDirectory(create: false) else { return false }
        Posix.closeFD(fd)
        return true
    }

    /// Opens the checked state directory; `nil` when it is missing and `create` is false.
    package func openDirectory(create: Bool) throws(StateError) -> CInt? {
        if directory == RuntimeLayout.noHomeDirectory { throw StateError(message: RuntimeLayout.noHomeMessage) }
        switch Posix.checkTrustedDirectory(directory) {
        case .trusted:
            break
        case .missing:
            guard create else { return nil }
            if let e = Posix.makePrivateDirectory(directory) { throw StateError(message: e) }
            switch Posix.checkTrustedDirectory(directory) {
            case .trusted: break
            case .missing(let p): throw StateError(message: "stat(\(p)) failed: \(Posix.errorText(ENOENT)) (removed while qemuctl created it)")
            case .refused(let why): throw StateError(message: "refusing state directory \(directory): \(why)")
            }
        case .refused(let why):
            throw StateError(message: "refusing state directory \(directory): \(why)")
        }
        let (fd, error) = Posix.openDirectory(directory)
        guard fd >= 0 else { throw StateError(message: error ?? "cannot open \(directory)") }
        if create, let (uid, mode) = Posix.ownerAndMode(fd: fd), uid == Posix.effectiveUID, mode & 0o077 != 0 {
            Posix.makePrivate(fd: fd)
        }
        return fd
    }

    /// Opens VM `name`'s directory (checked, never through a link), creating it when `create`.
    /// Returns the state directory's descriptor and the VM directory's, or `nil` when either is
    /// missing (and not created). The caller closes both.
    package func openVMDirectory(_ name: String, create: Bool) throws(StateError) -> (state: CInt, vm: CInt)? {
        guard Self.isPlainName(name) else { throw StateError(message: "invalid VM name \"\(name)\"") }
        guard let state = try openDirectory(create: create) else { return nil }
        let (vm, error) = Posix.openPrivateDirectory(at: state, name, parent: directory, create: create)
        guard vm >= 0 else {
            Posix.closeFD(state)
            if let error { throw StateError(message: error) }
            return nil
        }
        return (state, vm)
    }

    /// Whether `name` can name an entry of the state directory (no `/`, not `.` or `..`, not empty).
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0)
    }

    /// Whether `path` lies in the state directory (spelled through it, or resolving into it through
    /// links): such a file (a record, the secret-marker key, a socket) is never a VM's disk.
    package func contains(_ path: String) -> Bool {
        func within(_ p: String, _ dir: String) -> Bool { p == dir || p.hasPrefix(dir == "/" ? "/" : dir + "/") }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let dir = Posix.lexicallyNormalized(directory)
        if within(Posix.lexicallyNormalized(absolute), dir) { return true }
        guard let realDir = Posix.realPath(directory) else { return false }
        var probe = Posix.lexicallyNormalized(absolute)
        // The deepest part of the path that exists, resolved.
        while probe != "/" {
            if let real = Posix.realPath(probe) { return within(real, realDir) }
            probe = String(probe[..<(probe.lastIndex(of: "/") ?? probe.startIndex)])
            if probe.isEmpty { probe = "/" }
        }
        return false
    }

    /// Why a file QEMU would write for `spec` may not be used: a disk image, the EFI variable
    /// store or the memory backing file that lies in the state directory (``contains(_:)``).
    package func diskPathProblems(_ spec: VirtualMachineSpec) -> [MappingError.Problem] {
        var files: [(field: String, path: String, what: String)] = spec.disks.compactMap { disk in
            guard case .file(let path, _) = disk.backend else { return nil }
            return ("spec.disks[\(disk.name)].file.path", path, "a disk")
        }
        if let vars = spec.firmware.vars { files.append(("spec.firmware.vars", vars, "an EFI variable store")) }
        if let memory = spec.memory.path { files.append(("spec.memory.path", memory, "a memory backing file")) }
        return files.filter { contains($0.path) }.map { f in
            MappingError.Problem(field: f.field,
                message: "\(f.path) is inside the state directory \(directory), whose files belong to qemuctl; refusing it as \(f.what) (keep it elsewhere)")
        }
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

    /// Names of the VMs that have a runtime directory with a launch record, sorted; a link or a
    /// directory that is not this user's where a VM directory would be is listed too, so that
    /// reading its record reports the refusal. Empty when the directory is missing or refused
    /// (``checkReadable()`` says why).
    package func recordedNames() -> [String] {
        guard let state = try? openDirectory(create: false) else { return [] }
        defer { Posix.closeFD(state) }
        return Posix.entryNames(at: state).filter { name in
            guard !name.hasPrefix("."), !name.hasSuffix(".sock"), StringFormat.name.accepts(name) else { return false }
            if Posix.entryIsSymbolicLink(at: state, name) { return true }
            let (vm, error) = Posix.openPrivateDirectory(at: state, name, parent: directory, create: false)
            if vm < 0 { return error != nil && Posix.entryKind(at: state, name) == "a directory" }
            defer { Posix.closeFD(vm) }
            return Posix.entryExists(at: vm, "record.json")
        }.sorted()
    }

    /// Reads the record of `name`: `nil` when there is none.
    ///
    /// The VM directory and the file are opened without following links and must be this
    /// user's (see ``Posix/openFile(at:_:parent:flags:mode:)``).
    ///
    /// - Throws: ``StateError`` naming the file when it exists but cannot be read or
    ///   decoded (empty, truncated, garbage) or is refused; ``Observer`` says what follows from it.
    package func loadRecord<Record: Decodable>(_ type: Record.Type, name: String) throws(StateError) -> Record? {
        let path = recordPath(name)
        guard let (state, vm) = try openVMDirectory(name, create: false) else { return nil }
        defer { Posix.closeFD(vm); Posix.closeFD(state) }
        let (read, error) = Posix.readFile(at: vm, "record.json", parent: layout(name).runtimeDirectory, limit: 16 << 20)
        if let error { throw StateError(message: error) }
        guard let bytes = read else { return nil }
        do {
            return try JSONDecoder().decode(Record.self, from: Data(bytes))
        } catch {
            throw StateError(message: "\(path) is unreadable (\(bytes.isEmpty ? "empty" : "truncated or not a valid record"))")
        }
    }

    /// Writes the record of `name` atomically (0600 in the VM's 0700 directory, created when
    /// missing). A record.json that is a link or not this user's regular file is refused.
    package func saveRecord<Record: Encodable>(_ record: Record, name: String) throws(StateError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data: Data
        do { data = try encoder.encode(record) } catch { throw StateError(message: "cannot encode the record of \(name): \(error)") }
        guard let (state, vm) = try openVMDirectory(name, create: true) else { throw StateError(message: "cannot create \(layout(name).runtimeDirectory)") }
        defer { Posix.closeFD(vm); Posix.closeFD(state) }
        let dir = layout(name).runtimeDirectory
        if let e = Posix.entryProblem(at: vm, "record.json", parent: dir, type: S_IFREG) { throw StateError(message: e) }
        if let e = Posix.writeFileAtomically(at: vm, "record.json", parent: dir, Array(data), mode: 0o600, faultPoint: .midStateWrite) {
            throw StateError(message: e)
        }
    }

    /// Reads the state directory's own file `name` (`.marker-key`, `.accelerator-cache.json`),
    /// never through a link; `nil` when it or the directory is missing.
    package func readOwnFile(_ name: String, limit: Int) throws(StateError) -> [UInt8]? {
        guard let state = try openDirectory(create: false) else { return nil }
        defer { Posix.closeFD(state) }
        let (bytes, error) = Posix.readFile(at: state, name, parent: directory, limit: limit)
        if let error { throw StateError(message: error) }
        return bytes
    }

    /// Writes the state directory's own file `name` atomically (0600), creating the directory.
    package func writeOwnFile(_ name: String, _ bytes: [UInt8]) throws(StateError) {
        guard let state = try openDirectory(create: true) else { return }
        defer { Posix.closeFD(state) }
        if let e = Posix.entryProblem(at: state, name, parent: directory, type: S_IFREG) { throw StateError(message: e) }
        if let e = Posix.writeFileAtomically(at: state, name, parent: directory, bytes, mode: 0o600) { throw StateError(message: e) }
    }

    /// Appends one line (`ISO-8601-STAMP TEXT`, the stamp with milliseconds) to the journal of `name`, unsynced
    /// (see ``Posix/appendLine(_:_:)``). Failures to journal do not stop the apply:
    /// the record is the source of truth.
    package func journal(_ name: String, _ line: String) {
        // Only into an existing runtime directory: a deleted VM's is not recreated.
        guard let (state, vm) = try? openVMDirectory(name, create: false) else { return }
        defer { Posix.closeFD(vm); Posix.closeFD(state) }
        // Milliseconds, as QEMU's event timestamps: `events --since-start` interleaves both.
        let stamp = Posix.utcTimestampMilliseconds()
        Posix.appendLine(at: vm, "journal.log", parent: layout(name).runtimeDirectory, "\(stamp) \(line)")
    }

    /// Removes the temporary files that a qemuctl killed between writing and renaming a
    /// state file left behind (the old file is intact beside them): only names qemuctl makes
    /// (``Posix/temporaryName(for:)``), in the state directory and the VM directories that are
    /// this user's real directories, never through a link. Only the lock holder writes state
    /// files, so it is the one to sweep. Returns the removed paths.
    @discardableResult
    package func removeStaleTemporaries() -> [String] {
        guard let state = try? openDirectory(create: false) else { return [] }
        defer { Posix.closeFD(state) }
        var removed = Posix.removeStaleTemporaries(at: state, parent: directory)
        for entry in Posix.entryNames(at: state) where !entry.hasPrefix(".") {
            guard Posix.entryKind(at: state, entry) == "a directory" else { continue }
            let (vm, _) = Posix.openPrivateDirectory(at: state, entry, parent: directory, create: false)
            guard vm >= 0 else { continue }
            removed += Posix.removeStaleTemporaries(at: vm, parent: directory + "/" + entry)
            Posix.closeFD(vm)
        }
        return removed
    }

    /// Removes the VM's runtime files (record, journal, pid file, logs, socket), never
    /// following a link. Disk images live elsewhere and are never touched.
    package func removeRuntimeFiles(_ name: String) {
        guard Self.isPlainName(name), let state = try? openDirectory(create: false) else { return }
        defer { Posix.closeFD(state) }
        _ = Posix.removeTree(at: state, name, parent: directory)
        Posix.unlinkEntry(at: state, name + ".sock")
    }

    /// Before a relaunch of a VM taken over with `import --adopt`: removes `NAME.sock` when it is
    /// the symbolic link adoption made (the record says adopted, and the link points at the
    /// recorded socket), so the relaunch binds a socket of its own. Any other link stays, and the
    /// launch refuses it.
    package func removeAdoptedSocketLink(_ name: String) {
        guard let stored = try? loadRecord(StoredRecord.self, name: name), let adopted = stored.adopted,
              let state = try? openDirectory(create: false) else { return }
        defer { Posix.closeFD(state) }
        if Posix.linkTarget(at: state, name + ".sock") == adopted.socketPath {
            Posix.unlinkEntry(at: state, name + ".sock")
        }
    }

    /// Runs `body` holding the state directory's apply lock (a `flock` that the
    /// kernel drops when this process dies, even by SIGKILL). What a holder killed before
    /// left is tidied first: stale temporary files (``removeStaleTemporaries()``) and records
    /// of launches interrupted before QEMU's pid was recorded (``completeInterruptedLaunches()``).
    ///
    /// - Parameters:
    ///   - wait: How long to wait for another holder; zero fails at once.
    ///   - onWait: Called once, with the holder's pid when known, when the lock is busy and this call waits.
    /// - Throws: ``StateError`` naming the holder when the lock stays busy.
    package func withApplyLock<R>(wait: Duration, onWait: (Int32?) -> Void, _ body: () async throws -> R) async throws -> R {
        guard let state = try openDirectory(create: true) else { throw StateError(message: "cannot create \(directory)") }
        defer { Posix.closeFD(state) }
        let path = directory + "/.apply.lock"
        let (fd0, openError) = Posix.openFile(at: state, ".apply.lock", parent: directory, flags: O_RDWR | O_CREAT, mode: 0o600)
        guard fd0 >= 0 else { throw StateError(message: openError ?? "cannot open \(path)") }
        func holder() -> String { Posix.lockHolder(fd: fd0).map { " (pid \($0))" } ?? "" }
        func tryLock() throws(StateError) -> CInt {
            switch Posix.tryLock(fd: fd0) {
            case .locked: return fd0
            case .busy: return -1
            case .failed(let e): throw StateError(message: "flock(\(path)) failed: \(e)")
            }
        }
        var fd: CInt
        do { fd = try tryLock() } catch { Posix.closeFD(fd0); throw error }
        if fd < 0 {
            if wait <= .zero {
                let who = holder()
                Posix.closeFD(fd0)
                throw StateError(message: "another qemuctl\(who) holds the lock on \(directory) (\(path)); retry later or pass --lock-wait SECONDS", isLockBusy: true)
            }
            onWait(Posix.lockHolder(fd: fd0))
            let clock = ContinuousClock()
            let end = clock.now + wait
            while fd < 0 {
                if clock.now >= end {
                    let who = holder()
                    Posix.closeFD(fd0)
                    throw StateError(message: "gave up waiting \(wait) for the lock on \(directory): another qemuctl\(who) still holds \(path)", isLockBusy: true)
                }
                do { try await Task.sleep(for: .milliseconds(50)) } catch { Posix.closeFD(fd0); throw error }
                do { fd = try tryLock() } catch { Posix.closeFD(fd0); throw error }
            }
        }
        defer { Posix.closeFD(fd) }
        Posix.writeLockHolder(fd)
        removeStaleTemporaries()
        completeInterruptedLaunches()
        FaultPoint.hit(.afterLock)
        return try await body()
    }
}

/// A problem with the state directory or one of its files.
package struct StateError: Error, Sendable, CustomStringConvertible {
    /// What happened and what to do.
    package var message: String
    /// Whether another qemuctl holds the state directory's lock (the only case where retrying helps).
    package var isLockBusy: Bool
    /// Creates an error.
    package init(message: String, isLockBusy: Bool = false) {
        self.message = message
        self.isLockBusy = isLockBusy
    }
    /// The message.
    package var description: String { message }
}
