// MARK: - DeviceID

/// The id qemuctl gives a guest device it names after a manifest entry: `disk-NAME`,
/// `cd-NAME`, `net-NAME` or `usb-NAME`.
///
/// The one home of that scheme: the command line, hot-plug, observation and the live
/// changes all build and parse ids through it.
///
/// ```swift
/// DeviceID.disk("data").rawValue                      // "disk-data"
/// DeviceID.find(in: "/machine/peripheral/disk-data/virtio-backend")  // .disk("data")
/// ```
public struct DeviceID: Sendable, Hashable, CustomStringConvertible {
    /// What kind of device the id names.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A disk (`disk-`).
        case disk
        /// A CD-ROM drive (`cd-`).
        case cdrom = "cd"
        /// A NIC (`net-`).
        case network = "net"
        /// A USB device (`usb-`).
        case usb
    }

    /// What kind of device.
    public var kind: Kind
    /// The manifest's name of the device.
    public var name: String

    /// Creates the id of device `name` of kind `kind`.
    public init(_ kind: Kind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    /// `disk-NAME`.
    public static func disk(_ name: String) -> DeviceID { DeviceID(.disk, name) }
    /// `cd-NAME`.
    public static func cdrom(_ name: String) -> DeviceID { DeviceID(.cdrom, name) }
    /// `net-NAME`.
    public static func network(_ name: String) -> DeviceID { DeviceID(.network, name) }
    /// `usb-NAME`.
    public static func usb(_ name: String) -> DeviceID { DeviceID(.usb, name) }

    /// Parses `disk-NAME`, `cd-NAME`, `net-NAME` or `usb-NAME`; nil for any other id.
    public init?(rawValue: some StringProtocol) {
        for kind in Kind.allCases {
            let prefix = kind.rawValue + "-"
            if rawValue.hasPrefix(prefix), rawValue.count > prefix.count {
                self.init(kind, String(rawValue.dropFirst(prefix.count)))
                return
            }
        }
        return nil
    }

    /// The id as QEMU knows it.
    public var rawValue: String { "\(kind.rawValue)-\(name)" }

    /// The id.
    public var description: String { rawValue }

    /// The first component of `qdev` (a device id, or a QOM path such as
    /// `/machine/peripheral/disk-data/virtio-backend` as `query-block` reports it) that is
    /// an id of `kind` (any kind when nil).
    public static func find(in qdev: String, kind: Kind? = nil) -> DeviceID? {
        for component in qdev.split(separator: "/") {
            if let id = DeviceID(rawValue: component), kind == nil || id.kind == kind { return id }
        }
        return nil
    }

    /// Whether `qdev` (an id or a QOM path) names this device.
    public func isNamed(by qdev: String) -> Bool {
        qdev.split(separator: "/").contains { $0 == rawValue }
    }
}
