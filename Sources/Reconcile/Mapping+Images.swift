package import Manifest
import QemuCtl

// MARK: - Disk images on the host

extension VMConfigMapping {
    /// Errors for `qemuctl validate` about the disk images of `vm` that exist now, as the launch would refuse
    /// them (``HostFileCheck/imageProblem(path:format:backing:)``): a backing file the header names that the
    /// manifest does not declare (`file.backing`, or the base of a `create.from` overlay), a declared one the
    /// header does not name or names with another format, an external data file, a VMDK descriptor.
    /// An image still to be created is not looked at.
    ///
    /// - Parameter locate: where a field path (`spec.disks[0].file.path`) is written; `vm.source` without a map.
    package static func imageErrors(_ vm: VirtualMachine, locate: (String) -> SourceLocation) -> [ManifestDiagnostic] {
        var out: [ManifestDiagnostic] = []
        for (i, d) in vm.spec.disks.enumerated() {
            guard case .file(let path, let format) = d.backend, Posix.fileExists(path),
                  let format = DiskFormat(rawValue: format.rawValue) else { continue }
            let backing = d.declaredBacking.flatMap { b in DiskFormat(rawValue: b.format.rawValue).map { BackingFile(path: b.path, format: $0) } }
            guard let problem = HostFileCheck.imageProblem(path: path, format: format, backing: backing) else { continue }
            let field = d.backing != nil ? "spec.disks[\(i)].file.backing" : "spec.disks[\(i)].file.path"
            out.append(ManifestDiagnostic(.error, code: .hostFile, at: locate(field),
                                          "VM '\(vm.name)': disk \(d.name): \(problem)"))
        }
        return out
    }
}
