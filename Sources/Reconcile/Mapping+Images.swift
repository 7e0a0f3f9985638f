package import Manifest
import QemuCtl

// MARK: - Disk images on the host

extension VMConfigMapping {
    /// Errors for `qemuctl validate` about the disk images of `vm` that exist now, as the launch would refuse
    /// them (``HostFileCheck/imageProblem(path:format:backing:)``): a backing file the header names that the
    /// manifest does not declare (`file.backing`, or the base of a `create.from` overlay), a declared one the
    /// header does not name or names with another format, an external data file, a VMDK descriptor.
    /// An image still to be created is not looked at, but the base it is to be made from is (it must be
    /// self-contained).
    ///
    /// - Parameter locate: where a field path (`spec.disks[0].file.path`) is written; `vm.source` without a map.
    package static func imageErrors(_ vm: VirtualMachine, locate: (String) -> SourceLocation) -> [ManifestDiagnostic] {
        var out: [ManifestDiagnostic] = []
        for (i, d) in vm.spec.disks.enumerated() {
            guard case .file(let path, let format) = d.backend, let format = DiskFormat(rawValue: format.rawValue) else { continue }
            guard Posix.fileExists(path) else {
                // Still to be made from a base: the base must be self-contained (no backing file, data file or
                // extent it names is followed).
                if let from = d.createFrom, Posix.fileExists(from.path), let f = DiskFormat(rawValue: from.format.rawValue),
                   let problem = HostFileCheck.baseProblem(path: from.path, format: f) {
                    out.append(ManifestDiagnostic(.error, code: .hostFile, at: locate("spec.disks[\(i)].create.from.path"),
                                                  "VM '\(vm.name)': disk \(d.name): \(problem)"))
                }
                continue
            }
            let backing = d.declaredBacking.flatMap { b in DiskFormat(rawValue: b.format.rawValue).map { BackingFile(path: b.path, format: $0) } }
            guard let problem = HostFileCheck.imageProblem(path: path, format: format, backing: backing) else { continue }
            let field = d.backing != nil ? "spec.disks[\(i)].file.backing" : "spec.disks[\(i)].file.path"
            out.append(ManifestDiagnostic(.error, code: .hostFile, at: locate(field),
                                          "VM '\(vm.name)': disk \(d.name): \(problem)"))
        }
        return out
    }
}
