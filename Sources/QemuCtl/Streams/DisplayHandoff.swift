import QMP

/// Hands client connections to a VM's VNC or SPICE server over short-lived monitor
/// connections: no TCP port of QEMU's is opened, and the monitor is held only for the
/// two commands of one hand-off (`getfd` with the descriptor in `SCM_RIGHTS`, then
/// `add_client`), so other commands on the same socket are never blocked for long.
package enum DisplayHandoff {
    /// Fails with a hint unless the VM behind `socketPath` has a `display` server.
    ///
    /// The corresponding QMP commands are `query-vnc-servers` (which, unlike `query-vnc`,
    /// lists a server with no listening socket, `-vnc none`) and `query-spice`; a QEMU built
    /// without SPICE does not know `query-spice`, which is reported as such.
    /// - Returns: Whether the server requires a password (VNC `auth` other than `none`,
    ///   SPICE `auth` other than `none`), so that a hand-off that anyone on the host can
    ///   reach is refused for a display without one.
    @discardableResult
    package static func check(_ display: DisplayProtocol, vm name: String, socketPath: String,
                              timeout: Duration) async throws(InstanceError) -> Bool {
        let command = display == .vnc ? "query-vnc-servers" : "query-spice"
        let reply: JSONValue
        do {
            let qmp = try await QMPClient.connect(to: socketPath, timeout: timeout)
            defer { qmp.close() }
            reply = try await qmp.execute(command, timeout: timeout)
        } catch {
            if error.errorClass == "CommandNotFound" {
                throw InstanceError(code: .unsupported, message: "this QEMU has no SPICE support (\(command) is unknown to it); use qemuctl vnc, or a QEMU built with SPICE", qmp: error)
            }
            throw InstanceError.from(error, doing: "\(command) on VM \(name)")
        }
        let enabled = display == .vnc ? !(reply.arrayValue ?? []).isEmpty : reply["enabled"]?.boolValue == true
        if !enabled {
            let hint = display == .vnc ? "spec.display.vnc: {listen: none}" : "spec.display.spice: {listen: unix}"
            throw InstanceError(code: .unsupported, message: "VM \(name) has no \(display == .vnc ? "VNC" : "SPICE") display: add \(hint) to its manifest and apply with --restart=if-needed")
        }
        let auth = display == .vnc ? reply.arrayValue?.first?["auth"]?.stringValue : reply["auth"]?.stringValue
        return auth != nil && auth != "none"
    }

    /// Passes the connected socket `fd` to the VM's `display` server. The caller keeps
    /// its descriptor (QEMU gets a duplicate) and should close it afterwards.
    ///
    /// Each call uses a unique `fdname`, so concurrent hand-offs (from this process or
    /// another) never take each other's descriptor.
    package static func hand(_ fd: Int32, to display: DisplayProtocol, vm name: String, socketPath: String,
                             timeout: Duration) async throws(InstanceError) {
        let fdName = "qemuctl-\(display.rawValue)-\(UInt64.random(in: 0...UInt64.max))"
        do throws(QMPError) {
            let qmp = try await QMPClient.connect(to: socketPath, timeout: timeout)
            defer { qmp.close() }
            try await qmp.sendFD(fd, name: fdName, timeout: timeout)
            do {
                try await qmp.addClient(protocol: display.rawValue, fdName: fdName, skipAuth: false, timeout: timeout)
            } catch {
                // Do not leave the descriptor in QEMU's table.
                _ = try? await qmp.execute("closefd", arguments: ["fdname": .string(fdName)], timeout: timeout)
                throw error
            }
        } catch {
            throw InstanceError.from(error, doing: "handing a \(display.rawValue) client to VM \(name)")
        }
    }
}

/// The serial console of a VM qemuctl launched: a unix socket chardev (`serial-console`)
/// in the VM's runtime directory, optionally logged to `serial.log` there.
package enum SerialConsole {
    /// The console's chardev id (the serial port named `console`).
    package static let chardevID = "serial-console"

    /// Whether a client is connected to the console chardev, read from `query-chardev`
    /// over a short-lived monitor connection: QEMU names a socket chardev without a
    /// client `disconnected:…`.
    ///
    /// - Returns: `nil` when the console is free; QEMU's description of the connection when busy.
    /// - Throws: ``InstanceError`` when the monitor does not answer or the VM has no such chardev.
    package static func connectedClient(vm name: String, socketPath: String, timeout: Duration) async throws(InstanceError) -> String? {
        let reply: JSONValue
        do {
            let qmp = try await QMPClient.connect(to: socketPath, timeout: timeout)
            defer { qmp.close() }
            reply = try await qmp.execute("query-chardev", timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "query-chardev on VM \(name)")
        }
        guard let entry = reply.arrayValue?.first(where: { $0["label"]?.stringValue == chardevID }) else {
            throw InstanceError(code: .notFound, message: "VM \(name) has no console chardev '\(chardevID)' (was it launched by qemuctl?)")
        }
        let filename = entry["filename"]?.stringValue ?? ""
        return filename.hasPrefix("disconnected:") ? nil : filename
    }
}
