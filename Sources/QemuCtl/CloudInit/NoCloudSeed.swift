import QMP

/// A cloud-init NoCloud seed: `meta-data`, `user-data` and optionally `network-config`, written as
/// an ISO 9660 volume labelled `cidata` that cloud-init finds on any block device of the guest.
///
/// `meta-data` carries ``instanceID`` (cloud-init runs its once-per-instance modules again when it
/// changes) and ``hostname`` as `local-hostname`, plus ``metaDataExtras``. `user-data` is the
/// user's own text with ``sshAuthorizedKeys`` added:
/// - no user-data: a `#cloud-config` document holding just `ssh_authorized_keys`;
/// - user-data that is `#cloud-config` and keys to add: a MIME multi-part document of two
///   `text/cloud-config` parts, the user's text byte for byte and a part with the keys whose
///   `Merge-Type: list(append)+dict(recurse_array)+str()` makes cloud-init *append* them to any
///   `ssh_authorized_keys` the user wrote (cloud-init's documented merging of user-data parts), so
///   no YAML is parsed or rewritten here;
/// - user-data of another kind (a `#!` script, a MIME document, `#include`…) and keys to add:
///   refused with ``CloudInitError`` (say the keys in the user-data instead);
/// - user-data without keys to add: unchanged.
///
/// User-data may hold secrets. A seed's ``description`` never shows it; ``writeISO(to:)`` writes it
/// only to a 0600 file in a fresh 0700 directory and passes `xorriso` paths, never content.
///
/// ```swift
/// var seed = NoCloudSeed(instanceID: "web-1-3", hostname: "web-1")
/// seed.sshAuthorizedKeys = ["ssh-ed25519 AAAA… me@laptop"]
/// try seed.writeISO(to: layout.runtimeDirectory + "/cidata.iso")
/// ```
public struct NoCloudSeed: Sendable, Hashable, CustomStringConvertible {
    /// `instance-id`: stable for a VM; a new value makes cloud-init treat the next boot as a first boot.
    public var instanceID: String
    /// `local-hostname` (the VM name): a host name of letters, digits, `-` and `.`.
    public var hostname: String
    /// The user's user-data (may be a secret's content), or `nil`.
    public var userData: String?
    /// Public keys for the default user (`ssh_authorized_keys`), one key per entry.
    public var sshAuthorizedKeys: [String]
    /// `network-config` (cloud-init network configuration version 1 or 2), or `nil` for cloud-init's
    /// fallback (DHCP on the first NIC).
    public var networkConfig: String?
    /// More `meta-data` keys (letters, digits, `-` and `_`); `instance-id` and `local-hostname` are not allowed here.
    public var metaDataExtras: [String: String]

    /// The volume label cloud-init looks for.
    public static let volumeLabel = "cidata"

    /// Creates a seed.
    public init(instanceID: String, hostname: String, userData: String? = nil, sshAuthorizedKeys: [String] = [],
                networkConfig: String? = nil, metaDataExtras: [String: String] = [:]) {
        self.instanceID = instanceID
        self.hostname = hostname
        self.userData = userData
        self.sshAuthorizedKeys = sshAuthorizedKeys
        self.networkConfig = networkConfig
        self.metaDataExtras = metaDataExtras
    }

    /// A rendering without the user-data (it may hold secrets).
    public var description: String {
        "NoCloudSeed(instance-id: \(instanceID), local-hostname: \(hostname), user-data: "
            + (userData == nil ? "none" : "<\(userData!.utf8.count) bytes, redacted>")
            + ", keys: \(sshAuthorizedKeys.count), network-config: \(networkConfig == nil ? "none" : "yes"))"
    }

    // MARK: - Contents

    /// The seed's files by name (`meta-data`, `user-data`, and `network-config` when set), as written to the volume.
    ///
    /// - Throws: ``CloudInitError`` when a value is invalid or the keys cannot be merged into the user-data.
    public func files() throws(CloudInitError) -> [(name: String, contents: [UInt8])] {
        var result = [("meta-data", Array(try metaData().utf8)), ("user-data", Array(try mergedUserData().utf8))]
        if let networkConfig { result.append(("network-config", Array(networkConfig.utf8))) }
        return result
    }

    /// The `meta-data` document (YAML; values are double-quoted, so nothing in them is read as YAML syntax).
    ///
    /// - Throws: ``CloudInitError`` for an empty or multi-line instance id, a bad host name or extra key.
    public func metaData() throws(CloudInitError) -> String {
        guard !instanceID.isEmpty, instanceID.utf8.count <= 255, !instanceID.contains(where: \.isNewline) else {
            throw CloudInitError(message: "cloud-init instance-id must be 1 to 255 characters on one line")
        }
        guard Self.isHostname(hostname) else {
            throw CloudInitError(message: "'\(hostname)' is not a valid local-hostname (letters, digits, '-' and '.', labels of 1 to 63)")
        }
        var out = "instance-id: \(Self.quoted(instanceID))\nlocal-hostname: \(Self.quoted(hostname))\n"
        for key in metaDataExtras.keys.sorted() {
            guard key != "instance-id", key != "local-hostname", !key.isEmpty,
                  key.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
            else { throw CloudInitError(message: "'\(key)' cannot be a meta-data key (letters, digits, '-' and '_'; not instance-id or local-hostname)") }
            out += "\(key): \(Self.quoted(metaDataExtras[key]!))\n"
        }
        return out
    }

    /// The `user-data` document: the user's, with ``sshAuthorizedKeys`` added as described on the type.
    ///
    /// - Throws: ``CloudInitError`` for a key that is not one line, or keys to add to user-data that is not `#cloud-config`.
    public func mergedUserData() throws(CloudInitError) -> String {
        for key in sshAuthorizedKeys {
            guard !key.isEmpty, !key.contains(where: { $0.isNewline }), key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw CloudInitError(message: "an ssh authorized key must be one line of printable text")
            }
        }
        let keysPart = sshAuthorizedKeys.isEmpty ? ""
            : "ssh_authorized_keys:\n" + sshAuthorizedKeys.map { "  - \(Self.quoted($0))\n" }.joined()
        guard let userData else { return "#cloud-config\n" + keysPart }
        if sshAuthorizedKeys.isEmpty { return userData }
        guard Self.isCloudConfig(userData) else {
            let firstLine = Self.firstLine(userData)
            throw CloudInitError(message: "cannot add ssh authorized keys to user-data that is not #cloud-config (it starts with '\(firstLine.prefix(40))'); "
                                 + "put the keys in the user-data itself, or make it a #cloud-config document")
        }
        // A boundary that occurs in neither part.
        var boundary = "==qemuctl-cloud-init=="
        var n = 0
        while userData.contains(boundary) || keysPart.contains(boundary) {
            n += 1
            boundary = "==qemuctl-cloud-init-\(n)=="
        }
        var out = "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\nMIME-Version: 1.0\n\n"
        out += "--\(boundary)\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\n"
        out += "Content-Disposition: attachment; filename=\"user-data\"\n\n"
        out += userData + (userData.hasSuffix("\n") ? "" : "\n")
        out += "--\(boundary)\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\n"
        out += "Content-Disposition: attachment; filename=\"qemuctl-ssh-keys\"\n"
        out += "Merge-Type: list(append)+dict(recurse_array)+str()\n\n"
        out += "#cloud-config\n" + keysPart
        out += "--\(boundary)--\n"
        return out
    }

    /// Whether `text` is a `#cloud-config` document (its first line, as cloud-init reads it).
    public static func isCloudConfig(_ text: String) -> Bool {
        var line = firstLine(text).utf8[...]
        while let last = line.last, last == 0x20 || last == 0x09 || last == 0x0D { line.removeLast() }
        return line.elementsEqual("#cloud-config".utf8)
    }

    // MARK: - Writing

    /// Writes the seed as an ISO 9660 volume (Joliet and Rock Ridge) labelled `cidata` at `path`, mode 0600.
    ///
    /// The files are written, and the volume made by `xorriso`, in a fresh private directory (0700, an
    /// unpredictable name made by `mkdtemp(3)`) beside `path`; the finished volume is then renamed onto
    /// `path`, so a symlink planted at `path` is replaced, never followed, and the volume appears whole
    /// or not at all. `xorriso`'s argv holds only paths.
    ///
    /// - Parameters:
    ///   - path: Where the volume goes; its directory must exist (the VM's 0700 runtime directory).
    ///   - xorriso: The `xorriso` binary; `nil` looks in `/usr/bin`, `/bin`, `/usr/local/bin`.
    /// - Throws: ``CloudInitError`` when a value is invalid, `xorriso` is missing or fails, or a file cannot be written.
    public func writeISO(to path: String, xorriso: String? = nil) throws(CloudInitError) {
        let files = try files()
        guard let tool = xorriso ?? ["/usr/bin/xorriso", "/bin/xorriso", "/usr/local/bin/xorriso"].first(where: Posix.isExecutableFile) else {
            throw CloudInitError(message: "xorriso is not installed (apt-get install xorriso); it makes the cloud-init seed volume")
        }
        let directory = SeedFiles.directory(of: path)
        let work = try SeedFiles.makePrivateDirectory(in: directory)
        defer { SeedFiles.removeTree(work) }
        let content = work + "/content"
        try SeedFiles.makeDirectory(content)
        for file in files { try SeedFiles.createFile(content + "/" + file.name, file.contents) }
        let iso = work + "/seed.iso"
        try SeedFiles.createFile(iso, [])
        let result = Posix.run(tool, ["-as", "mkisofs", "-quiet", "-output", iso, "-volid", Self.volumeLabel,
                                      "-joliet", "-rational-rock", content],
                               environment: ["PATH=/usr/bin:/bin", "LC_ALL=C"], deadline: 60_000_000_000)
        if let spawn = result.spawnError { throw CloudInitError(message: "cannot run \(tool): \(spawn)") }
        guard result.status == 0, !result.timedOut else {
            throw CloudInitError(message: "xorriso could not make the cloud-init seed \(path): "
                                 + (result.timedOut ? "timed out" : Posix.trimmed(result.stderr)))
        }
        try SeedFiles.rename(iso, to: path)
    }

    // MARK: - Helpers

    /// `value` as a YAML double-quoted scalar (JSON's escapes are YAML's).
    static func quoted(_ value: String) -> String { JSONValue.string(value).description }

    /// The text up to the first line feed (a `\r\n` pair is one `Character`, so this splits on bytes).
    static func firstLine(_ text: String) -> String {
        String(decoding: text.utf8.prefix { $0 != 0x0A }, as: UTF8.self)
    }

    static func isHostname(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-",
                  label.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D })
            else { return false }
        }
        return true
    }
}

/// A cloud-init seed that cannot be made.
public struct CloudInitError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and what to do.
    public var message: String

    /// Creates an error.
    public init(message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
