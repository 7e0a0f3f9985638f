/// A guest architecture, named the way Go's `GOARCH` names it (the seed library's convention).
///
/// ```swift
/// let arch = try QEMUArch(goarch: "arm64")   // .arm64
/// arch.binaryName                             // "qemu-system-aarch64"
/// ```
public enum QEMUArch: String, Sendable, Codable, CaseIterable {
    /// x86-64.
    case amd64
    /// 32-bit x86.
    case i386 = "386"
    /// 64-bit ARM.
    case arm64
    /// 32-bit ARM.
    case arm
    /// 64-bit RISC-V.
    case riscv64
    /// 64-bit POWER, big endian.
    case ppc64
    /// 64-bit POWER, little endian (same QEMU binary as ppc64).
    case ppc64le
    /// 32-bit MIPS.
    case mips
    /// 64-bit MIPS.
    case mips64
    /// IBM Z.
    case s390x

    /// Parses a GOARCH name.
    ///
    /// - Throws: ``QEMUDiscoveryError`` "unsupported architecture: X" for any other name.
    public init(goarch: String) throws(QEMUDiscoveryError) {
        guard let a = QEMUArch(rawValue: goarch) else {
            throw QEMUDiscoveryError(code: .unsupportedArchitecture, message: "unsupported architecture: \(goarch)")
        }
        self = a
    }

    /// The `qemu-system-*` binary for this architecture.
    /// The Debian package that installs ``binaryName`` (Debian 12's split of QEMU's system emulators).
    public var debianPackage: String {
        switch self {
        case .amd64, .i386: "qemu-system-x86"
        case .arm64, .arm: "qemu-system-arm"
        case .ppc64, .ppc64le: "qemu-system-ppc"
        case .mips, .mips64: "qemu-system-mips"
        case .riscv64, .s390x: "qemu-system-misc"
        }
    }

    public var binaryName: String {
        switch self {
        case .amd64: "qemu-system-x86_64"
        case .i386: "qemu-system-i386"
        case .arm64: "qemu-system-aarch64"
        case .arm: "qemu-system-arm"
        case .riscv64: "qemu-system-riscv64"
        case .ppc64, .ppc64le: "qemu-system-ppc64"
        case .mips: "qemu-system-mips"
        case .mips64: "qemu-system-mips64"
        case .s390x: "qemu-system-s390x"
        }
    }

    /// The machine type used when the configuration names none.
    public var defaultMachineType: String? {
        switch self {
        case .amd64, .i386: "q35"
        case .arm64, .arm, .riscv64: "virt"
        case .ppc64, .ppc64le: "pseries"
        case .s390x: "s390-ccw-virtio"
        case .mips, .mips64: nil
        }
    }

    /// The architecture of the machine this code runs on (the seed's `runtime.GOARCH` default).
    public static var host: QEMUArch {
        #if arch(x86_64)
        .amd64
        #elseif arch(i386)
        .i386
        #elseif arch(arm64)
        .arm64
        #elseif arch(arm)
        .arm
        #elseif arch(riscv64)
        .riscv64
        #elseif arch(powerpc64le)
        .ppc64le
        #elseif arch(powerpc64)
        .ppc64
        #elseif arch(s390x)
        .s390x
        #else
        .amd64
        #endif
    }
}
