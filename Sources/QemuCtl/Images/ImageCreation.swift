#if canImport(Glibc)
import Glibc
#endif
import QMP

/// Creates disk images so that no step opens the final path by name: a user who can write the
/// image's directory cannot swap a link in between and make qemu-img (run as root) write
/// through it.
///
/// 1. The image's directory is opened once (missing parents are created 0700) and checked: it
///    must be owned by root or the effective user, and not writable by group or others unless its
///    sticky bit is set (as `/tmp`), in which case what stands at the final name must be this
///    user's own; its parents must be root's or this user's and not writable by others unless
///    sticky (``Posix/checkParents(_:)``), so nobody else can swap the directory afterwards.
/// 2. qemu-img creates the image inside a private directory (0700, unpredictable name, made
///    beside the final path so it is on the same file system), reached as
///    `/proc/PID/fd/N/NAME` through this process's descriptor of that directory: no path
///    component another user can change is resolved.
/// 3. The file is checked (this user's regular file), set to 0600 and synced, then linked to the
///    final name with `linkat`, which never replaces and never follows anything there: the image
///    appears whole, or not at all.
///
/// An image made from a base (``Base``) starts by opening the base once, read-only; qemu-img reads it
/// only through that descriptor (`/proc/PID/fd/N`, itself opened read-only), so what was checked is
/// what is read and the base is never written. The base must be self-contained
/// (``HostFileCheck/baseProblem(path:format:)``) and in a place only root and this user can change
/// (``placeProblem(_:fileUID:)``), since QEMU opens it by path at every launch. Many images may share one base.
/// - overlay: `qemu-img create -f qcow2 -u -b BASE -F FORMAT` — the header names the base by the
///   real path of the file opened (links resolved) with its format recorded; `-u` keeps qemu-img
///   from opening the base by name at all (the size is known already);
/// - copy: `qemu-img convert -f FORMAT -O FORMAT`, then `qemu-img resize` when `size` is larger.
package enum ImageCreation {
    /// The image a new one is made from (`create.from`).
    package struct Base: Sendable, Equatable {
        /// How the new image is made from the base.
        package enum Mode: String, Sendable {
            /// A qcow2 image backed by the base.
            case overlay
            /// An independent copy in the new image's format.
            case copy
        }
        /// The base image (absolute path).
        package var path: String
        /// Its format (`qcow2`, `raw`…), explicit.
        package var format: DiskFormat
        /// Overlay or copy.
        package var mode: Mode

        /// Creates a base reference.
        package init(path: String, format: DiskFormat, mode: Mode) {
            self.path = path
            self.format = format
            self.mode = mode
        }
    }

    /// A refusal or failure, naming the path and why.
    package struct Failure: Error, Sendable, CustomStringConvertible {
        /// What happened and what to do.
        package var message: String
        /// The message.
        package var description: String { message }
    }

    /// The qemu-img beside the QEMU that would run, else `/usr/bin/qemu-img`.
    package static func qemuImgBinary() -> String {
        if let qemu = try? QEMUDiscovery.findBinary(arch: .amd64), let slash = qemu.lastIndex(of: "/") {
            let candidate = String(qemu[..<slash]) + "/qemu-img"
            if Posix.isExecutableFile(candidate) { return candidate }
        }
        return "/usr/bin/qemu-img"
    }

    /// Creates the image `path` of `format` (`qcow2`, `raw`…) and `size` bytes unless something is
    /// already there: blank, or from `base`. qemu-img runs with a minimal environment and `-f` explicit.
    ///
    /// - Parameters:
    ///   - size: the virtual size; with a base, at least the base's virtual size, nil for the base's.
    ///   - base: the base image to make an overlay on or a copy of; nil for a blank image.
    /// - Returns: `true` when it created the image, `false` when a usable file was already there.
    /// - Throws: ``Failure`` when the directory or what stands at `path` is refused, the base is refused
    ///   (missing, not a regular file for an overlay, naming a backing file of its own, smaller than
    ///   `size` allows…), or creation failed (nothing is left behind then).
    package static func createIfMissing(path: String, format: String, size: UInt64?, from base: Base? = nil,
                                        qemuImg: String? = nil) async throws(Failure) -> Bool {
        guard path.hasPrefix("/"), let slash = path.lastIndex(of: "/") else { throw Failure(message: "\(path) is not an absolute path") }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        guard !name.isEmpty, name != ".", name != ".." else { throw Failure(message: "\(path) does not name a file") }
        if let e = Posix.makeMissingDirectories(dir) { throw Failure(message: e) }
        let (dirFD, openError) = Posix.openDirectory(dir)
        guard dirFD >= 0 else { throw Failure(message: openError ?? "cannot open \(dir)") }
        defer { Posix.closeFD(dirFD) }
        // Its parents too: one another user could rename could swap the whole directory later.
        if case .refused(let why) = Posix.checkParents(dir) { throw Failure(message: "refusing the disk directory \(dir): \(why)") }
        let shared = try checkDirectory(dirFD, dir)
        if Posix.entryExists(at: dirFD, name) {
            // Someone else's file or link in a directory others can write is never used.
            if shared, let problem = Posix.entryProblem(at: dirFD, name, parent: dir) {
                throw Failure(message: "\(problem); \(dir) is writable by other users, so only an image of your own there is used")
            }
            if Posix.entryIsSymbolicLink(at: dirFD, name) && !Posix.fileExists(path) {
                throw Failure(message: "\(path) is a symbolic link to a missing file; refusing to create an image through it (remove the link or point it at an image)")
            }
            return false
        }
        let binary = qemuImg ?? qemuImgBinary()
        var opened: OpenedBase? = nil
        if let base {
            if base.path == path { throw Failure(message: "the base image of \(path) is the image itself") }
            opened = try await OpenedBase(base, binary: binary)
        } else if size == nil {
            throw Failure(message: "\(path): a blank image needs a size")
        }
        defer { if let opened { Posix.closeFD(opened.fd) } }
        if let opened, let size, size < opened.virtualSize {
            throw Failure(message: "\(path) cannot be \(size) bytes: its base \(opened.base.path) is \(opened.virtualSize) bytes "
                          + "(create.size may grow an image made from a base, never shrink it)")
        }
        removeStaleWorkDirectories(dirFD, dir)
        let work = Posix.temporaryName(for: name)
        let (workFD, workError) = Posix.openPrivateDirectory(at: dirFD, work, parent: dir, create: true)
        guard workFD >= 0 else { throw Failure(message: workError ?? "cannot create \(dir)/\(work)") }
        defer {
            Posix.closeFD(workFD)
            _ = Posix.removeTree(at: dirFD, work, parent: dir)
        }
        let viaDescriptor = "/proc/\(Posix.currentPID)/fd/\(workFD)/\(name)"
        var steps: [[String]] = []
        switch opened {
        case nil:
            steps = [["create", "-q", "-f", format, viaDescriptor, String(size ?? 0)]]
        case let b? where b.base.mode == .overlay:
            // The header names the base by the real path of the file opened and checked (links resolved), with
            // its format: a link in the declared path re-pointed later (a rebuilt `current`) then makes the
            // declaration differ from the header, and the overlay is refused instead of read over another base.
            steps = [["create", "-q", "-f", format, "-u", "-b", b.realPath, "-F", b.base.format.rawValue,
                      viaDescriptor, String(size ?? b.virtualSize)]]
        case let b?:
            steps = [["convert", "-q", "-U", "-f", b.base.format.rawValue, "-O", format, b.viaDescriptor, viaDescriptor]]
            if let size, size > b.virtualSize { steps.append(["resize", "-q", "-f", format, viaDescriptor, String(size)]) }
        }
        for arguments in steps {
            let result = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
                Posix.run(binary, arguments, environment: environment)
            }
            if let spawnError = result.spawnError { throw Failure(message: "cannot run qemu-img: \(spawnError)") }
            if result.status != 0 {
                var why = result.stderr.replacing(viaDescriptor, with: path)
                if let opened { why = why.replacing(opened.viaDescriptor, with: opened.base.path) }
                throw Failure(message: "qemu-img could not create \(path): \(Posix.trimmed(why))")
            }
        }
        if let e = Posix.sealNewFile(at: workFD, name, parent: dir + "/" + work, mode: 0o600) { throw Failure(message: e) }
        if let e = Posix.linkNoReplace(from: workFD, name, to: dirFD, name, path: path) { throw Failure(message: e) }
        return true
    }

    /// The environment qemu-img runs with.
    private static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    /// A base image opened read-only and checked: qemu-img reads it through ``viaDescriptor`` only.
    private struct OpenedBase {
        let base: Base
        let fd: CInt
        let viaDescriptor: String
        let virtualSize: UInt64
        /// Where the opened file is, links resolved (`/proc/self/fd/N`'s target).
        let realPath: String

        init(_ base: Base, binary: String) async throws(Failure) {
            let fd = open(base.path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else { throw Failure(message: "cannot open the base image \(base.path): \(Posix.errorText(Posix.errnoValue))") }
            var closeOnThrow = true
            defer { if closeOnThrow { Posix.closeFD(fd) } }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw Failure(message: "fstat(\(base.path)) failed: \(Posix.errorText(Posix.errnoValue))") }
            let type = st.st_mode & S_IFMT
            if base.mode == .overlay, type != S_IFREG {
                throw Failure(message: "the base image \(base.path) is not a regular file; an overlay's base must be an image file "
                              + "(use create.mode: copy to copy a device)")
            }
            if type != S_IFREG && type != S_IFBLK {
                throw Failure(message: "the base image \(base.path) is neither an image file nor a block device")
            }
            let via = "/proc/\(Posix.currentPID)/fd/\(fd)"
            // The base is read as what it is declared to be, and must be self-contained: no backing file, data file
            // or extent it names is ever followed.
            if let problem = HostFileCheck.baseProblem(path: via, format: base.format) {
                throw Failure(message: "refusing the base image \(base.path): "
                              + problem.replacing(via, with: base.path))
            }
            let info = await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
                Posix.run(binary, ["info", "-U", "-f", base.format.rawValue, "--output=json", via],
                          environment: ImageCreation.environment, collectOutput: true)
            }
            if let spawnError = info.spawnError { throw Failure(message: "cannot run qemu-img: \(spawnError)") }
            guard info.status == 0 else {
                throw Failure(message: "qemu-img cannot read the base image \(base.path) as \(base.format.rawValue): "
                              + Posix.trimmed(info.stderr.replacing(via, with: base.path)))
            }
            guard let json = try? JSONValue(parsing: info.stdout), let vsize = json["virtual-size"]?.intValue, vsize > 0 else {
                throw Failure(message: "qemu-img info gave no virtual size for the base image \(base.path)")
            }
            guard let real = Posix.realPath(via), real.hasPrefix("/") else {
                throw Failure(message: "cannot tell where the base image \(base.path) is (its directory was removed?)")
            }
            // QEMU opens the base by its path at every launch: nobody but root and this user may be able to put
            // another file there, where it is named and where it really is.
            for path in Set([base.path, real]) {
                if let why = ImageCreation.placeProblem(path, fileUID: st.st_uid) {
                    throw Failure(message: "refusing the base image \(base.path): \(why)")
                }
            }
            self.realPath = real
            self.base = base
            self.fd = fd
            self.viaDescriptor = via
            self.virtualSize = UInt64(vsize)
            closeOnThrow = false
        }
    }

    /// Why another user could replace the file at `path` (owned by `fileUID`): its directory or a parent is
    /// theirs, or writable by them (a sticky directory, as `/tmp`, only when the file is root's or this user's);
    /// `nil` when nobody else can.
    static func placeProblem(_ path: String, fileUID: UInt32) -> String? {
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        if case .refused(let why) = Posix.checkParents(dir) { return why }
        var ds = stat()
        guard stat(dir, &ds) == 0 else { return "stat(\(dir)) failed: \(Posix.errorText(Posix.errnoValue))" }
        let me = Posix.effectiveUID
        if ds.st_uid != me && ds.st_uid != 0 {
            return "its directory \(dir) is owned by \(Posix.describeOwner(ds.st_uid)), who could replace it with any file; "
                + "keep bases in a directory of root's or your own"
        }
        guard ds.st_mode & 0o022 != 0 else { return nil }
        if ds.st_mode & mode_t(S_ISVTX) == 0 {
            return "its directory \(dir) is writable by group or others without the sticky bit, so they could replace it "
                + "(fix: chmod go-w \(dir))"
        }
        if fileUID != me && fileUID != 0 {
            return "it is owned by \(Posix.describeOwner(fileUID)) in \(dir), which others can write: only a base of root's "
                + "or your own is used there"
        }
        return nil
    }

    /// Checks the image directory `dir` (open as `dirFD`). Returns whether users other than this
    /// one can write it (allowed only with the sticky bit); throws when it is refused.
    private static func checkDirectory(_ dirFD: CInt, _ dir: String) throws(Failure) -> Bool {
        guard let (uid, mode) = Posix.ownerAndMode(fd: dirFD) else { throw Failure(message: "fstat(\(dir)) failed: \(Posix.errorText(Posix.errnoValue))") }
        let me = Posix.effectiveUID
        if uid != me && uid != 0 {
            throw Failure(message: "the disk directory \(dir) is owned by \(Posix.describeOwner(uid)), who could replace the image with a link to any file; refusing to create or use an image there (use a directory of your own)")
        }
        guard mode & 0o022 != 0 else { return false }
        if mode & 0o1000 == 0 {
            throw Failure(message: "the disk directory \(dir) is writable by group or others without the sticky bit (mode \(String(mode, radix: 8))), so they could replace the image with a link to any file; refusing it (fix: chmod go-w \(dir), or chmod +t \(dir))")
        }
        return true
    }

    /// Removes work directories an earlier creation left when its process died (its pid no longer runs).
    private static func removeStaleWorkDirectories(_ dirFD: CInt, _ dir: String) {
        for entry in Posix.entryNames(at: dirFD) {
            guard let pid = Posix.temporaryNamePID(entry), pid != Posix.currentPID, !Posix.processExists(pid),
                  Posix.entryKind(at: dirFD, entry) == "a directory", Posix.entryProblem(at: dirFD, entry, parent: dir) == nil else { continue }
            _ = Posix.removeTree(at: dirFD, entry, parent: dir)
        }
    }
}
