import QMP

// MARK: - FirmwareDescriptor

/// One firmware descriptor: a JSON file that a firmware package installs to say what its images are
/// and which machines they fit (QEMU's interop specification, `docs/interop/firmware.json`).
///
/// Debian's `ovmf` package, for example, installs `/usr/share/qemu/firmware/60-edk2-x86_64.json`:
/// ```json
/// { "interface-types": ["uefi"],
///   "mapping": { "device": "flash",
///                "executable": { "filename": "/usr/share/OVMF/OVMF_CODE_4M.fd", "format": "raw" },
///                "nvram-template": { "filename": "/usr/share/OVMF/OVMF_VARS_4M.fd", "format": "raw" } },
///   "targets": [ { "architecture": "x86_64", "machines": ["pc-i440fx-*", "pc-q35-*"] } ],
///   "features": ["acpi-s3", "amd-sev", "verbose-dynamic"] }
/// ```
/// Only what selection needs is kept. A descriptor whose mapping is not a split flash pair (a
/// `memory` or `kernel` device, or a `combined`/`stateless` flash mode) parses, with ``flash`` `nil`.
public struct FirmwareDescriptor: Sendable, Hashable {
    /// One architecture and the machine types the firmware runs on there.
    public struct Target: Sendable, Hashable {
        /// QEMU's architecture name (`x86_64`, `aarch64`, `i386`, …), not GOARCH's.
        public var architecture: String
        /// Machine type globs (`pc-q35-*`): `*` matches any run of characters, `?` one character.
        public var machines: [String]

        /// Creates a target.
        public init(architecture: String, machines: [String]) {
            self.architecture = architecture
            self.machines = machines
        }
    }

    /// The images of a `flash` mapping in split mode: read-only code and a variable store template.
    public struct Flash: Sendable, Hashable {
        /// The firmware code image (`executable.filename`), mapped read-only as `pflash0`.
        public var executable: String
        /// The format of ``executable`` (`raw` or `qcow2`).
        public var executableFormat: String
        /// The variable store template (`nvram-template.filename`) each VM gets its own copy of.
        public var nvramTemplate: String
        /// The format of ``nvramTemplate``.
        public var nvramTemplateFormat: String

        /// Creates a flash mapping.
        public init(executable: String, executableFormat: String = "raw", nvramTemplate: String,
                    nvramTemplateFormat: String = "raw") {
            self.executable = executable
            self.executableFormat = executableFormat
            self.nvramTemplate = nvramTemplate
            self.nvramTemplateFormat = nvramTemplateFormat
        }
    }

    /// The descriptor file this came from (empty for one built in code).
    public var path: String
    /// The file name (``path``'s last component): descriptors are ranked by it, lowest first.
    public var fileName: String
    /// The free-text `description`.
    public var summary: String
    /// `interface-types` (`uefi`, `bios`, `openfirmware`, `uboot`).
    public var interfaceTypes: [String]
    /// The split flash pair, or `nil` when the mapping is anything else.
    public var flash: Flash?
    /// Where the firmware runs.
    public var targets: [Target]
    /// `features` (`secure-boot`, `enrolled-keys`, `requires-smm`, `acpi-s3`, `amd-sev`, …).
    public var features: Set<String>

    /// Creates a descriptor from its parts (tests, or firmware described in code).
    public init(path: String = "", summary: String = "", interfaceTypes: [String], flash: Flash?,
                targets: [Target], features: Set<String>) {
        self.path = path
        self.fileName = path.split(separator: "/").last.map(String.init) ?? path
        self.summary = summary
        self.interfaceTypes = interfaceTypes
        self.flash = flash
        self.targets = targets
        self.features = features
    }

    /// Parses a descriptor file's bytes.
    ///
    /// Unknown members are ignored, so newer descriptors still parse.
    ///
    /// - Parameters:
    ///   - bytes: The file's contents.
    ///   - path: The file it came from (kept in ``path``; its last component ranks the descriptor).
    /// - Throws: ``FirmwareDiscoveryError`` with code ``FirmwareDiscoveryError/Code-swift.struct/invalidDescriptor``
    ///   when the bytes are not JSON, or lack `interface-types`, `mapping` or `targets`.
    public init(parsing bytes: [UInt8], path: String) throws(FirmwareDiscoveryError) {
        let json: JSONValue
        do { json = try JSONValue(parsing: bytes) } catch {
            throw FirmwareDiscoveryError(code: .invalidDescriptor, message: "firmware descriptor \(path): \(error)")
        }
        func invalid(_ what: String) -> FirmwareDiscoveryError {
            FirmwareDiscoveryError(code: .invalidDescriptor, message: "firmware descriptor \(path): \(what)")
        }
        guard json.objectValue != nil else { throw invalid("not a JSON object") }
        guard let interfaces = json["interface-types"]?.arrayValue else { throw invalid("no interface-types list") }
        guard let mapping = json["mapping"]?.objectValue else { throw invalid("no mapping object") }
        guard let targetList = json["targets"]?.arrayValue else { throw invalid("no targets list") }
        var targets: [Target] = []
        for t in targetList {
            guard let arch = t["architecture"]?.stringValue else { throw invalid("a target has no architecture") }
            let machines = (t["machines"]?.arrayValue ?? []).compactMap(\.stringValue)
            targets.append(Target(architecture: arch, machines: machines))
        }
        var flash: Flash? = nil
        // Split mode is the default; `combined` (code and variables in one image) and `stateless`
        // (no variable store) give no template to copy.
        let mode = mapping["mode"]?.stringValue ?? "split"
        if mapping["device"]?.stringValue == "flash", mode == "split",
           let exe = mapping["executable"]?["filename"]?.stringValue,
           let template = mapping["nvram-template"]?["filename"]?.stringValue {
            flash = Flash(executable: exe, executableFormat: mapping["executable"]?["format"]?.stringValue ?? "raw",
                          nvramTemplate: template,
                          nvramTemplateFormat: mapping["nvram-template"]?["format"]?.stringValue ?? "raw")
        }
        self.init(path: path, summary: json["description"]?.stringValue ?? "",
                  interfaceTypes: interfaces.compactMap(\.stringValue), flash: flash, targets: targets,
                  features: Set((json["features"]?.arrayValue ?? []).compactMap(\.stringValue)))
    }

    /// Whether the descriptor lists `architecture` with a machine glob matching `machineType`.
    ///
    /// The versionless aliases `q35` and `pc` stand for their current versions: they are matched as
    /// the family prefixes `pc-q35-` and `pc-i440fx-`, so `pc-q35-*` matches `q35` while a glob naming
    /// particular versions (`pc-q35-2.*`) does not.
    public func supports(architecture: String, machineType: String) -> Bool {
        let subject = FirmwareDescriptor.machineFamilyAliases[machineType] ?? machineType
        return targets.contains { t in
            t.architecture == architecture && t.machines.contains { FirmwareDescriptor.glob($0, matches: subject) }
        }
    }

    /// QEMU's versionless x86 machine aliases and the versioned family each stands for.
    static let machineFamilyAliases = ["q35": "pc-q35-", "pc": "pc-i440fx-"]

    /// Shell-style matching of `pattern` (`*` any run, `?` one character, anything else itself) against
    /// the whole of `subject`.
    static func glob(_ pattern: String, matches subject: String) -> Bool {
        let p = Array(pattern.unicodeScalars), s = Array(subject.unicodeScalars)
        var pi = 0, si = 0
        var star: Int? = nil, starSubject = 0
        while si < s.count {
            if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == s[si])) {
                pi += 1; si += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi; starSubject = si; pi += 1
            } else if let st = star {
                pi = st + 1; starSubject += 1; si = starSubject
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

// MARK: - FirmwareDiscoveryError

/// The error thrown when firmware cannot be found or a descriptor cannot be read.
public struct FirmwareDiscoveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable { case invalidDescriptor, noMatch, variableStore }
        private let storage: Storage
        /// A descriptor file is not valid JSON or lacks a required member.
        public static var invalidDescriptor: Self { .init(storage: .invalidDescriptor) }
        /// No installed descriptor fits the request.
        public static var noMatch: Self { .init(storage: .noMatch) }
        /// The VM's variable store could not be created from its template.
        public static var variableStore: Self { .init(storage: .variableStore) }
        /// The code's name.
        public var description: String { "\(storage)" }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, naming the files involved.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) { self.code = code; self.message = message }

    /// The message.
    public var description: String { message }
}
