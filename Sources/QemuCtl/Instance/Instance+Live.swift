public import QMP

// MARK: - Live operations

/// The operations a live change of a running VM is made of, each one typed, so that callers
/// above `QemuCtl` never spell a QMP command.
///
/// Devices are addressed by the id QEMU knows them by: ``DeviceID/rawValue`` for a VM qemuctl
/// launched, the original id for an adopted one.
extension Instance {
    /// Sets a NIC's link up or down. The corresponding QMP command is `set_link`.
    public func setLink(device: String, up: Bool, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.execute("set_link", arguments: ["name": .string(device), "up": .bool(up)], timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "setting the link of \(device) of VM \(name) \(up ? "up" : "down")")
        }
    }

    /// Inserts the raw image `file` (read-only) into CD-ROM drive `device`, replacing its media.
    /// The corresponding QMP command is `blockdev-change-medium`.
    public func changeMedia(device: String, file: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.execute("blockdev-change-medium", arguments: [
                "id": .string(device), "filename": .string(file), "format": "raw", "read-only-mode": "read-only",
            ], timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "changing the media of \(device) of VM \(name)")
        }
    }

    /// Ejects the media of CD-ROM drive `device` (forced: the guest's lock is ignored).
    /// The corresponding QMP command is `eject`.
    public func ejectMedia(device: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.execute("eject", arguments: ["id": .string(device), "force": true], timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "ejecting the media of \(device) of VM \(name)")
        }
    }

    /// The media of the CD-ROM drive `device`: the image's file name, nil when empty.
    /// - Throws: ``InstanceError`` with code `notFound` when the VM has no such drive.
    /// The corresponding QMP command is `query-block`.
    public func media(device: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> String? {
        let blocks = try await blockDevices(timeout: timeout)
        guard let block = blocks.first(where: { $0.qdev.map { Self.names($0, device) } == true }) else {
            throw InstanceError(code: .notFound, message: "VM \(name) has no drive \(device)")
        }
        return block.inserted?.file
    }

    /// Sets the I/O limits of the disk whose guest device is `device`, where they live: in its
    /// throttle group `group` (``DiskIDs/throttleGroup``) when the disk was launched with one (limits
    /// set on the block backend by hand are then cleared), else on the block backend. nil clears.
    ///
    /// - Returns: The limits QEMU reports afterwards (``diskThrottle(device:group:timeout:)``).
    /// The corresponding QMP commands are `qom-set` (the group's `limits`) and `block_set_io_throttle`.
    public func setDiskThrottle(_ limits: Throttle?, device: String, group: String,
                                timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Throttle? {
        let block = try await blockDevice(device, timeout: timeout)
        do {
            if block.hasThrottleGroup {
                try await qmp.execute("qom-set", arguments: [
                    "path": .string(ThrottleLimits.objectPath(group)), "property": "limits",
                    "value": ThrottleLimits.groupLimits(limits)], timeout: timeout)
                if block.inserted.map({ !$0.throttle.isUnlimited }) == true {
                    try await qmp.setIOThrottle(qdevID: block.qdev ?? device, QMPIOThrottle(), timeout: timeout)
                }
            } else {
                try await qmp.setIOThrottle(qdevID: block.qdev ?? device, ThrottleLimits.qmp(limits), timeout: timeout)
            }
        } catch {
            throw InstanceError.from(error, doing: "setting the I/O limits of \(device) of VM \(name)")
        }
        return try await diskThrottle(device: device, group: group, timeout: timeout)
    }

    /// The I/O limits in force on the disk whose guest device is `device`: those set on its block
    /// backend, else those of its throttle group `group`; nil when unlimited.
    /// The corresponding QMP commands are `query-block` and `qom-get`.
    public func diskThrottle(device: String, group: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Throttle? {
        let block = try await blockDevice(device, timeout: timeout)
        if let backend = block.inserted?.throttle, !backend.isUnlimited { return ThrottleLimits.throttle(backend) }
        guard block.hasThrottleGroup else { return nil }
        do {
            let reply = try await qmp.execute("qom-get", arguments: [
                "path": .string(ThrottleLimits.objectPath(group)), "property": "limits"], timeout: timeout)
            return ThrottleLimits.throttle(ThrottleLimits.fromGroup(reply))
        } catch {
            throw InstanceError.from(error, doing: "reading the limits of throttle group \(group) of VM \(name)")
        }
    }

    /// Whether the VM has a block device attached to guest device `device`.
    /// The corresponding QMP command is `query-block`.
    public func hasBlockDevice(_ device: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Bool {
        try await blockDevices(timeout: timeout).contains { $0.qdev.map { Self.names($0, device) } == true }
    }

    /// The number of vCPUs present. The corresponding QMP command is `query-cpus-fast`.
    public func vcpuCount(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Int {
        do { return try await qmp.execute("query-cpus-fast", timeout: timeout).arrayValue?.count ?? 0 } catch {
            throw InstanceError.from(error, doing: "query-cpus-fast on VM \(name)")
        }
    }

    /// Guest RAM in bytes: boot RAM plus hot-plugged DIMMs.
    /// The corresponding QMP command is `query-memory-size-summary`.
    public func memorySize(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> UInt64 {
        do {
            let summary = try await qmp.execute("query-memory-size-summary", timeout: timeout)
            return MemoryDIMMs.total(summary: summary)
        } catch {
            throw InstanceError.from(error, doing: "query-memory-size-summary on VM \(name)")
        }
    }

    /// The lowest SCSI id no device on `scsi0` uses.
    /// The corresponding QMP commands are `qom-list` and `qom-get`.
    public func freeSCSIID(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Int {
        var used: Set<Int> = []
        do {
            let children = try await qmp.execute("qom-list", arguments: ["path": "/machine/peripheral"], timeout: timeout)
            for child in children.arrayValue ?? [] {
                guard let type = child["type"]?.stringValue, type == "child<scsi-hd>" || type == "child<scsi-cd>",
                      let id = child["name"]?.stringValue else { continue }
                let value = try await qmp.execute("qom-get", arguments: [
                    "path": .string("/machine/peripheral/\(id)"), "property": "scsi-id"], timeout: timeout)
                if let n = value.intValue { used.insert(n) }
            }
        } catch {
            throw InstanceError.from(error, doing: "listing the SCSI devices of VM \(name)")
        }
        guard let free = (0..<256).first(where: { !used.contains($0) }) else {
            throw InstanceError(code: .unsupported, message: "VM \(name): no free SCSI id on scsi0")
        }
        return free
    }

    /// Whether the VM has a device with id `device` (plugged at launch or later).
    /// The corresponding QMP command is `qom-list` on `/machine/peripheral`.
    public func hasDevice(_ device: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Bool {
        do {
            let children = try await qmp.execute("qom-list", arguments: ["path": "/machine/peripheral"], timeout: timeout)
            return (children.arrayValue ?? []).contains { $0["name"]?.stringValue == device }
        } catch {
            throw InstanceError.from(error, doing: "listing the devices of VM \(name)")
        }
    }

    /// The ids of the devices plugged into a hot-plug root port (``QEMUCommandLine/hotplugPorts``):
    /// the ones added after launch. The corresponding QMP command is `query-pci`.
    public func devicesOnHotplugPorts(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Set<String> {
        do { return PCIDevices(queryPCI: try await qmp.execute("query-pci", timeout: timeout)).onHotplugPorts } catch {
            throw InstanceError.from(error, doing: "query-pci on VM \(name)")
        }
    }

    /// The block device whose `qdev` names `device`.
    private func blockDevice(_ device: String, timeout: Duration) async throws(InstanceError) -> QMPBlockDevice {
        let blocks = try await blockDevices(timeout: timeout)
        guard let block = blocks.first(where: { $0.qdev.map { Self.names($0, device) } == true }) else {
            throw InstanceError(code: .notFound, message: "VM \(name) has no disk \(device) (devices: \(blocks.compactMap(\.qdev).joined(separator: ", ")))")
        }
        return block
    }

    /// Whether `qdev` (an id or a QOM path) names `device`.
    static func names(_ qdev: String, _ device: String) -> Bool {
        qdev == device || qdev.split(separator: "/").contains { $0 == device }
    }
}

// MARK: - ThrottleLimits

/// Conversions between ``Throttle`` and what QEMU reports and takes: a block backend's
/// `block_set_io_throttle` values and a `throttle-group` object's `limits`.
public enum ThrottleLimits: Sendable {
    /// The QOM path of throttle group object `id` (`tg-NAME`).
    public static func objectPath(_ id: String) -> String { "/objects/\(id)" }

    /// A group's `limits` (`qom-get`) as backend values.
    public static func fromGroup(_ json: JSONValue) -> QMPIOThrottle {
        func v(_ key: String) -> Int { json[key]?.intValue ?? 0 }
        let maxKeys = ["bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write"]
        let length = maxKeys.first { v($0 + "-max") > 0 }.map { v($0 + "-max-length") } ?? 1
        return QMPIOThrottle(
            bps: v("bps-total"), bpsRead: v("bps-read"), bpsWrite: v("bps-write"),
            iops: v("iops-total"), iopsRead: v("iops-read"), iopsWrite: v("iops-write"),
            bpsMax: v("bps-total-max"), iopsMax: v("iops-total-max"), bpsReadMax: v("bps-read-max"),
            bpsWriteMax: v("bps-write-max"), iopsReadMax: v("iops-read-max"), iopsWriteMax: v("iops-write-max"),
            iopsSize: v("iops-size"), burstLength: max(1, length))
    }

    /// Backend values as ``Throttle``; nil when unlimited. One burst length (the first set) stands for all.
    public static func throttle(_ t: QMPIOThrottle) -> Throttle? {
        guard !t.isUnlimited else { return nil }
        func v(_ x: Int) -> Int? { x > 0 ? x : nil }
        var m = Throttle(bpsTotal: v(t.bps), bpsRead: v(t.bpsRead), bpsWrite: v(t.bpsWrite), iopsTotal: v(t.iops),
                         iopsRead: v(t.iopsRead), iopsWrite: v(t.iopsWrite), bpsTotalMax: v(t.bpsMax),
                         bpsReadMax: v(t.bpsReadMax), bpsWriteMax: v(t.bpsWriteMax), iopsTotalMax: v(t.iopsMax),
                         iopsReadMax: v(t.iopsReadMax), iopsWriteMax: v(t.iopsWriteMax), iopsSize: v(t.iopsSize))
        let length = max(1, t.burstLength)
        if m.bpsTotalMax != nil { m.bpsTotalMaxLength = length }
        if m.bpsReadMax != nil { m.bpsReadMaxLength = length }
        if m.bpsWriteMax != nil { m.bpsWriteMaxLength = length }
        if m.iopsTotalMax != nil { m.iopsTotalMaxLength = length }
        if m.iopsReadMax != nil { m.iopsReadMaxLength = length }
        if m.iopsWriteMax != nil { m.iopsWriteMaxLength = length }
        return m
    }

    /// ``Throttle`` as backend values (`block_set_io_throttle`); nil is all zero (unlimited).
    public static func qmp(_ t: Throttle?) -> QMPIOThrottle {
        guard let t else { return QMPIOThrottle() }
        let lengths = [t.bpsTotalMaxLength, t.bpsReadMaxLength, t.bpsWriteMaxLength,
                       t.iopsTotalMaxLength, t.iopsReadMaxLength, t.iopsWriteMaxLength]
        return QMPIOThrottle(
            bps: t.bpsTotal ?? 0, bpsRead: t.bpsRead ?? 0, bpsWrite: t.bpsWrite ?? 0, iops: t.iopsTotal ?? 0,
            iopsRead: t.iopsRead ?? 0, iopsWrite: t.iopsWrite ?? 0, bpsMax: t.bpsTotalMax ?? 0, iopsMax: t.iopsTotalMax ?? 0,
            bpsReadMax: t.bpsReadMax ?? 0, bpsWriteMax: t.bpsWriteMax ?? 0, iopsReadMax: t.iopsReadMax ?? 0,
            iopsWriteMax: t.iopsWriteMax ?? 0, iopsSize: t.iopsSize ?? 0,
            burstLength: lengths.compactMap { $0 }.first ?? 1)
    }

    /// ``Throttle`` as a group's `limits` for `qom-set`: every key present (zero clears), burst
    /// lengths 1 where no burst is set.
    public static func groupLimits(_ t: Throttle?) -> JSONValue {
        let q = qmp(t)
        let pairs: [(String, Int)] = [
            ("bps-total", q.bps), ("bps-read", q.bpsRead), ("bps-write", q.bpsWrite),
            ("iops-total", q.iops), ("iops-read", q.iopsRead), ("iops-write", q.iopsWrite),
            ("bps-total-max", q.bpsMax), ("bps-read-max", q.bpsReadMax), ("bps-write-max", q.bpsWriteMax),
            ("iops-total-max", q.iopsMax), ("iops-read-max", q.iopsReadMax), ("iops-write-max", q.iopsWriteMax),
            ("iops-size", q.iopsSize),
        ]
        var object: [String: JSONValue] = [:]
        for (key, value) in pairs {
            object[key] = .int(value)
            if key.hasSuffix("-max") { object[key + "-length"] = .int(value > 0 ? max(1, q.burstLength) : 1) }
        }
        return .object(object)
    }
}

extension QMPBlockDevice {
    /// Whether the disk was launched behind a throttle filter node (its limits live in a group).
    public var hasThrottleGroup: Bool { inserted?.driver == "throttle" }
}

// MARK: - MemoryDIMMs

/// The rule for changing guest RAM live, shared by the applier (``Instance/setMemorySize(_:wait:timeout:)``)
/// and by whoever plans a change (so that a plan never promises a shrink the VM cannot make).
public enum MemoryDIMMs: Sendable {
    /// Boot RAM plus hot-plugged RAM from a `query-memory-size-summary` reply.
    public static func total(summary: JSONValue) -> UInt64 {
        UInt64(max(0, summary["base-memory"]?.intValue ?? 0)) + UInt64(max(0, summary["plugged-memory"]?.intValue ?? 0))
    }

    /// Which hot-plugged DIMMs (by index into `sizes`) to unplug to shrink RAM by `bytes`: the
    /// largest first, each taken while it fits; nil when they cannot add up to exactly `bytes`
    /// (RAM shrinks live only by whole hot-plugged DIMMs).
    public static func toRemove(sizes: [UInt64], shrinkBy bytes: UInt64) -> [Int]? {
        var left = bytes
        var chosen: [Int] = []
        for (i, size) in sizes.enumerated().sorted(by: { ($0.element, $1.offset) > ($1.element, $0.offset) }) where size <= left {
            chosen.append(i)
            left -= size
        }
        return left == 0 ? chosen : nil
    }

    /// The sizes of the hot-plugged DIMMs in a `query-memory-devices` reply, in QEMU's order.
    public static func sizes(queryMemoryDevices reply: JSONValue) -> [UInt64] {
        (reply.arrayValue ?? []).compactMap { d in d["data"]?["size"]?.intValue.map { UInt64(max(0, $0)) } }
    }
}

// MARK: - PCIDevices

/// What a `query-pci` reply says about a VM's devices.
public struct PCIDevices: Sendable, Hashable {
    /// Every device id (`qdev_id`), at any depth.
    public var ids: Set<String>
    /// The ids of devices plugged into a `hotplugN` root port: the ones added after launch.
    public var onHotplugPorts: Set<String>
    /// The `hotplugN` root ports with nothing plugged in, in port order.
    public var freeHotplugPorts: [String]

    /// Reads a `query-pci` reply.
    public init(queryPCI reply: JSONValue) {
        var ids: Set<String> = []
        var onPorts: Set<String> = []
        func walk(_ devices: [JSONValue], port: Bool) {
            for d in devices {
                let id = d["qdev_id"]?.stringValue ?? ""
                if !id.isEmpty {
                    ids.insert(id)
                    if port { onPorts.insert(id) }
                }
                walk(d["pci_bridge"]?["devices"]?.arrayValue ?? [], port: id.hasPrefix("hotplug"))
            }
        }
        for bus in reply.arrayValue ?? [] { walk(bus["devices"]?.arrayValue ?? [], port: false) }
        self.ids = ids
        onHotplugPorts = onPorts
        freeHotplugPorts = Instance.freeHotplugPorts(queryPCI: reply)
    }
}
