import QMP

extension ReadinessTarget {
    /// The target of a running VM: its agent socket and serial log in `layout`'s runtime directory, and the
    /// host forwards of its user networks read from QEMU's `commandLine`.
    ///
    /// Forwards are taken from `-netdev` arguments in JSON form (`{"type":"user","hostfwd":[{"str":RULE}]}`,
    /// as qemuctl launches them) and in QemuOpts form (`user,…,hostfwd=RULE`, as a VM started by hand has).
    ///
    /// - Parameters:
    ///   - layout: The VM's runtime layout.
    ///   - commandLine: The running QEMU's argv (`/proc/PID/cmdline`), or `[]`.
    public init(layout: RuntimeLayout, commandLine: [String]) {
        var forwards: [HostForward] = []
        for (i, arg) in commandLine.enumerated() where (arg == "-netdev" || arg == "-nic") && i + 1 < commandLine.count {
            let value = commandLine[i + 1]
            if value.hasPrefix("{") {
                guard let json = try? JSONValue(parsing: value), json["type"]?.stringValue == "user" else { continue }
                for rule in json["hostfwd"]?.arrayValue ?? [] {
                    if let text = rule["str"]?.stringValue, let f = HostForward(rule: text) { forwards.append(f) }
                }
            } else {
                let options = Self.splitQemuOpts(value)
                guard options.first == "user" else { continue }
                for option in options where option.hasPrefix("hostfwd=") {
                    if let f = HostForward(rule: String(option.dropFirst("hostfwd=".count))) { forwards.append(f) }
                }
            }
        }
        self.init(guestAgentSocket: layout.guestAgentSocket, serialLog: layout.serialLog, hostForwards: forwards)
    }

    /// Splits QemuOpts text at single commas (`,,` is a literal comma).
    static func splitQemuOpts(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var chars = text.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? chars.next() {
            pending = nil
            if c == "," {
                if let next = chars.next() {
                    if next == "," { current.append(","); continue }
                    pending = next
                }
                parts.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        return parts
    }
}
