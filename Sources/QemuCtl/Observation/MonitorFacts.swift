public import QMP

// MARK: - MonitorFacts

/// What `qemuctl import` reads of a running QEMU over QMP, typed: the facts a manifest is
/// written from where QEMU reports them (the rest comes from its command line).
public struct MonitorFacts: Sendable {
    /// One block device (`query-block`).
    public struct Block: Sendable {
        /// The legacy drive name (`device`); empty or nil for `-blockdev` disks.
        public var device: String?
        /// The guest device: an id or a QOM path; nil when no guest device uses it.
        public var qdev: String?
        /// The medium, nil for an empty drive.
        public var inserted: Inserted?
    }

    /// A block device's medium.
    public struct Inserted: Sendable {
        /// The top node's name.
        public var nodeName: String?
        /// The image's file name.
        public var file: String?
        /// The format driver (`drv`: raw, qcow2, …).
        public var format: String?
        /// The backing file the image names, if any (resolved against the image's directory when QEMU says so).
        public var backingFile: String?
        /// The backing file's format: the driver QEMU opened it with, else the one the image's header records.
        public var backingFormat: String?
        /// Whether the backing file names a backing file of its own (a chain deeper than one).
        public var backingHasBacking: Bool
        /// Opened read-only.
        public var readOnly: Bool
        /// `cache.direct`.
        public var cacheDirect: Bool
        /// `cache.no-flush`.
        public var cacheNoFlush: Bool
        /// `discard` is `unmap`.
        public var discardUnmap: Bool
        /// The block backend's I/O limits by QEMU's `query-block` key (`bps`, `iops_rd`, `bps_max_length`, …), the non-zero ones.
        public var throttle: [String: Int]
    }

    /// The run state as `query-status` says it.
    public var status: String
    /// `query-name`, if set.
    public var name: String?
    /// `query-uuid`.
    public var uuid: String
    /// Whether KVM is enabled (`query-kvm`).
    public var kvm: Bool
    /// vCPUs present.
    public var vcpus: Int
    /// Boot RAM in bytes (`base-memory`).
    public var baseMemory: Int
    /// How many VNC servers run (`query-vnc-servers`).
    public var vncServers: Int
    /// Block devices, in QEMU's order.
    public var blocks: [Block]
    /// The slot of each device with an id on the root PCI bus (`query-pci`, bus 0), by its id.
    public var pciSlots: [String: Int] = [:]
}

extension Instance {
    /// Reads ``MonitorFacts``. The corresponding QMP commands are `query-status`, `query-name`,
    /// `query-uuid`, `query-kvm`, `query-cpus-fast`, `query-memory-size-summary`, `query-block`,
    /// `query-vnc-servers` and `query-pci`.
    public func facts(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> MonitorFacts {
        func q(_ command: String) async throws(InstanceError) -> JSONValue {
            do { return try await qmp.execute(command, timeout: timeout) } catch {
                throw InstanceError.from(error, doing: "\(command) on VM \(name)")
            }
        }
        let status = try await q("query-status")["status"]?.stringValue ?? "unknown"
        let qemuName = try await q("query-name")["name"]?.stringValue
        let uuid = try await q("query-uuid")["UUID"]?.stringValue ?? ""
        let kvm = try await q("query-kvm")["enabled"]?.boolValue == true
        let cpus = try await q("query-cpus-fast").arrayValue?.count ?? 1
        let memory = try await q("query-memory-size-summary")["base-memory"]?.intValue ?? 0
        let blocks = try await q("query-block").arrayValue ?? []
        let vnc = try await q("query-vnc-servers").arrayValue?.count ?? 0
        var pciSlots: [String: Int] = [:]
        for bus in try await q("query-pci").arrayValue ?? [] where bus["bus"]?.intValue == 0 {
            for d in bus["devices"]?.arrayValue ?? [] {
                if let id = d["qdev_id"]?.stringValue, !id.isEmpty, let slot = d["slot"]?.intValue { pciSlots[id] = slot }
            }
        }
        let throttleKeys = ["bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "bps_max", "bps_rd_max", "bps_wr_max",
                            "iops_max", "iops_rd_max", "iops_wr_max", "iops_size", "bps_max_length", "iops_max_length"]
        return MonitorFacts(
            status: status, name: qemuName, uuid: uuid, kvm: kvm, vcpus: cpus, baseMemory: memory, vncServers: vnc,
            blocks: blocks.map { b in
                MonitorFacts.Block(device: b["device"]?.stringValue, qdev: b["qdev"]?.stringValue, inserted: b["inserted"].map { i in
                    var throttle: [String: Int] = [:]
                    for key in throttleKeys { if let v = i[key]?.intValue, v > 0 { throttle[key] = v } }
                    return MonitorFacts.Inserted(
                        nodeName: i["node-name"]?.stringValue, file: i["file"]?.stringValue, format: i["drv"]?.stringValue,
                        backingFile: (i["image"]?["full-backing-filename"] ?? i["image"]?["backing-filename"])?.stringValue,
                        backingFormat: (i["image"]?["backing-image"]?["format"] ?? i["image"]?["backing-filename-format"])?.stringValue,
                        backingHasBacking: i["image"]?["backing-image"]?["backing-filename"] != nil,
                        readOnly: i["ro"]?.boolValue == true,
                        cacheDirect: i["cache"]?["direct"]?.boolValue ?? false, cacheNoFlush: i["cache"]?["no-flush"]?.boolValue ?? false,
                        discardUnmap: i["discard"]?.stringValue == "unmap", throttle: throttle)
                })
            }, pciSlots: pciSlots)
    }

    /// A QOM property's string value (`qom-get`); nil when QEMU has no such property or it is not a string.
    public func qomString(path: String, property: String, timeout: Duration = QMPClient.defaultTimeout) async -> String? {
        (try? await qmp.execute("qom-get", arguments: ["path": .string(path), "property": .string(property)], timeout: timeout))?.stringValue
    }
}

extension QEMUCommandLineReader {
    /// The properties of a JSON-valued option (`-device {"driver":…}`), as text (`on`/`off` for
    /// booleans), sorted by key; nil when `value` is not a JSON object.
    package static func jsonProperties(_ value: String) -> [(key: String, value: String)]? {
        guard value.hasPrefix("{"), let json = try? JSONValue(parsing: value), case .object(let o) = json else { return nil }
        return o.map { kv -> (key: String, value: String) in
            let text: String = switch kv.value {
            case .string(let s): s
            case .bool(let b): b ? "on" : "off"
            case .int(let i): String(i)
            default: "\(kv.value)"
            }
            return (kv.key, text)
        }.sorted { $0.key < $1.key }
    }
}
