/// What the launcher knows that the configuration does not: where the runtime files go, how QEMU should run,
/// and which accelerator the probe chose.
public struct LaunchOptions: Sendable, Equatable {
    /// The QMP control socket (`-chardev socket,id=qmp,path=…,server=on,wait=off` + `-mon chardev=qmp,mode=control`).
    public var qmpSocketPath: String
    /// The VM's private runtime directory (the launcher creates it 0700). Secret files
    /// (``QEMUCommandLine/secretFiles``) and the guest agent socket are placed here.
    public var runtimeDirectory: String
    /// Passes `-pidfile PATH`.
    public var pidFile: String?
    /// Passes `-daemonize`: QEMU forks, detaches, and its parent exits once the VM is set up (or has failed).
    public var daemonize: Bool
    /// Passes `-S`: the CPUs stay stopped until the launcher sends `cont` (default `true`).
    public var startPaused: Bool
    /// The probe result (``AcceleratorProbe/probe(binary:machineType:requested:)``). Required when the
    /// configuration's accelerator is ``AcceleratorMode/auto``; for an explicit accelerator it only supplies
    /// the CPU model when it probed that same accelerator.
    public var accelerator: AcceleratorChoice?
    /// A second QMP monitor for long-lived followers (`qemuctl events`), or `nil` for none
    /// (`-chardev socket,id=qmp-events,path=…,server=on,wait=off` + `-mon chardev=qmp-events,mode=control`).
    ///
    /// QEMU serves one client at a time on each monitor socket; a follower that holds
    /// this one never delays a command on ``qmpSocketPath``. Put it in the private
    /// runtime directory (``RuntimeLayout/followerSocketPath``).
    public var followerSocketPath: String?

    /// Creates launch options.
    public init(qmpSocketPath: String, runtimeDirectory: String, pidFile: String? = nil, daemonize: Bool = false,
                startPaused: Bool = true, accelerator: AcceleratorChoice? = nil, followerSocketPath: String? = nil) {
        self.qmpSocketPath = qmpSocketPath; self.runtimeDirectory = runtimeDirectory; self.pidFile = pidFile
        self.daemonize = daemonize; self.startPaused = startPaused; self.accelerator = accelerator
        self.followerSocketPath = followerSocketPath
    }
}

/// The result of ``VMConfig/commandLine(_:)``: QEMU's arguments plus what the launcher must do around them.
public struct QEMUCommandLine: Sendable, Equatable {
    /// The arguments after the binary (argv[1…]). They contain no secret.
    public var arguments: [String]
    /// Files to write before exec, each 0600 in the 0700 runtime directory, with the secret's value. QEMU reads
    /// them once while starting; they may be deleted when QMP is up.
    public var secretFiles: [SecretFile]
    /// QMP calls to make after QMP is up and before `cont` (display passwords).
    public var postStartActions: [PostStartAction]
    /// The accelerator passed to `-accel`.
    public var accelerator: Accelerator
    /// The CPU model passed to `-cpu` (with any features), or `nil` for QEMU's default.
    public var cpuModel: String?
    /// The machine type passed to `-machine type=`.
    public var machineType: String
    /// The guest agent's Unix socket, when ``VMConfig/guestAgent`` is on.
    public var guestAgentSocketPath: String?
    /// The ids of the empty hot-plug-capable `pcie-root-port`s (q35), to pass as `bus` to `device_add`.
    public var hotplugPorts: [String]
    /// The root-bus PCI slot each device got, by device id; empty on a board whose devices QEMU
    /// places itself. Record it and pass it back as ``VMConfig/pciSlotHints`` to keep slots stable.
    public var pciSlots: [String: Int] = [:]
}

/// A secret the launcher writes to a file for a QEMU `secret` object.
public struct SecretFile: Sendable, Equatable {
    /// The QEMU object id (`secret-NAME-key`, `secret-NAME-password`).
    public var objectID: String
    /// Where to write it (inside the runtime directory).
    public var path: String
    /// What to write (``Secret/read(environment:)``), without a trailing newline.
    public var secret: Secret
}

/// A remote display protocol.
public enum DisplayProtocol: String, Sendable, Codable, Equatable {
    /// VNC.
    case vnc
    /// SPICE.
    case spice
}

/// A QMP call the launcher makes after start, for what must not be on the command line.
public enum PostStartAction: Sendable, Equatable {
    /// Sets a display password. The corresponding QMP command is `set_password`.
    case setPassword(DisplayProtocol, Secret)

    /// The QMP command name.
    public var command: String {
        switch self {
        case .setPassword: "set_password"
        }
    }

    /// The QMP arguments, given the secret's value (read with ``Secret/read(environment:)``).
    public func arguments(secretValue: String) -> [String: String] {
        switch self {
        case .setPassword(let p, _): ["protocol": p.rawValue, "password": secretValue]
        }
    }

    /// The secret whose value ``arguments(secretValue:)`` needs.
    public var secret: Secret {
        switch self {
        case .setPassword(_, let s): s
        }
    }
}
