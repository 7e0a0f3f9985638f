/// Checks host files before QEMU opens them, for references to other host files that their content can carry and
/// that QEMU's options cannot switch off.
///
/// The command line keeps QEMU from following a backing file the configuration does not declare (`"backing": null`,
/// or the declared file's own read-only node) and never lets it probe a format (the driver is always the declared
/// one). What is left:
/// - a qcow2 or QED image whose header names a backing file: it must be exactly the declared one
///   (``FileDisk/backing``; the same file by another name counts, as does an unrecorded format), itself
///   self-contained (``baseProblem(path:format:)``); an undeclared one is refused naming it and how to declare it,
///   rather than attached without it (the guest would see a disk with holes);
/// - a qcow2 image whose header names an external data file (`qemu-img create -o data_file=…`): QEMU 7.2 opens
///   that file, and there is no option to say "none";
/// - a VMDK that is a text descriptor (or a sparse header that defers to an embedded descriptor): its extent lines
///   name arbitrary host files, which QEMU opens;
/// - a VDE "socket" that is a regular file: libvdeplug reads the switch's URL from its first line (a URL can
///   name a plugin to load, or a command to run).
///
/// Such files are refused. Files that are missing, unreadable or not of the declared format are not this check's
/// business: QEMU refuses them itself with its own message.
package enum HostFileCheck {
    /// Problems with the host files of `config` (disks and CD-ROMs with a file, VDE sockets), one sentence each.
    package static func problems(_ config: VMConfig) -> [String] {
        var out: [String] = []
        for d in config.disks {
            guard case .file(let f) = d.backend, let p = imageProblem(path: f.path, format: f.format, backing: f.backing) else { continue }
            out.append("disk \(d.name): \(p)")
        }
        for cd in config.cdroms {
            guard let path = cd.path, let p = imageProblem(path: path, format: cd.format) else { continue }
            out.append("CD-ROM \(cd.name): \(p)")
        }
        for n in config.networks {
            guard case .vde(let v) = n.backend, Posix.isRegularFile(v.socket) else { continue }
            out.append("network \(n.name): \(v.socket) is a regular file, from which libvdeplug would read another switch "
                       + "address; give the switch's socket directory")
        }
        return out
    }

    /// Why the image at `path`, declared `format` with the declared backing file `backing`, must not be opened;
    /// `nil` when it may be.
    ///
    /// An image whose header names a backing file must declare exactly that file and its format (`backing`); the
    /// backing file itself must pass the same checks and name no backing file of its own. An image that names
    /// none must declare none.
    package static func imageProblem(path: String, format: DiskFormat, backing: BackingFile? = nil) -> String? {
        if let p = headerProblem(path: path, format: format) { return p }
        let named: ImageHeader.Backing?
        switch ImageHeader.backing(path: path, format: format) {
        case .failure(let why): return why.description
        case .success(let b): named = b
        }
        switch (named, backing) {
        case (nil, nil):
            return nil
        case (let n?, nil):
            return "the \(format.rawValue) image \(path) has the backing file \(n.path)"
                + (n.format.map { " (\($0))" } ?? "") + ", which the manifest does not declare; qemuctl never follows "
                + "an undeclared backing file (declare it: file.backing: {path: \(n.path), format: \(n.format ?? "FORMAT")})"
        case (nil, let b?):
            return "the manifest declares the backing file \(b.path) (\(b.format.rawValue)) for \(path), but the image's "
                + "header names none (an image that exists is used as it is: remove file.backing or create.from, or use an "
                + "overlay that is backed by it)"
        case (let n?, let b?):
            // The same file by another name (a link in the declared path, as an overlay made by qemuctl names the
            // base's real path) is the declared one: what QEMU opens at the declared path is what the header names.
            if n.path != b.path, Posix.realPath(n.path) == nil || Posix.realPath(n.path) != Posix.realPath(b.path) {
                return "the \(format.rawValue) image \(path) has the backing file \(n.path), not the declared \(b.path) "
                    + "(declare file.backing: {path: \(n.path), format: \(n.format ?? b.format.rawValue)}, or rebase the image)"
            }
            if let f = n.format, f != b.format.rawValue {
                return "the \(format.rawValue) image \(path) declares its backing file \(n.path) as \(f), not the manifest's "
                    + "\(b.format.rawValue) (set file.backing.format: \(f))"
            }
            if b.path == path { return "the image \(path) names itself as its backing file" }
            if let p = baseProblem(path: b.path, format: b.format) {
                return "backing file of \(path): \(p)"
            }
            return nil
        }
    }

    /// Why the image at `path`, declared `format`, cannot be a base (`create.from`) or a declared backing file:
    /// it must be self-contained, naming no backing file of its own (chains are declared one level deep) and
    /// passing the header checks; `nil` when it can.
    package static func baseProblem(path: String, format: DiskFormat) -> String? {
        if let p = headerProblem(path: path, format: format) { return p }
        switch ImageHeader.backing(path: path, format: format) {
        case .failure(let why): return why.description
        case .success(nil): return nil
        case .success(let n?):
            return "the \(format.rawValue) image \(path) has a backing file of its own (\(n.path)); a base must be "
                + "self-contained (flatten it: qemu-img convert -f \(format.rawValue) -O \(format.rawValue) \(path) FLAT)"
        }
    }

    /// The problems of the header of the image at `path` that no declaration can lift (external data files,
    /// VMDK descriptors).
    private static func headerProblem(path: String, format: DiskFormat) -> String? {
        switch format {
        case .qcow2:
            guard let h = Posix.readFile(path, limit: 512), h.count >= 8, Array(h[0..<4]) == qcow2Magic else { return nil }
            // Version 3 headers carry the incompatible feature bits at offset 72; bit 2 is "external data file".
            guard bigEndian32(h, 4) >= 3, h.count >= 80 else { return nil }
            if bigEndian64(h, 72) & (1 << 2) != 0 {
                return "the qcow2 image \(path) names an external data file in its header; qemuctl opens only files "
                    + "the configuration declares (convert it to a self-contained image: qemu-img convert -f qcow2 -O qcow2)"
            }
            return nil
        case .vmdk:
            guard let h = Posix.readFile(path, limit: 512), !h.isEmpty else { return nil }
            let magic = h.count >= 4 ? Array(h[0..<4]) : []
            // A sparse extent (VMDK4 "KDMV") holds the data itself, unless its capacity is 0 and it defers to an
            // embedded descriptor; VMDK3 ("COWD") is always self-contained.
            if magic == vmdk3Magic { return nil }
            if magic == vmdk4Magic, h.count >= 36, !(littleEndian64(h, 12) == 0 && littleEndian64(h, 28) != 0) { return nil }
            return "the VMDK image \(path) is a descriptor whose extent lines name other host files; qemuctl opens only "
                + "files the configuration declares (convert it to one file: qemu-img convert -f vmdk -O vmdk "
                + "-o subformat=monolithicSparse)"
        case .raw, .qed, .vdi, .vhdx, .vpc:
            return nil
        }
    }

    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]  // "QFI\xfb"
    static let vmdk4Magic: [UInt8] = [0x4B, 0x44, 0x4D, 0x56]  // "KDMV"
    static let vmdk3Magic: [UInt8] = [0x43, 0x4F, 0x57, 0x44]  // "COWD"

    static func bigEndian32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(b[at + $1]) }
    }

    static func bigEndian64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
    }

    static func littleEndian64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reversed().reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
    }
}
