public import QMP

extension Instance {
    /// Attaches to a running VM by its QMP socket.
    ///
    /// The QEMU process id comes from the socket's peer credentials (`SO_PEERCRED`),
    /// so ``stop(timeout:stepTimeout:)``, ``forceStop(timeout:)`` and ``wait(timeout:)``
    /// work as for a VM this library started. The name comes from `query-name`
    /// (the socket file's name when QEMU has none).
    ///
    /// - Throws: ``InstanceError``: `notFound` (no socket, nothing listening),
    ///   `unresponsive` (the monitor is busy with another client, or QEMU is stopped).
    public static func attach(socketPath: String, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Instance {
        let qmp: QMPClient
        do {
            qmp = try await QMPClient.connect(to: socketPath, timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "attaching to \(socketPath)")
        }
        guard let pid = qmp.peerPID, pid > 0 else {
            qmp.close()
            throw InstanceError(code: .unsupported, message: "cannot learn the QEMU process id behind \(socketPath) (SO_PEERCRED)")
        }
        return try await finishAttach(qmp: qmp, pid: pid, socketPath: socketPath, fallbackName: nil, timeout: timeout)
    }

    /// Attaches to the VM called `name` in a socket directory (the seed's layout:
    /// `<socketDirectory>/<name>.sock`).
    public static func attach(name: String, socketDirectory: String? = nil,
                              timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Instance {
        let layout = RuntimeLayout(name: name, socketDirectory: socketDirectory)
        if let p = layout.problem() { throw InstanceError(code: .invalidConfig, message: p) }
        return try await attach(socketPath: layout.socketPath, timeout: timeout)
    }

    /// Attaches to the QEMU with process id `pid`, finding its QMP socket on its
    /// command line (`/proc/PID/cmdline`).
    ///
    /// Understands `-qmp unix:PATH[,…]`, `-qmp-pretty`, and `-chardev socket,id=ID,path=PATH,…`
    /// referenced by `-mon chardev=ID,mode=control`, in any key order, with `,,`
    /// escapes in paths; the name from `-name NAME` or `-name guest=NAME,…`.
    ///
    /// - Throws: ``InstanceError``: `notFound` when there is no such process or it
    ///   has no unix QMP socket; errors of ``attach(socketPath:timeout:)``.
    public static func attach(pid: Int32, timeout: Duration = QMPClient.defaultTimeout) async throws(InstanceError) -> Instance {
        guard Posix.processExists(pid), let argv = Posix.commandLine(of: pid) else {
            throw InstanceError(code: .notFound, message: "no process with pid \(pid)")
        }
        let parsed = QEMUCommandLineReader(arguments: argv)
        let monitors = MonitorLocator(pid: pid, argv: argv)
        guard let socketPath = monitors.paths.first else {
            throw InstanceError(code: .notFound, message: monitors.noUsableMonitor(pid: pid, program: argv.first))
        }
        let qmp: QMPClient
        do {
            qmp = try await QMPClient.connect(to: socketPath, timeout: timeout)
        } catch {
            throw InstanceError.from(error, doing: "attaching to pid \(pid) via \(socketPath)")
        }
        if let peer = qmp.peerPID, peer != pid, !monitors.inheritedPaths.contains(socketPath) {
            qmp.close()
            throw InstanceError(code: .notFound, message: "\(socketPath) belongs to pid \(peer), not \(pid)")
        }
        return try await finishAttach(qmp: qmp, pid: pid, socketPath: socketPath, fallbackName: parsed.name, timeout: timeout)
    }

    /// Wraps a monitor connection the caller opened (and keeps closing) for one-off control
    /// (``pause(timeout:)``, ``resume(timeout:)``, ``reset(timeout:)``), without the round trips
    /// of attaching: the pid is the socket peer's, the state unknown until ``refreshState(timeout:)``.
    package static func controlling(_ qmp: QMPClient, name: String) -> Instance {
        Instance(name: name, socketPath: "", pid: qmp.peerPID ?? 0, qmp: qmp, accelerator: nil, initial: .unknown)
    }

    private static func finishAttach(qmp: QMPClient, pid: Int32, socketPath: String, fallbackName: String?,
                                     timeout: Duration) async throws(InstanceError) -> Instance {
        var name = fallbackName
        if let reply = try? await qmp.execute("query-name", timeout: timeout), let n = reply["name"]?.stringValue {
            name = n
        }
        if name == nil {
            var base = Substring(socketPath.split(separator: "/").last ?? "")
            if base.hasSuffix(".sock") { base = base.dropLast(5) }
            name = String(base)
        }
        let instance = Instance(name: name ?? "", socketPath: socketPath, pid: pid, qmp: qmp, accelerator: nil, initial: .unknown)
        try await instance.refreshState(timeout: timeout)
        return instance
    }
}

/// Reads what matters for attaching out of a QEMU command line.
package struct QEMUCommandLineReader {
    /// A QMP monitor on the command line.
    package struct Monitor: Sendable, Equatable {
        /// Where its socket is.
        package enum Source: Sendable, Equatable {
            /// A unix socket path (`-qmp unix:PATH`, `-chardev socket,path=PATH`).
            case path(String)
            /// A listening socket QEMU inherited (`-chardev socket,fd=N`).
            case descriptor(Int32)
        }
        /// Where its socket is.
        package var source: Source
        /// The chardev's id (`nil` for `-qmp`).
        package var chardevID: String?
    }

    /// The QMP monitors, in command-line order (`-qmp` first, then `-mon` chardevs).
    package var monitors: [Monitor] = []
    /// The `-name` (guest=) value.
    package var name: String?
    /// The `filename` of each `-blockdev` node given in JSON syntax, by node name (what a running
    /// QEMU really opened, e.g. the EFI flash images).
    package var blockdevFiles: [String: String] = [:]

    /// The unix socket paths of QMP monitors given by path, in command-line order.
    package var qmpSocketPaths: [String] {
        monitors.compactMap { if case .path(let p) = $0.source { p } else { nil } }
    }

    /// The descriptors of QMP monitors QEMU inherited (`-chardev socket,fd=N`).
    package var qmpSocketDescriptors: [Int32] {
        monitors.compactMap { if case .descriptor(let fd) = $0.source { fd } else { nil } }
    }

    package init(arguments argv: [String]) {
        var chardevSockets: [String: Monitor.Source] = [:]  // id -> where
        var monitorChardevs: [String] = []
        var i = 1
        func value(_ option: String) -> String? {
            // Accept both "-opt value" and "--opt value" and "-opt=value".
            let a = argv[i]
            for prefix in ["-\(option)", "--\(option)"] {
                if a == prefix, i + 1 < argv.count { i += 1; return argv[i] }
                if a.hasPrefix(prefix + "=") { return String(a.dropFirst(prefix.count + 1)) }
            }
            return nil
        }
        while i < argv.count {
            if let v = value("qmp") ?? value("qmp-pretty") {
                let opts = Self.splitOptions(v)
                if let first = opts.first, first.value == nil, first.key.hasPrefix("unix:") {
                    monitors.append(Monitor(source: .path(String(first.key.dropFirst(5))), chardevID: nil))
                }
            } else if let v = value("chardev") {
                let opts = Self.splitOptions(v)
                if opts.first?.key == "socket" && opts.first?.value == nil,
                   let id = opts.first(where: { $0.key == "id" })?.value {
                    if let path = opts.first(where: { $0.key == "path" })?.value {
                        chardevSockets[id] = .path(path)
                    } else if let fd = opts.first(where: { $0.key == "fd" })?.value.flatMap({ Int32($0) }) {
                        chardevSockets[id] = .descriptor(fd)
                    }
                }
            } else if let v = value("mon") {
                let opts = Self.splitOptions(v)
                let mode = opts.first(where: { $0.key == "mode" })?.value ?? "readline"
                if mode == "control", let id = opts.first(where: { $0.key == "chardev" })?.value {
                    monitorChardevs.append(id)
                }
            } else if let v = value("blockdev"), v.hasPrefix("{"), let node = try? JSONValue(parsing: v),
                      let nodeName = node["node-name"]?.stringValue, let file = node["filename"]?.stringValue {
                blockdevFiles[nodeName] = file
            } else if let v = value("name") {
                let opts = Self.splitOptions(v)
                if let guest = opts.first(where: { $0.key == "guest" })?.value {
                    name = guest
                } else if let first = opts.first, first.value == nil {
                    name = first.key
                }
            }
            i += 1
        }
        monitors += monitorChardevs.compactMap { id in chardevSockets[id].map { Monitor(source: $0, chardevID: id) } }
    }

    /// Splits QEMU's `key=value,key=value` syntax, where `,,` is a literal comma.
    /// An item without `=` has a nil value.
    package static func splitOptions(_ s: String) -> [(key: String, value: String?)] {
        var items: [String] = []
        var current = ""
        var chars = Array(s)[...]
        while let c = chars.popFirst() {
            if c == "," {
                if chars.first == "," {
                    current.append(",")
                    chars.removeFirst()
                } else {
                    items.append(current)
                    current = ""
                }
            } else {
                current.append(c)
            }
        }
        items.append(current)
        return items.map { item in
            if let eq = item.firstIndex(of: "=") {
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
            return (item, nil)
        }
    }
}
