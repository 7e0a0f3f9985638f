import QemuCtl

extension VMConfigMapping {
    /// Translates a QemuCtl field path (from ``ConfigProblem/path`` of ``VMConfig/problems()`` or of
    /// ``VMConfig/commandLine(_:)``'s ``VMConfigError``) into the manifest field it came from.
    ///
    /// `memory.sizeMiB` → `spec.memory.size`, `disks[1].throttle.bpsTotal` → `spec.disks[1].throttle.bps`,
    /// `networks[0].user.hostForwards[2].hostPort` → `spec.networks[0].user.hostfwd[2]`, `name` → `metadata.name`.
    /// Paths with no manifest field (`uuid`, `socketDirectory`, `launch.…`) are returned unchanged.
    package static func manifestPath(forConfigPath path: String) -> String {
        FieldPaths.manifestPath(forConfigPath: path)
    }
}

/// The renames between QemuCtl's configuration paths and the manifest's, as data.
enum FieldPaths {
    /// Whole-path renames.
    static let exact: [String: String] = [
        "name": "metadata.name",
        "qemuPath": "spec.emulator",
        "virtioSerialPorts": "spec.guestAgent",
        "cpu": "spec.cpu",
    ]

    /// Segment renames, applied in order wherever they occur.
    static let renames: [(String, String)] = [
        (".nbd.server.unix.path", ".nbd.unix"),
        (".nbd.tlsCredsID", ".nbd.tls"),
        (".rbd.key", ".rbd.keyFrom"),
        (".iscsi.password", ".iscsi.passwordFrom"),
        (".bridge.bridge", ".bridge.name"),
        (".vde.socket", ".vde.sock"),
        (".stream.address.unix.path", ".stream.unix"),
        (".stream.address.inet", ".stream.inet"),
        (".socket.multicast", ".socket.mcast"),
        (".user.hostForwards", ".user.hostfwd"),
        ("memory.sizeMiB", "memory.size"),
        ("memory.maxSizeMiB", "memory.max"),
        ("memory.backend.file.path", "memory.path"),
        ("boot.append", "boot.cmdline"),
        (".pciSlot", ".pciAddress"),
        ("display.vnc.password", "display.vnc.passwordFrom"),
        ("display.spice.password", "display.spice.passwordFrom"),
        (".host.vendorID", ".vendor"),
        (".host.productID", ".product"),
        (".hostAddress.bus", ".bus"),
        (".hostAddress.address", ".address"),
    ]

    /// Prefixes after which the rest of the path is dropped: the manifest writes these as one string.
    static let wholeStrings: [String] = [
        ".socket.listen", ".socket.connect", ".socket.mcast", ".stream.inet",
        "display.vnc.listen", "display.spice.listen", "cpu.features",
    ]

    static func manifestPath(forConfigPath path: String) -> String {
        if let e = exact[path] { return e }
        if path == "uuid" || path == "socketDirectory" || path.hasPrefix("launch.") { return path }
        if path.hasPrefix("serials[") { return "spec.serial" }
        var s = path
        for (from, to) in renames { s = s.replacing(from, with: to) }
        // hostfwd[2].hostPort → hostfwd[2]
        if let r = s.firstRange(of: ".user.hostfwd["), let close = s[r.upperBound...].firstIndex(of: "]") {
            s = String(s[...close])
        }
        for prefix in wholeStrings {
            if let r = s.firstRange(of: prefix) {
                let after = s[r.upperBound...]
                if after.isEmpty || after.hasPrefix(".") || after.hasPrefix("[") { s = String(s[..<r.upperBound]) }
            }
        }
        // throttle: bpsTotal → bps, iopsTotalMax → iopsMax, …MaxLength → burstLength.
        if let r = s.firstRange(of: ".throttle.") {
            let key = s[r.upperBound...]
            let mapped = key.hasSuffix("MaxLength") ? "burstLength" : key.replacing("Total", with: "")
            s = String(s[..<r.upperBound]) + mapped
        }
        return "spec." + s
    }
}
