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
        try await unplug(plug, releasedWhen: "a PCI device is removed only when the guest acknowledges it", wait: wait, timeout: timeout)
    }

    /// ``unplug(_:wait:timeout:)`` whose timeout message says, in `releasedWhen`, what the guest
    /// must do for this kind of device to go (a vCPU and a DIMM are not PCI devices).
    func unplug(_ plug: HotplugSteps, releasedWhen: String, wait: Duration, timeout: Duration) async throws(InstanceError) {
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
                    throw InstanceError(code: .unresponsive, message: "VM \(name): the guest did not release \(id) within \(wait) (\(releasedWhen)); the request stays pending")
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

extension Instance {
    /// Brings the number of vCPUs to `count` by hot-plugging CPUs into free slots (up to the
    /// `maxcpus` the VM was launched with) or unplugging hot-plugged ones (the guest must let
    /// them go; CPUs present at boot stay).
    /// The corresponding QMP commands are `query-hotpluggable-cpus`, `device_add` and `device_del`.
    public func setCPUCount(_ count: Int, wait: Duration = .seconds(30), timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let slots: [JSONValue]
        do { slots = try await qmp.execute("query-hotpluggable-cpus", timeout: timeout).arrayValue ?? [] } catch {
            throw InstanceError.from(error, doing: "query-hotpluggable-cpus on VM \(name)")
        }
        func order(_ v: JSONValue) -> [Int] {
            ["socket-id", "die-id", "core-id", "thread-id"].map { v["props"]?[$0]?.intValue ?? 0 }
        }
        let sorted = slots.sorted { order($0).lexicographicallyPrecedes(order($1)) }
        let present = sorted.filter { $0["qom-path"] != nil }
        if count > present.count {
            let free = sorted.filter { $0["qom-path"] == nil }
            guard count - present.count <= free.count else {
                throw InstanceError(code: .unsupported, message: "VM \(name): \(count) vCPUs asked, at most \(present.count + free.count) (maxCount at launch)")
            }
            for slot in free.prefix(count - present.count) {
                guard let type = slot["type"]?.stringValue, case .object(let props)? = slot["props"] else { continue }
                var device = props
                device["driver"] = .string(type)
                device["id"] = .string("cpu-" + order(slot).map(String.init).joined(separator: "-"))
                do { _ = try await qmp.execute("device_add", arguments: .object(device), timeout: timeout) } catch {
                    throw InstanceError.from(error, doing: "hot-plugging a vCPU into VM \(name)")
                }
            }
        } else if count < present.count {
            let removable = present.filter { $0["qom-path"]?.stringValue?.hasPrefix("/machine/peripheral/") == true }
            guard present.count - count <= removable.count else {
                throw InstanceError(code: .unsupported, message: "VM \(name): only hot-plugged vCPUs can be removed live; \(present.count - removable.count) were there at boot")
            }
            for slot in removable.suffix(present.count - count).reversed() {
                guard let path = slot["qom-path"]?.stringValue else { continue }
                let id = String(path.split(separator: "/").last ?? "")
                try await unplug(HotplugSteps(deviceID: id), releasedWhen: "a vCPU is removed only when the guest takes it offline and ejects it",
                                 wait: wait, timeout: timeout)
            }
        }
    }

    /// Brings guest RAM to `bytes` by hot-plugging one DIMM of the difference (up to the `maxmem`
    /// and `slots` the VM was launched with) or unplugging hot-plugged DIMMs whose sizes add up to
    /// the difference (the guest must let them go; boot RAM stays).
    /// The corresponding QMP commands are `query-memory-size-summary`, `query-memory-devices`,
    /// `object-add`, `device_add` and `device_del`.
    public func setMemorySize(_ bytes: UInt64, wait: Duration = .seconds(30), timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) {
        let summary: JSONValue, devices: [JSONValue]
        do {
            summary = try await qmp.execute("query-memory-size-summary", timeout: timeout)
            devices = try await qmp.execute("query-memory-devices", timeout: timeout).arrayValue ?? []
        } catch {
            throw InstanceError.from(error, doing: "reading the memory of VM \(name)")
        }
        let current = MemoryDIMMs.total(summary: summary)
        let dimms: [(id: String, size: UInt64)] = devices.compactMap { d in
            guard let data = d["data"], let id = data["id"]?.stringValue, let size = data["size"]?.intValue else { return nil }
            return (id, UInt64(size))
        }
        if bytes > current {
            let add = bytes - current
            var n = 0
            while dimms.contains(where: { $0.id == "dimm\(n)" }) { n += 1 }
            do {
                _ = try await qmp.execute("object-add", arguments: [
                    "qom-type": "memory-backend-ram", "id": .string("mem-dimm\(n)"), "size": .int(Int(add))], timeout: timeout)
            } catch {
                throw InstanceError.from(error, doing: "adding \(add) bytes of RAM to VM \(name)")
            }
            do {
                _ = try await qmp.execute("device_add", arguments: [
                    "driver": "pc-dimm", "id": .string("dimm\(n)"), "memdev": .string("mem-dimm\(n)")], timeout: timeout)
            } catch {
                _ = try? await qmp.execute("object-del", arguments: ["id": .string("mem-dimm\(n)")], timeout: timeout)
                throw InstanceError.from(error, doing: "hot-plugging a DIMM into VM \(name) (are memory.max and slots set, and is the size a multiple of 2 MiB?)")
            }
        } else if bytes < current {
            guard let chosen = MemoryDIMMs.toRemove(sizes: dimms.map(\.size), shrinkBy: current - bytes).map({ $0.map { dimms[$0].id } }) else {
                throw InstanceError(code: .unsupported, message: "VM \(name): RAM shrinks live only by whole hot-plugged DIMMs; none add up to \(current - bytes) bytes")
            }
            for id in chosen {
                let memdev = devices.first { $0["data"]?["id"]?.stringValue == id }?["data"]?["memdev"]?.stringValue
                let cleanup = memdev.map { [QMPStep("object-del", ["id": .string(String($0.split(separator: "/").last ?? ""))])] } ?? []
                try await unplug(HotplugSteps(deviceID: id, cleanup: cleanup),
                                 releasedWhen: "a DIMM is removed only when the guest takes its memory offline and ejects it",
                                 wait: wait, timeout: timeout)
            }
        }
    }
}
