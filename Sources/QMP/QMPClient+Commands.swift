// Typed wrappers over `execute` for the commands the library uses.

/// The run status of a VM, from `query-status`.
public struct QMPRunStatus: Sendable, Hashable {
    /// QEMU's run state, e.g. `running`, `paused`, `prelaunch`, `shutdown`, `guest-panicked`.
    public var status: String
    /// Whether the vCPUs are running.
    public var running: Bool
}

/// One block device, from `query-block`.
public struct QMPBlockDevice: Sendable, Hashable {
    /// The legacy device name (empty for devices created with `-blockdev`/`-device`).
    public var device: String
    /// The qdev id or QOM path of the guest device, when there is one.
    public var qdev: String?
    /// Whether the device can hold removable media (CD-ROMs).
    public var removable: Bool
    /// Whether the tray is open, for removable devices.
    public var trayOpen: Bool?
    /// The inserted medium, if any.
    public var inserted: Inserted?

    /// The medium inserted in a block device.
    public struct Inserted: Sendable, Hashable {
        /// The node name of the top block node.
        public var nodeName: String?
        /// The image file name.
        public var file: String
        /// The format driver (`qcow2`, `raw`, …).
        public var driver: String
        /// Whether the medium is read-only.
        public var readOnly: Bool
        /// The I/O throttle in force (all zero when none).
        public var throttle: QMPIOThrottle
    }
}

/// I/O limits of a block device; zero means "no limit".
public struct QMPIOThrottle: Sendable, Hashable {
    /// Total bytes per second.
    public var bps: Int = 0
    /// Read bytes per second.
    public var bpsRead: Int = 0
    /// Write bytes per second.
    public var bpsWrite: Int = 0
    /// Total I/O operations per second.
    public var iops: Int = 0
    /// Read operations per second.
    public var iopsRead: Int = 0
    /// Write operations per second.
    public var iopsWrite: Int = 0
    /// Burst: total bytes per second.
    public var bpsMax: Int = 0
    /// Burst: total operations per second.
    public var iopsMax: Int = 0
    /// Burst: read bytes per second.
    public var bpsReadMax: Int = 0
    /// Burst: write bytes per second.
    public var bpsWriteMax: Int = 0
    /// Burst: read operations per second.
    public var iopsReadMax: Int = 0
    /// Burst: write operations per second.
    public var iopsWriteMax: Int = 0
    /// Bytes that count as one operation (0: every request is one).
    public var iopsSize: Int = 0
    /// How many seconds a burst may last (QEMU's `*_max_length`, at least 1).
    public var burstLength: Int = 1

    /// Creates limits; omitted values are zero (unlimited), the burst length one second.
    public init(bps: Int = 0, bpsRead: Int = 0, bpsWrite: Int = 0, iops: Int = 0, iopsRead: Int = 0,
                iopsWrite: Int = 0, bpsMax: Int = 0, iopsMax: Int = 0, bpsReadMax: Int = 0, bpsWriteMax: Int = 0,
                iopsReadMax: Int = 0, iopsWriteMax: Int = 0, iopsSize: Int = 0, burstLength: Int = 1) {
        self.bps = bps
        self.bpsRead = bpsRead
        self.bpsWrite = bpsWrite
        self.iops = iops
        self.iopsRead = iopsRead
        self.iopsWrite = iopsWrite
        self.bpsMax = bpsMax
        self.iopsMax = iopsMax
        self.bpsReadMax = bpsReadMax
        self.bpsWriteMax = bpsWriteMax
        self.iopsReadMax = iopsReadMax
        self.iopsWriteMax = iopsWriteMax
        self.iopsSize = iopsSize
        self.burstLength = max(1, burstLength)
    }

    /// Whether every limit is zero.
    public var isUnlimited: Bool {
        [bps, bpsRead, bpsWrite, iops, iopsRead, iopsWrite, bpsMax, iopsMax, bpsReadMax, bpsWriteMax, iopsReadMax, iopsWriteMax]
            .allSatisfy { $0 == 0 }
    }
}

extension QMPRunStatus {
    /// Reads a `query-status` reply.
    package init(reply r: JSONValue) throws(QMPError) {
        guard let status = r["status"]?.stringValue else {
            throw QMPError(code: .protocolViolation, command: "query-status", message: "reply has no status: \(r)")
        }
        self.init(status: status, running: r["running"]?.boolValue ?? false)
    }
}

extension QMPBlockDevice {
    /// Reads a `query-block` reply.
    package static func list(reply r: JSONValue) -> [QMPBlockDevice] {
        (r.arrayValue ?? []).map { d in
            let inserted = d["inserted"].map { i in
                QMPBlockDevice.Inserted(
                    nodeName: i["node-name"]?.stringValue,
                    file: i["file"]?.stringValue ?? "",
                    driver: i["drv"]?.stringValue ?? "",
                    readOnly: i["ro"]?.boolValue ?? false,
                    throttle: QMPIOThrottle(
                        bps: i["bps"]?.intValue ?? 0, bpsRead: i["bps_rd"]?.intValue ?? 0,
                        bpsWrite: i["bps_wr"]?.intValue ?? 0, iops: i["iops"]?.intValue ?? 0,
                        iopsRead: i["iops_rd"]?.intValue ?? 0, iopsWrite: i["iops_wr"]?.intValue ?? 0,
                        bpsMax: i["bps_max"]?.intValue ?? 0, iopsMax: i["iops_max"]?.intValue ?? 0,
                        bpsReadMax: i["bps_rd_max"]?.intValue ?? 0, bpsWriteMax: i["bps_wr_max"]?.intValue ?? 0,
                        iopsReadMax: i["iops_rd_max"]?.intValue ?? 0, iopsWriteMax: i["iops_wr_max"]?.intValue ?? 0,
                        iopsSize: i["iops_size"]?.intValue ?? 0, burstLength: i["bps_max_length"]?.intValue ?? 1))
            }
            return QMPBlockDevice(
                device: d["device"]?.stringValue ?? "", qdev: d["qdev"]?.stringValue,
                removable: d["removable"]?.boolValue ?? false, trayOpen: d["tray_open"]?.boolValue,
                inserted: inserted)
        }
    }
}

extension QMPClient {
    /// Queries the run state of the VM.
    ///
    /// The corresponding QMP command is `query-status`.
    public func queryStatus(timeout: Duration = defaultTimeout) async throws(QMPError) -> QMPRunStatus {
        try QMPRunStatus(reply: try await execute("query-status", timeout: timeout))
    }

    /// Pauses the vCPUs. The corresponding QMP command is `stop`.
    public func stop(timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("stop", timeout: timeout)
    }

    /// Resumes the vCPUs. The corresponding QMP command is `cont`.
    public func cont(timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("cont", timeout: timeout)
    }

    /// Resets the VM. The corresponding QMP command is `system_reset`.
    public func systemReset(timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("system_reset", timeout: timeout)
    }

    /// Presses the ACPI power button; returns without waiting for the guest.
    /// The corresponding QMP command is `system_powerdown`.
    public func systemPowerdown(timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("system_powerdown", timeout: timeout)
    }

    /// Makes QEMU exit at once. The corresponding QMP command is `quit`.
    ///
    /// A connection closed by QEMU before the reply arrives counts as success.
    public func quit(timeout: Duration = defaultTimeout) async throws(QMPError) {
        do {
            try await execute("quit", timeout: timeout)
        } catch where error.code == .connectionClosed {
            return
        }
    }

    /// Runs a human monitor (HMP) command and returns its text output.
    /// The corresponding QMP command is `human-monitor-command`.
    public func humanMonitorCommand(_ commandLine: String, timeout: Duration = defaultTimeout) async throws(QMPError) -> String {
        let r = try await execute("human-monitor-command", arguments: ["command-line": .string(commandLine)], timeout: timeout)
        return r.stringValue ?? ""
    }

    /// Lists block devices with their media and throttle values.
    /// The corresponding QMP command is `query-block`.
    public func queryBlock(timeout: Duration = defaultTimeout) async throws(QMPError) -> [QMPBlockDevice] {
        QMPBlockDevice.list(reply: try await execute("query-block", timeout: timeout))
    }

    /// Sets (or, with all-zero limits, clears) the I/O throttle of a guest device.
    ///
    /// - Parameter qdevID: The qdev id (or QOM path) of the guest device, as
    ///   ``QMPBlockDevice/qdev`` reports it.
    /// The corresponding QMP command is `block_set_io_throttle`.
    public func setIOThrottle(qdevID: String, _ t: QMPIOThrottle, timeout: Duration = defaultTimeout) async throws(QMPError) {
        var arguments: [String: JSONValue] = [
            "id": .string(qdevID),
            "bps": .int(t.bps), "bps_rd": .int(t.bpsRead), "bps_wr": .int(t.bpsWrite),
            "iops": .int(t.iops), "iops_rd": .int(t.iopsRead), "iops_wr": .int(t.iopsWrite),
            "bps_max": .int(t.bpsMax), "iops_max": .int(t.iopsMax),
            "bps_rd_max": .int(t.bpsReadMax), "bps_wr_max": .int(t.bpsWriteMax),
            "iops_rd_max": .int(t.iopsReadMax), "iops_wr_max": .int(t.iopsWriteMax), "iops_size": .int(t.iopsSize),
        ]
        // QEMU refuses a burst length for a limit without a burst rate, so the
        // length goes only with the bursts that are set (a clear sends none).
        for (rate, name) in [(t.bpsMax, "bps_max"), (t.bpsReadMax, "bps_rd_max"), (t.bpsWriteMax, "bps_wr_max"),
                             (t.iopsMax, "iops_max"), (t.iopsReadMax, "iops_rd_max"), (t.iopsWriteMax, "iops_wr_max")] where rate > 0 {
            arguments[name + "_length"] = .int(t.burstLength)
        }
        try await execute("block_set_io_throttle", arguments: .object(arguments), timeout: timeout)
    }

    /// Hands `fd` to QEMU under `name`, for a later command that refers to it.
    /// The corresponding QMP command is `getfd`, sent with the fd in `SCM_RIGHTS`.
    public func sendFD(_ fd: Int32, name: String, timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("getfd", arguments: ["fdname": .string(name)], passing: fd, timeout: timeout)
    }

    /// Connects a VNC or SPICE client socket that QEMU received with ``sendFD(_:name:timeout:)``.
    /// The corresponding QMP command is `add_client`.
    public func addClient(protocol proto: String, fdName: String, skipAuth: Bool = false, tls: Bool = false,
                          timeout: Duration = defaultTimeout) async throws(QMPError) {
        try await execute("add_client", arguments: [
            "protocol": .string(proto), "fdname": .string(fdName), "skipauth": .bool(skipAuth), "tls": .bool(tls),
        ], timeout: timeout)
    }
}
