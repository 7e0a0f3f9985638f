/// A network interface: a guest NIC and its host back end (`-netdev`).
///
/// The device id is `net-NAME` and the netdev id `netdev-NAME`.
public struct Network: Sendable, Codable, Equatable {
    /// The name, unique among networks (`[a-z][a-z0-9-]*`, at most 24 characters).
    public var name: String
    /// The NIC model (default `virtio-net-pci`).
    public var model: String
    /// The MAC address; `nil` lets QEMU pick (which repeats across VMs: see ``MACAddress/derived(vmName:nicName:)``).
    public var mac: MACAddress?
    /// The host side.
    public var backend: NetworkBackend
    /// The firmware boot priority.
    public var bootIndex: Int?
    /// A fixed PCI slot; `nil` allocates one.
    public var pciSlot: Int?

    /// Creates a network interface.
    public init(name: String, model: String = "virtio-net-pci", mac: MACAddress? = nil, backend: NetworkBackend,
                bootIndex: Int? = nil, pciSlot: Int? = nil) {
        self.name = name; self.model = model; self.mac = mac; self.backend = backend; self.bootIndex = bootIndex
        self.pciSlot = pciSlot
    }
}

/// A MAC address, `xx:xx:xx:xx:xx:xx` (validated by ``VMConfig/problems()``).
public struct MACAddress: Sendable, Codable, Hashable, RawRepresentable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The text form.
    public var rawValue: String
    /// Wraps a text form (checked by validation, not here).
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Wraps a literal.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The text form.
    public var description: String { rawValue }
    /// Encodes as a plain string.
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    /// Decodes from a plain string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(rawValue)
    }

    /// Whether the text is six colon-separated hex pairs of a unicast address.
    public var isValid: Bool {
        let parts = rawValue.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else { return false }
        return UInt8(parts[0], radix: 16)! & 1 == 0
    }

    /// A stable address for a VM's NIC, in QEMU's `52:54:00` range, from a hash (FNV-1a) of both names.
    ///
    /// The same names always give the same address, so a second apply shows no churn, and different VMs on one
    /// bridge do not all get QEMU's `52:54:00:12:34:56`.
    public static func derived(vmName: String, nicName: String) -> MACAddress {
        var h: UInt32 = 2_166_136_261
        for b in "\(vmName)/\(nicName)".utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let b = [(h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff]
        return MACAddress(rawValue: "52:54:00:" + b.map { hex2(Int($0)) }.joined(separator: ":"))
    }
}

func hex2(_ v: Int) -> String {
    let s = String(v, radix: 16)
    return s.count == 1 ? "0" + s : s
}

/// The host side of a network interface.
public enum NetworkBackend: Sendable, Equatable, Codable {
    /// User-mode networking (slirp), with port forwards.
    case user(UserNetwork)
    /// A tap device.
    case tap(TapNetwork)
    /// A tap device on a bridge, made by `qemu-bridge-helper`.
    case bridge(BridgeNetwork)
    /// QEMU's socket transport (TCP listen/connect, UDP multicast).
    case socket(SocketNetwork)
    /// A stream socket (Unix or TCP), server or client.
    case stream(StreamNetwork)
    /// A VDE switch.
    case vde(VDENetwork)

    private struct Repr: Codable {
        var user: UserNetwork?, tap: TapNetwork?, bridge: BridgeNetwork?, socket: SocketNetwork?
        var stream: StreamNetwork?, vde: VDENetwork?
    }

    /// Decodes exactly one of `user`, `tap`, `bridge`, `socket`, `stream`, `vde`.
    public init(from decoder: any Decoder) throws {
        let r = try Repr(from: decoder)
        let all: [NetworkBackend] = [r.user.map(Self.user), r.tap.map(Self.tap), r.bridge.map(Self.bridge),
                                     r.socket.map(Self.socket), r.stream.map(Self.stream), r.vde.map(Self.vde)]
            .compactMap { $0 }
        guard all.count == 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "a network backend has exactly one of user, tap, bridge, socket, stream, vde"))
        }
        self = all[0]
    }

    /// Encodes as a one-key object named after the case.
    public func encode(to encoder: any Encoder) throws {
        var r = Repr()
        switch self {
        case .user(let v): r.user = v
        case .tap(let v): r.tap = v
        case .bridge(let v): r.bridge = v
        case .socket(let v): r.socket = v
        case .stream(let v): r.stream = v
        case .vde(let v): r.vde = v
        }
        try r.encode(to: encoder)
    }
}

/// User-mode (slirp) networking.
public struct UserNetwork: Sendable, Codable, Equatable {
    /// The guest network, `a.b.c.d/len` (QEMU's default 10.0.2.0/24).
    public var net: String?
    /// The host's address as the guest sees it.
    public var host: String?
    /// The DNS server address the guest sees.
    public var dns: String?
    /// The first DHCP address handed out.
    public var dhcpStart: String?
    /// Isolates the guest from the host and outside (`restrict=on`).
    public var restrict: Bool
    /// Host-to-guest port forwards.
    public var hostForwards: [HostForward]
    /// The host name the built-in DHCP server gives the guest (`hostname`).
    public var hostname: String?
    /// The DNS search domain the built-in DHCP server gives the guest (`domainname`).
    public var domainName: String?

    /// Creates user-mode options.
    public init(net: String? = nil, host: String? = nil, dns: String? = nil, dhcpStart: String? = nil,
                restrict: Bool = false, hostForwards: [HostForward] = [], hostname: String? = nil,
                domainName: String? = nil) {
        self.net = net; self.host = host; self.dns = dns; self.dhcpStart = dhcpStart; self.restrict = restrict
        self.hostForwards = hostForwards; self.hostname = hostname; self.domainName = domainName
    }
}

/// A user-mode port forward, rendered as QEMU's `tcp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT`.
public struct HostForward: Sendable, Codable, Equatable {
    /// TCP or UDP.
    public enum Proto: String, Sendable, Codable { case tcp, udp }
    /// The protocol.
    public var proto: Proto
    /// The host address to bind (`nil`: all).
    public var hostAddress: String?
    /// The host port.
    public var hostPort: Int
    /// The guest address (`nil`: the first DHCP address).
    public var guestAddress: String?
    /// The guest port.
    public var guestPort: Int

    /// Creates a forward.
    public init(proto: Proto = .tcp, hostAddress: String? = nil, hostPort: Int, guestAddress: String? = nil,
                guestPort: Int) {
        self.proto = proto; self.hostAddress = hostAddress; self.hostPort = hostPort
        self.guestAddress = guestAddress; self.guestPort = guestPort
    }

    /// A TCP forward.
    public static func tcp(hostAddress: String? = nil, hostPort: Int, guestPort: Int) -> HostForward {
        HostForward(proto: .tcp, hostAddress: hostAddress, hostPort: hostPort, guestPort: guestPort)
    }

    /// QEMU's text form.
    public var qemuString: String {
        "\(proto.rawValue):\(hostAddress ?? ""):\(hostPort)-\(guestAddress ?? ""):\(guestPort)"
    }
}

/// A tap device.
public struct TapNetwork: Sendable, Codable, Equatable {
    /// The interface name (at most 15 characters); `nil` lets the kernel choose.
    public var ifname: String?
    /// The script run when the interface comes up (absolute path); `nil` runs none (`no`), unlike QEMU's
    /// default of `/etc/qemu-ifup`.
    public var script: String?
    /// The script run when it goes down; `nil` runs none.
    public var downscript: String?
    /// Uses vhost-net.
    public var vhost: Bool?
    /// Multiqueue: number of queue pairs.
    public var queues: Int?

    /// Creates tap options.
    public init(ifname: String? = nil, script: String? = nil, downscript: String? = nil, vhost: Bool? = nil,
                queues: Int? = nil) {
        self.ifname = ifname; self.script = script; self.downscript = downscript; self.vhost = vhost
        self.queues = queues
    }
}

/// A tap device added to a host bridge by `qemu-bridge-helper`.
public struct BridgeNetwork: Sendable, Codable, Equatable {
    /// The bridge (e.g. `br0`); it must be allowed in `/etc/qemu/bridge.conf`.
    public var bridge: String
    /// The helper (absolute path); `nil` is QEMU's built-in default.
    public var helper: String?

    /// Creates bridge options.
    public init(bridge: String, helper: String? = nil) { self.bridge = bridge; self.helper = helper }
}

/// QEMU's `socket` netdev: TCP listen or connect, or UDP multicast. (It has no Unix sockets: use ``StreamNetwork``.)
public struct SocketNetwork: Sendable, Codable, Equatable {
    /// The mode.
    public enum Mode: Sendable, Codable, Equatable {
        /// Listen on `host:port` (empty host: all).
        case listen(host: String, port: Int)
        /// Connect to `host:port`.
        case connect(host: String, port: Int)
        /// Join multicast group `address:port`.
        case multicast(address: String, port: Int)
    }
    /// The mode.
    public var mode: Mode
    /// Creates socket options.
    public init(_ mode: Mode) { self.mode = mode }
}

/// QEMU's `stream` netdev: a Unix or TCP stream socket.
public struct StreamNetwork: Sendable, Codable, Equatable {
    /// The address.
    public enum Address: Sendable, Codable, Equatable {
        /// A Unix socket (absolute path).
        case unix(path: String)
        /// A TCP host and port.
        case inet(host: String, port: Int)
    }
    /// The address.
    public var address: Address
    /// Listens (`true`) or connects (`false`).
    public var server: Bool

    /// Creates stream options. (QEMU 7.2 has no `reconnect` for it.)
    public init(address: Address, server: Bool) { self.address = address; self.server = server }
}

/// A VDE switch port.
public struct VDENetwork: Sendable, Codable, Equatable {
    /// The switch's socket directory (absolute path).
    public var socket: String
    /// The switch port.
    public var port: Int?
    /// The group owning the port.
    public var group: String?
    /// The port's permission bits.
    public var mode: Int?

    /// Creates VDE options.
    public init(socket: String, port: Int? = nil, group: String? = nil, mode: Int? = nil) {
        self.socket = socket; self.port = port; self.group = group; self.mode = mode
    }
}
