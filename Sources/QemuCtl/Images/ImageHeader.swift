/// Reads what an image's header says about its backing file, without QEMU: the name and, when recorded, the format.
///
/// qcow2 (any version) and QED are read; they are the formats whose images qemuctl attaches with a declared
/// backing file. A relative name is resolved against the image's directory, as QEMU does, and normalized lexically,
/// so it compares with a manifest's absolute path. Other formats report no backing file here: their format node
/// is opened with `"backing": null` (VMDK), or they cannot have one.
package enum ImageHeader {
    /// A backing file named in a header.
    package struct Backing: Sendable, Equatable {
        /// The name as resolved: absolute for a file name, as written for anything else (`json:…`, `nbd:…`).
        package var path: String
        /// The format the header records (`qcow2`, `raw`…), nil when it records none (QEMU would probe it).
        package var format: String?
    }

    /// The backing file the image at `path` (declared `format`) names, nil when none, or why the header cannot be
    /// read as one of `format`. A file that is missing, unreadable or not of `format` names none: QEMU refuses it
    /// itself with its own message.
    package static func backing(path: String, format: DiskFormat) -> Result<Backing?, HeaderError> {
        switch format {
        case .qcow2: return qcow2Backing(path)
        case .qed: return qedBacking(path)
        case .raw, .vmdk, .vdi, .vhdx, .vpc: return .success(nil)
        }
    }

    /// A header that names a backing file in a way that cannot be read.
    package struct HeaderError: Error, Sendable, CustomStringConvertible {
        /// What is wrong, naming the image.
        package var description: String
    }

    /// The qcow2 backing-format header extension.
    static let qcow2BackingFormatExtension: UInt32 = 0xE279_2ACA
    /// The largest cluster (2 MiB): QEMU requires the name to lie within the first cluster.
    static let qcow2MaxHeaderBytes = (2 << 20) + 1024

    private static func qcow2Backing(_ path: String) -> Result<Backing?, HeaderError> {
        guard let h = Posix.readFile(path, limit: 512), h.count >= 72, Array(h[0..<4]) == HostFileCheck.qcow2Magic else {
            return .success(nil)
        }
        let version = HostFileCheck.bigEndian32(h, 4)
        let offset = HostFileCheck.bigEndian64(h, 8)
        let size = Int(HostFileCheck.bigEndian32(h, 16))
        guard offset != 0, size != 0 else { return .success(nil) }
        guard size <= 1023, offset + UInt64(size) <= UInt64(qcow2MaxHeaderBytes) else {
            return .failure(HeaderError(description: "the qcow2 image \(path) names a backing file outside its header"))
        }
        let end = Int(offset) + size
        guard let all = end <= h.count ? h : Posix.readFile(path, limit: max(end, 512)), all.count >= end else {
            return .failure(HeaderError(description: "the qcow2 image \(path) is cut short inside its backing file name"))
        }
        let name = String(decoding: all[Int(offset)..<end], as: UTF8.self)
        // Header extensions follow the header (72 bytes in version 2, header_length in version 3), up to the name.
        var format: String? = nil
        var at = version >= 3 && all.count >= 104 ? Int(HostFileCheck.bigEndian32(all, 100)) : 72
        while at + 8 <= min(all.count, Int(offset)) {
            let type = HostFileCheck.bigEndian32(all, at)
            let length = Int(HostFileCheck.bigEndian32(all, at + 4))
            if type == 0 { break }
            let data = at + 8
            guard length <= all.count - data else { break }
            if type == qcow2BackingFormatExtension {
                format = String(decoding: all[data..<data + length], as: UTF8.self)
            }
            at = data + (length + 7) / 8 * 8
        }
        return .success(Backing(path: resolved(name, beside: path), format: format))
    }

    private static func qedBacking(_ path: String) -> Result<Backing?, HeaderError> {
        guard let h = Posix.readFile(path, limit: 4096), h.count >= 64, Array(h[0..<4]) == [0x51, 0x45, 0x44, 0x00] else {
            return .success(nil)
        }
        let features = HostFileCheck.littleEndian64(h, 16)
        guard features & 0x01 != 0 else { return .success(nil) }
        let offset = Int(littleEndian32(h, 56))
        let size = Int(littleEndian32(h, 60))
        guard size > 0, size <= 1023, offset <= 4096 - size, offset + size <= h.count else {
            return .failure(HeaderError(description: "the QED image \(path) names a backing file outside its header"))
        }
        let name = String(decoding: h[offset..<offset + size], as: UTF8.self)
        // "Backing format: no probe" means raw; otherwise QED records no format.
        return .success(Backing(path: resolved(name, beside: path), format: features & 0x04 != 0 ? "raw" : nil))
    }

    private static func littleEndian32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reversed().reduce(0) { $0 << 8 | UInt32(b[at + $1]) }
    }

    /// `name` as QEMU resolves a backing file name of the image `image`: a relative file name against the image's
    /// directory; a protocol or `json:` name as it is. `.` and `..` are removed lexically.
    package static func resolved(_ name: String, beside image: String) -> String {
        if name.hasPrefix("json:") { return name }
        if let colon = name.firstIndex(of: ":"), !name[..<colon].contains("/") { return name }
        var full = name
        if !name.hasPrefix("/") {
            let dir = image.lastIndex(of: "/").map { String(image[..<$0]) } ?? "."
            full = dir + "/" + name
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
