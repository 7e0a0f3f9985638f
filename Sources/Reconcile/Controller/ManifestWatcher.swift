package import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl
import Synchronization

/// Watches the manifest paths given to `qemuctl controller` with inotify and reports when a
/// manifest file may have been created, changed, renamed or removed.
///
/// A directory is watched with every directory below it (new ones are picked up as they appear);
/// a file is watched through its directory, so editors that save by renaming a new file over the
/// old one are seen. Only names that the loader reads (`*.yaml`, `*.yml`, the files given by
/// name) and directories count. The inotify descriptor is read by a dispatch source: nothing polls.
package final class ManifestWatcher: Sendable {
    private struct State {
        var fd: Int32 = -1
        /// Watched directory by watch descriptor.
        var directories: [Int32: String] = [:]
        var source: SourceBox?
    }
    /// The dispatch source, which is not Sendable: only created, resumed and cancelled, under ``state``'s lock.
    private final class SourceBox: @unchecked Sendable {
        let source: any DispatchSourceRead
        init(_ source: any DispatchSourceRead) { self.source = source }
    }
    private let state = Mutex(State())
    /// The paths as given (files and directories, absolute).
    package let paths: [String]

    /// Watches `paths` (manifest files and directories).
    ///
    /// - Throws: ``StateError`` when inotify cannot be set up (the error names the call and errno).
    package init(paths: [String]) throws(StateError) {
        self.paths = paths.map { p in p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p }
        let fd = inotify_init1(Int32(O_NONBLOCK | O_CLOEXEC))
        guard fd >= 0 else { throw StateError(message: "inotify_init1: \(Posix.errorText(errno))") }
        state.withLock { $0.fd = fd }
        rewatch()
    }

    /// Whether a name seen in a watched directory may be a manifest the loader reads.
    package static func isManifestName(_ name: String, directoryEvent: Bool, given: Set<String>) -> Bool {
        directoryEvent || name.hasSuffix(".yaml") || name.hasSuffix(".yml") || given.contains(name)
    }

    /// A path's directory and last component (`/a/b.yaml` → `/a`, `b.yaml`).
    package static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    /// Starts calling `onChange` (on `queue`) with the paths that changed, one call per batch read.
    package func start(queue: DispatchQueue, onChange: @escaping @Sendable ([String]) -> Void) {
        let fd = state.withLock { $0.fd }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [self] in
            let changed = drain()
            if !changed.isEmpty {
                rewatch()
                onChange(changed)
            }
        }
        let box = SourceBox(source)
        state.withLock { $0.source = box }
        box.source.resume()
    }

    /// Stops watching and closes the inotify descriptor.
    package func stop() {
        let (fd, source) = state.withLock { s in
            defer { s.fd = -1; s.source = nil }
            return (s.fd, s.source)
        }
        if let source {
            source.source.setCancelHandler { if fd >= 0 { close(fd) } }
            source.source.cancel()
        } else if fd >= 0 {
            close(fd)
        }
    }

    /// Adds a watch on every directory to watch (the given directories and those below them, the
    /// directories of given files); adding an existing watch again is harmless.
    package func rewatch() {
        var directories: [String] = []
        for p in paths {
            if Posix.isDirectory(p) {
                // Breadth first, symbolic links not followed, at most 4096 directories.
                var queue = [p]
                while let d = queue.popLast(), directories.count < 4096 {
                    directories.append(d)
                    for entry in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] {
                        let full = d + "/" + entry
                        if Posix.isDirectory(full) && !Posix.isSymbolicLink(full) { queue.append(full) }
                    }
                }
            } else {
                let parent = Self.split(p).directory
                if Posix.isDirectory(parent) { directories.append(parent) }
            }
        }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
            | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
        state.withLock { s in
            guard s.fd >= 0 else { return }
            for d in Set(directories) {
                let wd = inotify_add_watch(s.fd, d, mask)
                if wd >= 0 { s.directories[wd] = d }
            }
        }
    }

    /// Reads every pending event; returns the relevant paths (a directory's own path when the
    /// directory itself went away, or the queue overflowed).
    private func drain() -> [String] {
        let given = Set(paths.filter { !Posix.isDirectory($0) }.map { Self.split($0).name })
        var out: [String] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let fd = state.withLock { $0.fd }
            guard fd >= 0 else { return out }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return out }
            var offset = 0
            // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
            while offset + 16 <= n {
                let (wd, mask, len) = buffer.withUnsafeBytes { raw in
                    (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + len)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                offset += 16 + len
                let directory = state.withLock { s -> String? in
                    if mask & UInt32(IN_IGNORED) != 0 { s.directories[wd] = nil; return nil }
                    return s.directories[wd]
                }
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { out.append(paths.first ?? "/"); continue }
                guard let directory else { continue }
                if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF) != 0 { out.append(directory); continue }
                if Self.isManifestName(name, directoryEvent: mask & UInt32(IN_ISDIR) != 0, given: given) {
                    out.append(directory + "/" + name)
                }
            }
        }
    }
}
