public import QMP

/// The guest's operating system, from `guest-get-osinfo`. Every member is optional in the agent's schema.
public struct GuestOSInfo: Sendable, Hashable {
    /// The distribution's id (`debian`), from os-release `ID`.
    public var id: String?
    /// The distribution's name (`Debian GNU/Linux`).
    public var name: String?
    /// The human name with version (`Debian GNU/Linux 12 (bookworm)`).
    public var prettyName: String?
    /// The version (`12 (bookworm)`).
    public var version: String?
    /// The version id (`12`).
    public var versionID: String?
    /// The kernel release (`uname -r`).
    public var kernelRelease: String?
    /// The kernel version (`uname -v`).
    public var kernelVersion: String?
    /// The machine (`x86_64`).
    public var machine: String?

    /// Reads the agent's object (unknown members are ignored).
    public init(_ value: JSONValue) {
        id = value["id"]?.stringValue
        name = value["name"]?.stringValue
        prettyName = value["pretty-name"]?.stringValue
        version = value["version"]?.stringValue
        versionID = value["version-id"]?.stringValue
        kernelRelease = value["kernel-release"]?.stringValue
        kernelVersion = value["kernel-version"]?.stringValue
        machine = value["machine"]?.stringValue
    }
}

/// One IP address of a guest interface.
public struct GuestIPAddress: Sendable, Hashable {
    /// The address (`10.0.2.15`, `fe80::…`).
    public var address: String
    /// `ipv4` or `ipv6`.
    public var type: String
    /// The prefix length.
    public var prefix: Int

    /// Creates an address.
    public init(address: String, type: String, prefix: Int) {
        self.address = address
        self.type = type
        self.prefix = prefix
    }
}

/// A guest network interface, from `guest-network-get-interfaces`.
public struct GuestNetworkInterface: Sendable, Hashable {
    /// The guest's name for it (`lo`, `enp0s2`).
    public var name: String
    /// Its MAC address, when it has one.
    public var hardwareAddress: String?
    /// Its addresses.
    public var ipAddresses: [GuestIPAddress]

    /// Reads the agent's object; `nil` when it has no name or a malformed address.
    public init?(_ value: JSONValue) {
        guard let name = value["name"]?.stringValue else { return nil }
        self.name = name
        hardwareAddress = value["hardware-address"]?.stringValue
        var addresses: [GuestIPAddress] = []
        for a in value["ip-addresses"]?.arrayValue ?? [] {
            guard let address = a["ip-address"]?.stringValue, let type = a["ip-address-type"]?.stringValue,
                  let prefix = a["prefix"]?.intValue else { return nil }
            addresses.append(GuestIPAddress(address: address, type: type, prefix: prefix))
        }
        ipAddresses = addresses
    }
}

/// A guest logical CPU, from `guest-get-vcpus` (and a change for `guest-set-vcpus`).
public struct GuestVCPU: Sendable, Hashable {
    /// The guest's logical CPU number.
    public var logicalID: Int
    /// Whether it is online.
    public var online: Bool
    /// Whether the guest can take it offline (`nil` in a change).
    public var canOffline: Bool?

    /// Creates a CPU state or a change.
    public init(logicalID: Int, online: Bool, canOffline: Bool? = nil) {
        self.logicalID = logicalID
        self.online = online
        self.canOffline = canOffline
    }

    /// Reads the agent's object; `nil` when a required member is missing.
    public init?(_ value: JSONValue) {
        guard let id = value["logical-id"]?.intValue, let online = value["online"]?.boolValue else { return nil }
        self.init(logicalID: id, online: online, canOffline: value["can-offline"]?.boolValue)
    }
}

/// A guest memory block, from `guest-get-memory-blocks` (and a change for `guest-set-memory-blocks`).
public struct GuestMemoryBlock: Sendable, Hashable {
    /// The block's physical index (its number in `/sys/devices/system/memory/memoryN`).
    public var physicalIndex: Int
    /// Whether it is online.
    public var online: Bool
    /// Whether the guest can take it offline (`nil` in a change).
    public var canOffline: Bool?

    /// Creates a block state or a change.
    public init(physicalIndex: Int, online: Bool, canOffline: Bool? = nil) {
        self.physicalIndex = physicalIndex
        self.online = online
        self.canOffline = canOffline
    }

    /// Reads the agent's object; `nil` when a required member is missing.
    public init?(_ value: JSONValue) {
        guard let index = value["phys-index"]?.intValue, let online = value["online"]?.boolValue else { return nil }
        self.init(physicalIndex: index, online: online, canOffline: value["can-offline"]?.boolValue)
    }
}

/// The guest's answer for one block of a `guest-set-memory-blocks` call.
public struct GuestMemoryBlockResponse: Sendable, Hashable {
    /// The block's physical index.
    public var physicalIndex: Int
    /// `success`, `not-found`, `operation-not-supported` or `operation-failed`.
    public var response: String
    /// The guest's errno for `operation-failed`.
    public var errorCode: Int?

    /// Whether the block is now as requested.
    public var succeeded: Bool { response == "success" }

    /// Reads the agent's object; `nil` when a required member is missing.
    public init?(_ value: JSONValue) {
        guard let index = value["phys-index"]?.intValue, let response = value["response"]?.stringValue else { return nil }
        physicalIndex = index
        self.response = response
        errorCode = value["error-code"]?.intValue
    }
}
