/// Remote displays and the video device.
///
/// QEMU is always started with `-display none` (it is headless); VNC and SPICE are servers next to it.
public struct Display: Sendable, Codable, Equatable {
    /// A VNC server.
    public var vnc: VNC?
    /// A SPICE server.
    public var spice: SPICE?
    /// The video device; `nil` adds none (then there is nothing to see and `screendump` fails).
    public var video: Video?

    /// Creates display options.
    public init(vnc: VNC? = nil, spice: SPICE? = nil, video: Video? = nil) {
        self.vnc = vnc; self.spice = spice; self.video = video
    }
}

/// A video device.
public enum Video: String, Sendable, Codable, CaseIterable {
    /// Standard VGA (`VGA`).
    case vga
    /// `virtio-vga`.
    case virtio
    /// `bochs-display` (no legacy VGA).
    case bochs
    /// `qxl-vga`, for SPICE.
    case qxl
    /// `cirrus-vga`, for old guests.
    case cirrus
    /// `ramfb`: a plain framebuffer in guest RAM, set up by the firmware (not a PCI device).
    case ramfb

    /// The QEMU device driver.
    public var driver: String {
        switch self {
        case .vga: "VGA"
        case .virtio: "virtio-vga"
        case .bochs: "bochs-display"
        case .qxl: "qxl-vga"
        case .cirrus: "cirrus-vga"
        case .ramfb: "ramfb"
        }
    }

    /// Whether the device sits on the PCI bus (all but ``ramfb``).
    public var isPCI: Bool { self != .ramfb }
}

/// A VNC server.
public struct VNC: Sendable, Codable, Equatable {
    /// Where it listens.
    public enum Listen: Sendable, Codable, Equatable {
        /// Nowhere: clients only arrive by fd hand-off (`add_client`).
        case none
        /// A Unix socket (absolute path).
        case unix(path: String)
        /// TCP `host:5900+display`.
        case tcp(host: String, display: Int)
    }
    /// Where it listens.
    public var listen: Listen
    /// The password, set over QMP after start (`set_password`); VNC then requires it. Never on the command line.
    public var password: Secret?

    /// Creates a VNC server.
    public init(listen: Listen, password: Secret? = nil) { self.listen = listen; self.password = password }

    /// Parses the seed's display string: `none`, `unix:PATH`, `:N` or `HOST:N`.
    public init?(seedDisplay s: String) {
        if s == "none" { self.init(listen: .none) }
        else if s.hasPrefix("unix:") { self.init(listen: .unix(path: String(s.dropFirst(5)))) }
        else if let i = s.lastIndex(of: ":"), let n = Int(s[s.index(after: i)...]) {
            self.init(listen: .tcp(host: String(s[..<i]), display: n))
        } else { return nil }
    }
}

/// A SPICE server.
public struct SPICE: Sendable, Codable, Equatable {
    /// Where it listens.
    public enum Listen: Sendable, Codable, Equatable {
        /// A Unix socket (absolute path).
        case unix(path: String)
        /// TCP `host:port`.
        case tcp(host: String, port: Int)
    }
    /// SPICE image compression.
    public enum ImageCompression: String, Sendable, Codable, CaseIterable {
        case autoGLZ = "auto_glz", autoLZ = "auto_lz", quic, glz, lz, off
    }
    /// Where it listens.
    public var listen: Listen
    /// The password (ticket), set over QMP after start. Never on the command line.
    public var password: Secret?
    /// Lets clients in without a ticket. Without it and without a password, no client gets in until one is set.
    public var disableTicketing: Bool
    /// Image compression.
    public var imageCompression: ImageCompression?

    /// Creates a SPICE server.
    public init(listen: Listen, password: Secret? = nil, disableTicketing: Bool = false,
                imageCompression: ImageCompression? = nil) {
        self.listen = listen; self.password = password; self.disableTicketing = disableTicketing
        self.imageCompression = imageCompression
    }
}

/// A character device back end.
public enum CharBackend: Sendable, Codable, Equatable {
    /// Discards output, gives no input.
    case null
    /// A pseudo-terminal (its path is in `query-chardev`).
    case pty
    /// Output to a file (absolute path).
    case file(path: String, append: Bool)
    /// A Unix socket (absolute path); as server, QEMU listens and does not wait for a client.
    case unix(path: String, server: Bool)
    /// A TCP socket; as server, QEMU listens and does not wait for a client.
    case tcp(host: String, port: Int, server: Bool)
    /// An in-memory ring buffer of `size` bytes (a power of two), readable with `ringbuf-read`.
    case ringbuf(size: Int)
}

/// A serial port.
public struct Serial: Sendable, Codable, Equatable {
    /// The name (`[a-z][a-z0-9-]*`, at most 24 characters); the chardev id is `serial-NAME`.
    public var name: String
    /// Where the port's bytes go.
    public var backend: CharBackend
    /// Also log all output to this file (absolute path).
    public var logFile: String?

    /// Creates a serial port.
    public init(name: String, backend: CharBackend, logFile: String? = nil) {
        self.name = name; self.backend = backend; self.logFile = logFile
    }
}

/// A free-standing character device (`-chardev … id=ID`).
public struct Chardev: Sendable, Codable, Equatable {
    /// The chardev id (`[a-z][a-z0-9-]*`, at most 24 characters).
    public var id: String
    /// The back end.
    public var backend: CharBackend
    /// Also log all output to this file (absolute path).
    public var logFile: String?

    /// Creates a character device.
    public init(id: String, backend: CharBackend, logFile: String? = nil) {
        self.id = id; self.backend = backend; self.logFile = logFile
    }
}

/// A named virtio-serial port on the VM's `virtio-serial-pci` controller (added automatically).
public struct VirtioSerialPort: Sendable, Codable, Equatable {
    /// The port name the guest sees (e.g. `org.example.channel.0`): letters, digits, `.`, `_`, `-`.
    public var name: String
    /// The id of a chardev in ``VMConfig/chardevs``.
    public var chardev: String

    /// Creates a port.
    public init(name: String, chardev: String) { self.name = name; self.chardev = chardev }
}

/// A USB controller and devices.
public struct USB: Sendable, Codable, Equatable {
    /// The controller model.
    public enum Controller: String, Sendable, Codable, CaseIterable {
        /// `qemu-xhci` (USB 3).
        case xhci
        /// `usb-ehci` (USB 2).
        case ehci
        /// `piix3-usb-uhci` (USB 1).
        case uhci

        /// The QEMU device driver.
        public var driver: String {
            switch self {
            case .xhci: "qemu-xhci"
            case .ehci: "usb-ehci"
            case .uhci: "piix3-usb-uhci"
            }
        }
    }
    /// The controller (id `usb`, bus `usb.0`).
    public var controller: Controller
    /// Devices on it.
    public var devices: [USBDevice]
    /// The names of ``devices``, index for index: device `i` with a name gets the id
    /// `usb-NAME` (``DeviceID/usb(_:)``), which hot-plug and unplug address; one without
    /// a name (or beyond this list) gets `usbI`.
    public var names: [String]

    /// Creates USB options.
    public init(controller: Controller = .xhci, devices: [USBDevice] = [], names: [String] = []) {
        self.controller = controller; self.devices = devices; self.names = names
    }

    private enum CodingKeys: String, CodingKey { case controller, devices, names }

    /// Decodes USB options; `names` may be absent (older encodings).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        controller = try c.decode(Controller.self, forKey: .controller)
        devices = try c.decode([USBDevice].self, forKey: .devices)
        names = try c.decodeIfPresent([String].self, forKey: .names) ?? []
    }

    /// The id of the tablet ``VMConfig/usbTablet`` adds (when ``devices`` has none): outside the
    /// `usb-NAME` scheme, so no named device can take it.
    public static let tabletID = "usbtablet"

    /// The guest device id of device `index`.
    func deviceID(_ index: Int) -> String {
        index < names.count ? DeviceID.usb(names[index]).rawValue : "usb\(index)"
    }
}

/// A USB device.
public enum USBDevice: Sendable, Codable, Equatable {
    /// An absolute pointer (`usb-tablet`).
    case tablet
    /// A keyboard (`usb-kbd`).
    case keyboard
    /// A relative mouse (`usb-mouse`).
    case mouse
    /// A host device by vendor and product id (`usb-host`).
    case host(vendorID: Int, productID: Int)
    /// A host device by bus and address (`usb-host`).
    case hostAddress(bus: Int, address: Int)
}

/// A virtio memory balloon (`virtio-balloon-pci`, id `balloon0`).
public struct Balloon: Sendable, Codable, Equatable {
    /// Lets the guest deflate the balloon when it runs out of memory.
    public var deflateOnOOM: Bool
    /// Free page reporting.
    public var freePageReporting: Bool

    /// Creates balloon options.
    public init(deflateOnOOM: Bool = false, freePageReporting: Bool = false) {
        self.deflateOnOOM = deflateOnOOM; self.freePageReporting = freePageReporting
    }
}

/// The real-time clock.
public struct RTC: Sendable, Codable, Equatable {
    /// What the clock starts from.
    public enum Base: Sendable, Codable, Equatable {
        /// UTC.
        case utc
        /// The host's local time (Windows guests).
        case localtime
        /// A fixed start, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`.
        case datetime(String)
    }
    /// The clock source.
    public enum Clock: String, Sendable, Codable, CaseIterable { case host, rt, vm }
    /// Lost-tick policy.
    public enum DriftFix: String, Sendable, Codable, CaseIterable { case none, slew }

    /// The start.
    public var base: Base
    /// The source.
    public var clock: Clock?
    /// The lost-tick policy.
    public var driftFix: DriftFix?

    /// Creates RTC options.
    public init(base: Base = .utc, clock: Clock? = nil, driftFix: DriftFix? = nil) {
        self.base = base; self.clock = clock; self.driftFix = driftFix
    }
}

/// A virtio random number generator (`virtio-rng-pci`, id `rng0-dev`) fed from a host file by an `rng-random`
/// object (id `rng0`), so the guest's entropy pool fills early (no boot stalls waiting for `getrandom`).
public struct RNG: Sendable, Codable, Equatable {
    /// The host file the entropy is read from (absolute path; default `/dev/urandom`, which never blocks).
    public var source: String

    /// Creates RNG options.
    public init(source: String = "/dev/urandom") { self.source = source }
}

/// A sound card and the host audio backend it plays through (`-audiodev` id `audio0`).
public struct Audio: Sendable, Codable, Equatable {
    /// Where the guest's sound goes on the host (`-audiodev driver=`). Which ones a QEMU binary has depends on
    /// its build and installed modules (`qemu-system-x86_64 -audiodev help`).
    public enum Backend: String, Sendable, Codable, CaseIterable {
        /// Nowhere: the card works, the sound is dropped.
        case none
        /// PulseAudio (`pa`).
        case pa
        /// PipeWire (`pipewire`; QEMU 8.1 and later).
        case pipewire
        /// ALSA (`alsa`).
        case alsa
        /// SDL (`sdl`).
        case sdl
        /// To the SPICE client (`spice`); needs ``Display/spice``.
        case spice
        /// Into a WAV file (`wav`), see ``Audio/wavPath``.
        case wav
    }

    /// The emulated sound card.
    public enum Model: String, Sendable, Codable, CaseIterable {
        /// Intel HD Audio: controller `intel-hda` (id `sound0`) with a `hda-duplex` codec (id `sound0-codec`).
        case hda
        /// `AC97` (id `sound0`), a PCI card.
        case ac97
        /// `sb16` (id `sound0`), an ISA card: needs a pc or q35 machine.
        case sb16
    }

    /// The host backend.
    public var backend: Backend
    /// The sound card.
    public var model: Model
    /// For ``Backend/wav``: the file to write (absolute path); `nil` means `audio0.wav` in the runtime directory.
    public var wavPath: String?

    /// Creates audio options.
    public init(backend: Backend = .none, model: Model = .hda, wavPath: String? = nil) {
        self.backend = backend; self.model = model; self.wavPath = wavPath
    }
}
