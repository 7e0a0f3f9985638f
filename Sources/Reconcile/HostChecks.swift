#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
package import Manifest
import QemuCtl

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - HostChecks

/// What `validate` and `plan` catch that would otherwise fail only when QEMU starts: one disk
/// image opened for writing by two VMs (QEMU's image lock refuses the second), and an `arch`
/// whose `qemu-system-*` is not installed. Each problem is a diagnostic at the field
/// (`file:line:col`, from the manifest's source when it can be read again).
package enum HostChecks {
    /// The diagnostics of `vms`: images errors; a missing QEMU at `missingQEMU` severity
    /// (`validate`, which touches nothing on the host, makes it a warning as it does missing host
    /// files; `plan` an error).
    package static func diagnostics(_ vms: [VirtualMachine], missingQEMU: ManifestDiagnostic.Severity = .error,
                                    environment: [String: String]? = nil) -> [ManifestDiagnostic] {
        var out: [ManifestDiagnostic] = []
        var maps = SourceMaps()
        // Images: the first VM that opens each file, by canonical path.
        var users: [String: (vm: String, writable: Bool)] = [:]
        var realPaths = RealPaths()
        for vm in vms {
            var seen: Set<String> = []
            for (i, disk) in vm.spec.disks.enumerated() {
                guard case .file(let path, _) = disk.backend else { continue }
                let key = realPaths.of(path) ?? path
                guard seen.insert(key).inserted else { continue }
                if let first = users[key], first.vm != vm.name {
                    if first.writable || !disk.readOnly {
                        out.append(ManifestDiagnostic(
                            at: maps.location(of: "spec.disks[\(i)].file.path", in: vm),
                            "VM '\(vm.name)': disk '\(disk.name)' uses the image \(path), which VM '\(first.vm)' also uses"
                                + (first.writable && !disk.readOnly ? "; both open it for writing" : " and one of them writes"),
                            hint: "QEMU locks an image it writes: the second VM would fail to start; give each VM its own image, or make both readOnly"))
                    }
                } else if users[key] == nil {
                    users[key] = (vm.name, !disk.readOnly)
                }
            }
        }
        // QEMU for each architecture (or the configured emulator), looked up once each.
        var found: [String: String?] = [:]
        for vm in vms {
            let arch = Mapper(vm: vm, runtimeDirectory: "").arch(vm.spec.arch)
            let key = "\(arch.rawValue)\u{0}\(vm.spec.emulator ?? "")"
            if found[key] == nil {
                do {
                    _ = try QEMUDiscovery.findBinary(arch: arch, configuredPath: vm.spec.emulator, environment: environment)
                    found[key] = .some(nil)
                } catch {
                    found[key] = .some(error.message)
                }
            }
            if let message = found[key] ?? nil {
                out.append(ManifestDiagnostic(
                    missingQEMU, code: .hostFile,
                    at: maps.location(of: vm.spec.emulator == nil ? "spec.arch" : "spec.emulator", in: vm),
                    "VM '\(vm.name)': \(message)"))
            }
        }
        return out
    }

    /// `Posix.realPath` with each directory resolved once: a fleet's images share a few
    /// directories, and `realpath` costs one `readlink` per component of every path (12 per VM
    /// on a 10,000-file tree). The last component is resolved by one `lstat`: a path that does not
    /// exist is `nil`, as `realpath` says; a symbolic link, `.`, `..` or a path without a
    /// directory goes to `realpath` itself.
    private struct RealPaths {
        var directories: [Substring: String?] = [:]

        mutating func of(_ path: String) -> String? {
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return Posix.realPath(path) }
            let name = path[path.index(after: slash)...]
            guard !name.isEmpty, name != ".", name != ".." else { return Posix.realPath(path) }
            let dir = path[..<slash]
            let realDir: String?
            if let cached = directories[dir] {
                realDir = cached
            } else {
                realDir = Posix.realPath(String(dir))
                directories[dir] = .some(realDir)
            }
            guard let realDir else { return nil }
            var st = stat()
            guard lstat(path, &st) == 0 else { return nil }
            guard st.st_mode & S_IFMT != S_IFLNK else { return Posix.realPath(path) }
            return realDir == "/" ? "/" + name : realDir + "/" + name
        }
    }

    /// Source maps of the manifests read again, only for the VMs a problem names.
    private struct SourceMaps {
        var byFile: [String: [ManifestSourceMap]] = [:]

        /// Where `path` is written in `vm`'s manifest, or its nearest written ancestor; the VM's
        /// name when the file cannot be read again (standard input).
        mutating func location(of path: String, in vm: VirtualMachine) -> SourceLocation {
            let file = vm.source.file
            if byFile[file] == nil {
                let bytes = file == "-" ? nil : FileManager.default.contents(atPath: file)
                byFile[file] = bytes.map { ManifestSourceMap.documents(ofYAML: Array($0), file: file) } ?? []
            }
            guard let map = byFile[file]?.first(where: { $0.nameValue == vm.source }) else { return vm.source }
            let at = map.nearest(path)
            return at == map.start ? vm.source : at
        }
    }
}
