/// The run state of a VM, as QEMU reports it (`query-status`) and as events change it.
///
/// Every run state of QEMU 7.2 has a case of its own; ``isAlive`` says which ones
/// have a guest that can run again without a relaunch.
public enum VMState: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Not known yet (before the first query), or the QEMU process is gone.
    case unknown
    /// The vCPUs run.
    case running
    /// Paused by a `stop` command (or `-S` and `cont` has been sent since).
    case paused
    /// Started with `-S` and never continued.
    case prelaunch
    /// The guest shut down (QEMU keeps running only with `-no-shutdown`).
    case shutdown
    /// The guest is suspended to RAM (ACPI S3).
    case suspended
    /// The guest panicked (pvpanic).
    case guestPanicked = "guest-panicked"
    /// An internal QEMU error stopped the VM.
    case internalError = "internal-error"
    /// A disk I/O error stopped the VM.
    case ioError = "io-error"
    /// The watchdog fired and paused the VM.
    case watchdog
    /// Incoming migration is pending.
    case inmigrate
    /// Outgoing migration finished; the VM is paused.
    case postmigrate
    /// Migration is finishing.
    case finishMigrate = "finish-migrate"
    /// Paused for a `savevm`.
    case saveVM = "save-vm"
    /// Restoring from `loadvm`.
    case restoreVM = "restore-vm"
    /// Paused because a debugger stopped it.
    case debug
    /// Paused in COLO replication.
    case colo

    /// Maps a QEMU `RunState` name; unknown names map to ``unknown``.
    public init(qemuRunState name: String) {
        self = VMState(rawValue: name) ?? .unknown
    }

    /// Whether the guest exists and can run (running, paused or in a recoverable pause).
    public var isAlive: Bool {
        switch self {
        case .unknown, .shutdown, .guestPanicked, .internalError: false
        default: true
        }
    }

    /// Whether the state means something went wrong (the seed's "crashed").
    public var isCrashed: Bool {
        self == .guestPanicked || self == .internalError || self == .ioError
    }

    /// The QEMU name of the state.
    public var description: String { rawValue }

    /// The state after `event`, given the state before it; `nil` when the event
    /// does not change the run state.
    ///
    /// `RESET` never resumes a VM: a running VM keeps running; any other VM ends up
    /// with its vCPUs stopped in `prelaunch`, as QEMU 7.2 reports it (checked
    /// against `query-status` in the tests). The Go seed mapped RESET to running.
    public static func after(event name: String, data: QMPEventData, from current: VMState) -> VMState? {
        switch name {
        case "STOP": return current == .prelaunch ? nil : .paused
        case "RESUME": return .running
        case "SHUTDOWN": return .shutdown
        case "RESET": return current == .running || current == .prelaunch ? nil : .prelaunch
        case "SUSPEND": return .suspended
        case "WAKEUP": return .running
        case "GUEST_PANICKED": return .guestPanicked
        case "WATCHDOG":
            // Only the "pause" action changes the run state; "reset" emits RESET, "shutdown" SHUTDOWN.
            return data.action == "pause" ? .watchdog : nil
        default: return nil
        }
    }
}

/// The parts of an event's data the state machine looks at.
public struct QMPEventData: Sendable {
    /// The `action` member (WATCHDOG, GUEST_PANICKED).
    public var action: String?

    /// Creates event data.
    public init(action: String? = nil) { self.action = action }
}
