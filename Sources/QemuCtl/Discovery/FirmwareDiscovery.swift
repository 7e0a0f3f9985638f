#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - FirmwareRequest

/// What a VM needs from its firmware: the criteria ``FirmwareDiscovery/select(_:)`` matches descriptors by.
public struct FirmwareRequest: Sendable, Hashable {
    /// The guest architecture.
    public var architecture: QEMUArch
    /// The machine type (`q35`, `pc-q35-7.2`, `pc`, …).
    public var machineType: String
    /// Whether the VM boots with UEFI Secure Boot enforced.
    ///
    /// `true` asks for a descriptor with `secure-boot`, `enrolled-keys` (a variable store template with
    /// keys enrolled and Secure Boot on) and `requires-smm`; `false` for one with neither `secure-boot` nor
    /// `requires-smm`.
    public var secureBoot: Bool

    /// Creates a request.
    public init(architecture: QEMUArch = .host, machineType: String, secureBoot: Bool = false) {
        self.architecture = architecture
        self.machineType = machineType
        self.secureBoot = secureBoot
    }

    /// The features a descriptor must list.
    public var requiredFeatures: Set<String> {
        secureBoot ? ["secure-boot", "enrolled-keys", "requires-smm"] : []
    }

    /// The features a descriptor must not list.
    public var excludedFeatures: Set<String> {
        secureBoot ? [] : ["secure-boot", "requires-smm"]
    }

    /// A short phrase for messages: `x86_64 uefi flash firmware for machine q35 with Secure Boot`.
    public var summary: String {
        "\(FirmwareDiscovery.qemuArchitecture(architecture)) uefi flash firmware for machine \(machineType)"
            + (secureBoot ? " with Secure Boot (secure-boot, enrolled-keys, requires-smm)" : " without Secure Boot")
    }
}

// MARK: - FirmwareDiscovery

/// The firmware descriptors installed on this host, and selection among them (QEMU's interop
/// specification `docs/interop/firmware.json`, as libvirt implements it).
///
/// Descriptors are read from three directories, general to specific: ``systemDirectories``
/// (`/usr/share/qemu/firmware`, filled by packages such as Debian's `ovmf`; `/etc/qemu/firmware`, the
/// administrator's) and `$XDG_CONFIG_HOME/qemu/firmware` (the user's; `~/.config/qemu/firmware` when the
/// variable is unset). Every `*.json` file of the three is ranked by file name alone (`40-…` before
/// `60-…`); where two directories hold the same name, the more specific one's file is used, and an
/// empty file there hides the name altogether. ``select(_:)`` returns the first ranked descriptor that
/// fits.
///
/// ```swift
/// let discovery = FirmwareDiscovery.installed()
/// let request = FirmwareRequest(architecture: .amd64, machineType: "q35")
/// config.firmware = try discovery.firmware(for: request, vars: "/srv/vms/web-1.efivars.fd")
/// ```
///
/// Creating a discovery reads the descriptor files once; selecting reads nothing but checks that the
/// chosen images exist.
public struct FirmwareDiscovery: Sendable {
    /// The directories searched before the user's, general first.
    public static let systemDirectories = ["/usr/share/qemu/firmware", "/etc/qemu/firmware"]

    /// The directories searched, in the order given (general to specific).
    public var directories: [String]
    /// The usable descriptors, ranked (file name order).
    public var descriptors: [FirmwareDescriptor]
    /// Descriptor files that could not be read or parsed; they are skipped, not fatal.
    public var problems: [FirmwareDiscoveryError]

    /// The three standard directories for `environment` (`nil`: this process's), general first.
    public static func searchDirectories(environment: [String: String]? = nil) -> [String] {
        let env = environment ?? ProcessInfo.processInfo.environment
        var dirs = systemDirectories
        if let xdg = env["XDG_CONFIG_HOME"], xdg.hasPrefix("/") {
            dirs.append(xdg + "/qemu/firmware")
        } else if let home = env["HOME"], home.hasPrefix("/") {
            dirs.append(home + "/.config/qemu/firmware")
        }
        return dirs
    }

    /// Reads the descriptors installed on this host (``searchDirectories(environment:)``).
    public static func installed(environment: [String: String]? = nil) -> FirmwareDiscovery {
        FirmwareDiscovery(directories: searchDirectories(environment: environment))
    }

    /// Reads every `*.json` descriptor of `directories` (general to specific), ranked and masked as
    /// described above. Missing directories are skipped.
    public init(directories: [String]) {
        self.directories = directories
        var chosen: [String: String] = [:]  // file name -> path in the most specific directory holding it
        for dir in directories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
                chosen[name] = dir.hasSuffix("/") ? dir + name : dir + "/" + name
            }
        }
        var descriptors: [FirmwareDescriptor] = []
        var problems: [FirmwareDiscoveryError] = []
        for name in chosen.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let path = chosen[name]!
            guard let bytes = Posix.readFile(path, limit: 1 << 20) else {
                problems.append(FirmwareDiscoveryError(code: .invalidDescriptor, message: "firmware descriptor \(path): cannot be read"))
                continue
            }
            if bytes.isEmpty { continue }  // an empty file masks the name (the spec's way to disable one)
            do {
                descriptors.append(try FirmwareDescriptor(parsing: bytes, path: path))
            } catch {
                problems.append(error)
            }
        }
        self.descriptors = descriptors
        self.problems = problems
    }

    /// A discovery over descriptors given in code, ranked as given.
    public init(descriptors: [FirmwareDescriptor]) {
        self.directories = []
        self.descriptors = descriptors
        self.problems = []
    }

    /// QEMU's name for `arch` in descriptors (`x86_64` for ``QEMUArch/amd64``, `aarch64` for ``QEMUArch/arm64``).
    public static func qemuArchitecture(_ arch: QEMUArch) -> String {
        switch arch {
        case .amd64: "x86_64"
        case .i386: "i386"
        case .arm64: "aarch64"
        case .arm: "arm"
        case .riscv64: "riscv64"
        case .ppc64, .ppc64le: "ppc64"
        case .mips: "mips"
        case .mips64: "mips64"
        case .s390x: "s390x"
        }
    }

    /// Whether `descriptor` fits `request`: interface `uefi`, a split `flash` mapping of raw images
    /// (the only kind the argv builder attaches), the architecture and machine type, and the features.
    /// Whether its images exist is not checked here.
    public static func fits(_ descriptor: FirmwareDescriptor, _ request: FirmwareRequest) -> Bool {
        guard descriptor.interfaceTypes.contains("uefi"), let flash = descriptor.flash,
              flash.executableFormat == "raw", flash.nvramTemplateFormat == "raw",
              descriptor.supports(architecture: qemuArchitecture(request.architecture), machineType: request.machineType)
        else { return false }
        return request.requiredFeatures.isSubset(of: descriptor.features)
            && request.excludedFeatures.isDisjoint(with: descriptor.features)
    }

    /// The first ranked descriptor that fits `request` and whose code image and template exist.
    ///
    /// - Throws: ``FirmwareDiscoveryError/Code-swift.struct/noMatch`` naming the request, the directories
    ///   searched and the descriptors seen, when none fits.
    public func select(_ request: FirmwareRequest) throws(FirmwareDiscoveryError) -> FirmwareDescriptor {
        for d in descriptors where Self.fits(d, request) {
            guard let f = d.flash, Posix.fileExists(f.executable), Posix.fileExists(f.nvramTemplate) else { continue }
            return d
        }
        let seen = descriptors.isEmpty ? "none" : descriptors.map(\.fileName).joined(separator: ", ")
        throw FirmwareDiscoveryError(
            code: .noMatch,
            message: "no firmware descriptor offers \(request.summary) (searched \(directories.joined(separator: ", ")); "
                + "descriptors seen: \(seen)); install the firmware package (Debian: apt-get install ovmf)")
    }

    /// The variable store template that goes with the code image `code`: the template of the first
    /// ranked flash descriptor for `architecture` whose executable is `code` (the same path, or the
    /// same file reached through symbolic links), or `nil`.
    public func template(forCode code: String, architecture: QEMUArch = .host) -> String? {
        let arch = Self.qemuArchitecture(architecture)
        let candidates = descriptors.filter { d in
            d.interfaceTypes.contains("uefi") && d.flash != nil && d.targets.contains { $0.architecture == arch }
        }
        if let d = candidates.first(where: { $0.flash?.executable == code }) { return d.flash?.nvramTemplate }
        guard let real = Posix.realPath(code) else { return nil }
        return candidates.first { $0.flash.flatMap { Posix.realPath($0.executable) } == real }?.flash?.nvramTemplate
    }

    /// The firmware configuration for `request`: the selected descriptor's code image, the VM's own
    /// variable store `vars` and the descriptor's template to create it from (see ``Firmware``).
    ///
    /// - Throws: ``FirmwareDiscoveryError`` as ``select(_:)`` does.
    public func firmware(for request: FirmwareRequest, vars: String) throws(FirmwareDiscoveryError) -> Firmware {
        let d = try select(request)
        return Firmware(code: d.flash!.executable, vars: vars, varsTemplate: d.flash!.nvramTemplate,
                        secureBoot: request.secureBoot)
    }
}
