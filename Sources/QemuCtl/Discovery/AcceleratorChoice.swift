/// The accelerator and CPU model that work on this host with one QEMU binary, and why.
public struct AcceleratorChoice: Sendable, Equatable, Codable {
    /// The accelerator.
    public var accelerator: Accelerator
    /// The CPU model, or `nil` for QEMU's default model.
    public var cpuModel: String?
    /// Features to switch on or off on top of ``cpuModel`` (e.g. `arch-capabilities: false` where `-cpu host`
    /// aborts because the host lacks MSR 0x10a).
    public var cpuFeatures: [String: Bool]
    /// What was tried and why this was chosen, one line per step.
    public var reasons: [String]

    /// Creates a choice.
    public init(accelerator: Accelerator, cpuModel: String? = nil, cpuFeatures: [String: Bool] = [:],
                reasons: [String] = []) {
        self.accelerator = accelerator; self.cpuModel = cpuModel; self.cpuFeatures = cpuFeatures
        self.reasons = reasons
    }
}
