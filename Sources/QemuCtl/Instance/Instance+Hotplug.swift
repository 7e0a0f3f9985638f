public import QMP

extension Instance {
    /// The hot-plug root ports (`pcie-root-port`s with ids `hotplugN`, see
    /// ``QEMUCommandLine/hotplugPorts``) with nothing plugged in, in id order.
    /// The corresponding QMP command is `query-pci`.
    public func freeHotplugPorts(timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> [String] {
        let reply: JSONValue
        do { reply = try await qmp.execute("query-pci", timeout: timeout) } catch {
            throw InstanceError.from(error, doing: "query-pci on VM \(name)")
        }
        return Self.freeHotplugPorts(queryPCI: reply)
    }

    /// The free `hotplugN` root ports in a `query-pci` reply.
    public static func freeHotplugPorts(queryPCI reply: JSONValue) -> [String] {
        var free: [String] = []
        func walk(_ devices: [JSONValue]) {
            for d in devices {
                guard let bridge = d["pci_bridge"] else { continue }
                let children = bridge["devices"]?.arrayValue ?? []
                if let id = d["qdev_id"]?.stringValue, id.hasPrefix("hotplug"), children.isEmpty { free.append(id) }
                walk(children)
            }
        }
        for bus in reply.arrayValue ?? [] { walk(bus["devices"]?.arrayValue ?? []) }
        return free.sorted { (Int($0.dropFirst(7)) ?? 0, $0) < (Int($1.dropFirst(7)) ?? 0, $1) }
    }

    /// Hot-plugs a device: runs ``HotplugSteps/steps`` in order. When a step fails, the backends
    /// already added are removed again (best effort) and the error names the step.
    public func hotplug(_ plug: HotplugSteps, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        var done = 0
        for step in plug.steps {
            do {
                _ = try await qmp.execute(step.command, arguments: step.arguments, timeout: timeout)
                done += 1
            } catch {
                // Undo what was added: the device itself is the last step, so only backends are left.
                let added = Set(plug.steps.prefix(done).compactMap { $0.arguments["node-name"]?.stringValue ?? $0.arguments["id"]?.stringValue })
                for undo in plug.cleanup where added.contains(undo.arguments["node-name"]?.stringValue ?? undo.arguments["id"]?.stringValue ?? "") {
                    _ = try? await qmp.execute(undo.command, arguments: undo.arguments, timeout: timeout)
                }
                throw InstanceError.from(error, doing: "hot-plugging \(plug.deviceID) into VM \(name) (\(step.command))")
            }
        }
    }

    /// Hot-unplugs a device: `device_del`, then waits up to `wait` for QEMU's `DEVICE_DELETED`
    /// (a PCI device goes only when the guest lets it go), then removes its backends
    /// (``HotplugSteps/cleanup``). A device already gone is not an error.
    ///
    /// - Throws: ``InstanceError`` with code `unresponsive` when the guest did not release the device
    ///   in time (the request stays pending in QEMU; the backends are kept).
    public func unplug(_ plug: HotplugSteps, wait: Duration = .seconds(30), timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let events = qmp.events(bufferSize: 256)
        var present = true
        do {
            _ = try await qmp.execute("device_del", arguments: ["id": .string(plug.deviceID)], timeout: timeout)
        } catch {
            if error.errorClass == "DeviceNotFound" {
                present = false
            } else if !error.message.contains("in the process of unplug") && !error.message.contains("already") {
                throw InstanceError.from(error, doing: "unplugging \(plug.deviceID) from VM \(name)")
            }
        }
        if present {
            let id = plug.deviceID
            let deleted = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    do {
                        for try await e in events where e.name == "DEVICE_DELETED" && e.data["device"]?.stringValue == id {
                            return true
                        }
                    } catch {}
                    return false
                }
                group.addTask {
                    try? await Task.sleep(for: wait)
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if !deleted {
                // The event may have been missed while subscribing; ask QOM whether the device is still there.
                let stillThere = (try? await qmp.execute("qom-list", arguments: ["path": .string("/machine/peripheral/\(id)")], timeout: timeout)) != nil
                if stillThere {
                    throw InstanceError(code: .unresponsive, message: "VM \(name): the guest did not release \(id) within \(wait) (a PCI device is removed only when the guest acknowledges it); the request stays pending")
                }
            }
        }
        for step in plug.cleanup {
            do { _ = try await qmp.execute(step.command, arguments: step.arguments, timeout: timeout) } catch {
                // A backend QEMU already dropped with its device is fine.
                if error.errorClass == "DeviceNotFound" || error.message.contains("not found") || error.message.contains("Cannot find") { continue }
                throw InstanceError.from(error, doing: "removing the backend of \(plug.deviceID) from VM \(name) (\(step.command))")
            }
        }
    }
}
