public import QMP

extension Instance {
    /// Lists the VM's block devices with media and throttle values.
    /// The corresponding QMP command is `query-block`.
    public func blockDevices(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> [QMPBlockDevice] {
        do { return try await qmp.queryBlock(timeout: timeout) } catch {
            throw InstanceError.from(error, doing: "query-block on VM \(name)")
        }
    }

    /// Sets the I/O throttle of a disk; all-zero limits clear it.
    ///
    /// - Parameter disk: The disk's name in the configuration (its guest device id is
    ///   `disk-NAME`), or a qdev id / QOM path as ``QMPBlockDevice/qdev`` reports it.
    /// The corresponding QMP command is `block_set_io_throttle`, addressed by the
    /// guest device's id (not the legacy drive name, which `-blockdev` disks lack).
    public func setIOThrottle(disk: String, _ limits: QMPIOThrottle, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let devices = try await blockDevices(timeout: timeout)
        let wanted = DeviceID.disk(disk).rawValue
        let qdevs = devices.compactMap(\.qdev)
        // query-block reports a device id, or a QOM path such as
        // /machine/peripheral/disk-data/virtio-backend; both address the device.
        func matches(_ qdev: String) -> Bool {
            qdev == wanted || qdev == disk || qdev.split(separator: "/").contains { $0 == wanted }
        }
        guard let id = qdevs.first(where: matches) else {
            throw InstanceError(code: .notFound, message: "VM \(name) has no disk '\(disk)' (devices: \(qdevs.joined(separator: ", ")))")
        }
        do { try await qmp.setIOThrottle(qdevID: id, limits, timeout: timeout) } catch {
            throw InstanceError.from(error, doing: "setting the I/O throttle of disk '\(disk)' of VM \(name)")
        }
    }

    /// Saves a screenshot of the primary display to `path` (PPM, or PNG with `format: "png"`).
    ///
    /// - Throws: a clear error when the VM has no display device (e.g. `-nodefaults` and no video).
    /// The corresponding QMP command is `screendump`.
    public func screendump(to path: String, format: String = "ppm", timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.execute("screendump", arguments: ["filename": .string(path), "format": .string(format)], timeout: timeout)
        } catch {
            if error.code == .commandFailed && error.message.contains("no QemuConsole") || error.message.contains("There is no") {
                throw InstanceError(code: .unsupported, message: "VM \(name) has no display device to take a screenshot of: give it a video device (display.video)", qmp: error)
            }
            throw InstanceError.from(error, doing: "screendump of VM \(name)")
        }
    }

    /// Presses a key chord (QEMU `QKeyCode` names, e.g. `["ctrl", "alt", "delete"]`),
    /// holding it for `holdMilliseconds`. The corresponding QMP command is `send-key`.
    public func sendKeys(_ keys: [String], holdMilliseconds: Int = 100, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        guard !keys.isEmpty else { throw InstanceError(code: .invalidConfig, message: "send-key needs at least one key") }
        let list: [JSONValue] = keys.map { ["type": "qcode", "data": .string($0)] }
        do {
            try await qmp.execute("send-key", arguments: ["keys": .array(list), "hold-time": .int(holdMilliseconds)], timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "send-key \(keys.joined(separator: "-")) to VM \(name)")
        }
    }

    /// Runs a human monitor command (e.g. `info block`) and returns its text.
    public func humanMonitorCommand(_ command: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> String {
        do { return try await qmp.humanMonitorCommand(command, timeout: timeout) } catch {
            throw InstanceError.from(error, doing: "HMP '\(command)' on VM \(name)")
        }
    }

    /// Sets the VNC or SPICE password. The value goes over QMP only, never on a
    /// command line. The corresponding QMP command is `set_password`.
    public func setPassword(_ display: DisplayProtocol, _ secret: Secret, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let value: String
        do { value = try secret.read() } catch { throw InstanceError(code: .invalidConfig, message: "\(error)") }
        do {
            try await qmp.execute("set_password", arguments: ["protocol": .string(display.rawValue), "password": .string(value)], timeout: timeout)
        } catch {
            // The arguments hold the secret: report the error text only.
            throw InstanceError(code: .commandFailed, message: "setting the \(display.rawValue) password of VM \(name) failed: \(error.message)", qmp: nil)
        }
    }

    /// Expires the VNC or SPICE password: `"now"`, `"never"`, `"+SECONDS"` or a Unix time.
    /// The corresponding QMP command is `expire_password`.
    public func expirePassword(_ display: DisplayProtocol, time: String = "now", timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        do {
            try await qmp.execute("expire_password", arguments: ["protocol": .string(display.rawValue), "time": .string(time)], timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "expiring the \(display.rawValue) password of VM \(name)")
        }
    }

    /// Hands a connected client socket to the VM's VNC or SPICE server: the
    /// descriptor travels over the monitor socket in `SCM_RIGHTS` (`getfd`), then
    /// `add_client` attaches it. No TCP port needs to be open. The caller keeps
    /// its descriptor and may close it after this returns.
    public func addDisplayClient(_ display: DisplayProtocol, fd: Int32, skipAuth: Bool = false,
                                 timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let fdName = "client-\(display.rawValue)-\(fd)-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try await qmp.sendFD(fd, name: fdName, timeout: timeout)
            try await qmp.addClient(protocol: display.rawValue, fdName: fdName, skipAuth: skipAuth, timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "adding a \(display.rawValue) client to VM \(name)")
        }
    }
}
