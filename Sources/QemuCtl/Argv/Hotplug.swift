public import QMP

/// One QMP command of a hot-plug: the command's name and its arguments.
public struct QMPStep: Sendable, Hashable, CustomStringConvertible {
    /// The command (`blockdev-add`, `object-add`, `netdev_add`, `device_add`, …).
    public var command: String
    /// Its arguments (an object).
    public var arguments: JSONValue

    /// Creates a step.
    public init(_ command: String, _ arguments: JSONValue) {
        self.command = command
        self.arguments = arguments
    }

    /// `command {arguments}`, for logs (the values come from the configuration, which holds no secret here).
    public var description: String { "\(command) \(arguments)" }
}

/// The QMP commands that hot-plug one device of a configuration into a running QEMU, and the
/// commands that release its backends once the guest has let the device go.
///
/// They are derived from the same code that writes the command line, so a hot-plugged disk or
/// NIC gets exactly the nodes, objects and properties it would get at launch; only its place
/// differs: a virtio or NVMe disk or a NIC goes into a free `pcie-root-port` (``QEMUCommandLine/hotplugPorts``),
/// a SCSI disk onto `scsi0` with a free SCSI id.
///
/// ```swift
/// let plug = try desired.hotplug(disk: "data", port: "hotplug0")
/// for step in plug.steps { try await qmp.execute(step.command, arguments: step.arguments) }
/// ```
public struct HotplugSteps: Sendable, Hashable {
    /// The id of the guest device (`disk-NAME`, `net-NAME`), for `device_del`.
    public var deviceID: String
    /// The commands that add it, in order (backends first, the device last).
    public var steps: [QMPStep]
    /// The commands that remove its backends after `DEVICE_DELETED`, in order; also the rollback
    /// of a hot-plug that failed half-way.
    public var cleanup: [QMPStep]

    /// Creates steps; a device added by someone else is unplugged with `steps` and `cleanup` empty.
    public init(deviceID: String, steps: [QMPStep] = [], cleanup: [QMPStep] = []) {
        self.deviceID = deviceID
        self.steps = steps
        self.cleanup = cleanup
    }
}

extension VMConfig {
    /// The steps that hot-plug disk `name` of this configuration.
    ///
    /// - Parameters:
    ///   - name: A disk of ``disks``, with a file or NBD backend (backends with secrets need a relaunch).
    ///   - port: The `pcie-root-port` for a virtio or NVMe disk; ignored for SCSI.
    ///   - scsiID: The free SCSI id for a SCSI disk; ignored otherwise.
    /// - Throws: ``VMConfigError`` when the disk is unknown, cannot be hot-plugged (IDE, a backend
    ///   with secrets), or the configuration is invalid.
    public func hotplug(disk name: String, port: String?, scsiID: Int? = nil) throws(VMConfigError) -> HotplugSteps {
        guard let disk = disks.first(where: { $0.name == name }) else {
            throw VMConfigError(problems: [.init(path: "disks", message: "no disk named \(name)")])
        }
        switch disk.backend {
        case .rbd, .iscsi:
            throw VMConfigError(problems: [.init(path: "disks[\(name)]", message: "a disk with secrets is opened at launch only")])
        case .file, .nbd: break
        }
        let ids = DiskIDs(disk: disk)
        let options = try hotplugOptions()
        var steps: [QMPStep] = []
        var cleanup: [QMPStep] = []
        for node in [ids.backingProtocolNode, ids.backingFormatNode, ids.protocolNode, ids.formatNode, ids.throttleNode].compactMap({ $0 }) {
            guard let json = options.first(where: { $0.option == "-blockdev" && $0.value["node-name"]?.stringValue == node }) else { continue }
            steps.append(QMPStep("blockdev-add", json.value))
            cleanup.insert(QMPStep("blockdev-del", ["node-name": .string(node)]), at: 0)
        }
        if let group = ids.throttleGroup,
           let json = options.first(where: { $0.option == "-object" && $0.value["id"]?.stringValue == group }) {
            steps.insert(QMPStep("object-add", json.value), at: 0)
            cleanup.append(QMPStep("object-del", ["id": .string(group)]))
        }
        guard var device = options.first(where: { $0.option == "-device" && $0.value["id"]?.stringValue == ids.device })?.value.objectValue else {
            throw VMConfigError(problems: [.init(path: "disks[\(name)]", message: "no device for the disk in the command line")])
        }
        device["addr"] = nil
        switch disk.interface {
        case .virtio, .nvme:
            guard let port else {
                throw VMConfigError(problems: [.init(path: "disks[\(name)]", message: "a PCI disk needs a free hot-plug root port")])
            }
            device["bus"] = .string(port)
        case .scsi:
            guard let scsiID else {
                throw VMConfigError(problems: [.init(path: "disks[\(name)]", message: "a SCSI disk needs a free SCSI id")])
            }
            device["bus"] = "scsi0.0"
            device["scsi-id"] = .int(scsiID)
        case .ide:
            throw VMConfigError(problems: [.init(path: "disks[\(name)]", message: "IDE disks cannot be hot-plugged")])
        }
        steps.append(QMPStep("device_add", .object(device)))
        return HotplugSteps(deviceID: ids.device, steps: steps, cleanup: cleanup)
    }

    /// The steps that hot-plug network `name` of this configuration into root port `port`.
    ///
    /// - Throws: ``VMConfigError`` when the network is unknown or the configuration is invalid.
    public func hotplug(network name: String, port: String) throws(VMConfigError) -> HotplugSteps {
        guard networks.contains(where: { $0.name == name }) else {
            throw VMConfigError(problems: [.init(path: "networks", message: "no network named \(name)")])
        }
        let options = try hotplugOptions()
        let netdevID = "netdev-\(name)", deviceID = DeviceID.network(name).rawValue
        guard let netdev = options.first(where: { $0.option == "-netdev" && $0.value["id"]?.stringValue == netdevID }),
              var device = options.first(where: { $0.option == "-device" && $0.value["id"]?.stringValue == deviceID })?.value.objectValue
        else {
            throw VMConfigError(problems: [.init(path: "networks[\(name)]", message: "no device for the network in the command line")])
        }
        device["addr"] = nil
        device["bus"] = .string(port)
        return HotplugSteps(
            deviceID: deviceID,
            steps: [QMPStep("netdev_add", netdev.value), QMPStep("device_add", .object(device))],
            cleanup: [QMPStep("netdev_del", ["id": .string(netdevID)])])
    }

    /// The JSON-valued options of this configuration's command line, parsed.
    private func hotplugOptions() throws(VMConfigError) -> [(option: String, value: JSONValue)] {
        var config = self
        // Only the devices matter: the accelerator needs no probe and extra arguments are the caller's.
        config.machine.accel = .tcg
        config.extraArgs = []
        let root = "/qemuctl-hotplug"
        let line = try config.commandLine(LaunchOptions(qmpSocketPath: root + "/qmp.sock", runtimeDirectory: root))
        var out: [(String, JSONValue)] = []
        var i = 0
        let args = line.arguments
        while i + 1 < args.count {
            let option = args[i]
            if ["-blockdev", "-object", "-netdev", "-device"].contains(option), args[i + 1].hasPrefix("{"),
               let value = try? JSONValue(parsing: args[i + 1]) {
                out.append((option, value))
                i += 2
            } else {
                i += 1
            }
        }
        return out
    }
}

extension VMConfig {
    /// The device id and backend clean-up to hot-unplug disk `name` of this configuration
    /// (``HotplugSteps/steps`` is empty).
    public func unplug(disk name: String) throws(VMConfigError) -> HotplugSteps {
        var plug = try hotplug(disk: name, port: "unplug", scsiID: 0)
        plug.steps = []
        return plug
    }

    /// The device id and backend clean-up to hot-unplug network `name` of this configuration
    /// (``HotplugSteps/steps`` is empty).
    public func unplug(network name: String) throws(VMConfigError) -> HotplugSteps {
        var plug = try hotplug(network: name, port: "unplug")
        plug.steps = []
        return plug
    }
}

extension VMConfig {
    /// The steps that hot-plug USB device `name` of this configuration onto its controller
    /// (`usb.0`), with the id ``DeviceID/usb(_:)``.
    ///
    /// - Throws: ``VMConfigError`` when the configuration has no such named USB device, or is invalid.
    public func hotplug(usb name: String) throws(VMConfigError) -> HotplugSteps {
        try hotplug(usbDeviceID: DeviceID.usb(name).rawValue)
    }

    /// The steps that hot-plug the USB device with guest id `id` (``DeviceID/usb(_:)``, or
    /// ``USB/tabletID`` for the tablet of ``usbTablet``) onto the controller.
    ///
    /// - Throws: ``VMConfigError`` when the configuration has no such USB device, or is invalid.
    public func hotplug(usbDeviceID id: String) throws(VMConfigError) -> HotplugSteps {
        guard let device = try hotplugOptions().first(where: { $0.option == "-device" && $0.value["id"]?.stringValue == id }) else {
            throw VMConfigError(problems: [.init(path: "usb.devices", message: "no USB device with id \(id)")])
        }
        return HotplugSteps(deviceID: id, steps: [QMPStep("device_add", device.value)])
    }
}
