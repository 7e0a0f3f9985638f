// MARK: - StringFormat

/// The formats a string field can have; each validates a value and has a JSON Schema
/// pattern that accepts the same values.
package enum StringFormat: String, Sendable, Hashable, CaseIterable {
    /// Free text that may reach QEMU (a kernel command line): no control characters or newlines.
    case text
    /// A document of lines (inline cloud-init user-data): UTF-8 text of at most 65536 bytes whose
    /// only control characters are tab, line feed and carriage return. Never reaches QEMU's argv.
    case document
    /// A host path: non-empty, at most 4095 bytes, no control characters or newlines.
    /// Relative paths are resolved against the manifest's directory.
    case path
    /// A DNS label (RFC 1123): lower-case letters, digits and `-`, at most 63, starting
    /// and ending with a letter or digit. VM and USB device names.
    case name
    /// A device name (disk, CD-ROM, NIC): a DNS label of at most 24 characters starting with
    /// a letter, because it becomes part of QEMU ids and node names (`disk-NAME`).
    case deviceName
    /// A word such as a machine type, CPU or device model: letters, digits, `_ . - + :`.
    case word
    /// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
    /// characters (letters, digits, `- _ .`, alphanumeric at both ends).
    case labelKey
    /// A label value: empty, or at most 63 characters of letters, digits, `- _ .`,
    /// alphanumeric at both ends.
    case labelValue
    /// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    case envName
    /// A unicast MAC address `52:54:00:12:34:56`.
    case mac
    /// A user-network port forward: `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`.
    case hostfwd
    /// A CPU feature: `+name` or `-name` (a bare name means `+`).
    case cpuFeature
    /// A boot order: drive letters `a`–`p` (`c` disk, `d` CD-ROM, `n` network).
    case bootOrder
    /// A host network interface name: at most 15 of letters, digits, `_ . -`, starting with a letter or digit
    /// (it is passed to tap scripts as an argument, where a leading `-` would read as an option).
    case ifname
    /// `host:port` (host may be empty, or an `[IPv6]` literal).
    case hostPort
    /// An IPv4 address `10.0.2.2`.
    case ipv4
    /// An IPv4 network `10.0.2.0/24`.
    case ipv4CIDR
    /// A USB vendor or product id: `0x` and four hex digits.
    case usbID
    /// A PCI slot on the root bus, `0xHH` (like `0x06`; QEMU's `addr`).
    case pciSlot
    /// A drive serial number: 1 to 20 of letters, digits, `_ . -`.
    case serial
    /// A VNC listen address: `none`, `HOST:DISPLAY` or `unix:PATH`.
    case vncListen
    /// A SPICE listen address: `unix` (a socket in the VM's runtime directory) or `HOST:PORT`.
    case spiceListen

    /// The regular expression (ECMA-262, as JSON Schema uses) that accepts the same strings.
    package var pattern: String {
        switch self {
        case .text: #"^[^\u0000-\u001f\u007f]*$"#
        case .document: #"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"#
        case .path: #"^[^\u0000-\u001f\u007f]{1,4095}$"#
        case .name: #"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"#
        case .deviceName: #"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$"#
        case .word: #"^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,127}$"#
        case .labelKey:
            #"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"#
        case .labelValue: #"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"#
        case .envName: #"^[A-Za-z_][A-Za-z0-9_]*$"#
        case .mac: #"^[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$"#
        case .hostfwd: #"^(tcp|udp)?:(([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])(\.([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])){3})?:(0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])-(([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])(\.([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])){3})?:(0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"#
        case .cpuFeature: #"^[+-]?[A-Za-z0-9][A-Za-z0-9_.-]*$"#
        case .bootOrder: #"^[a-p]{1,16}$"#
        case .ifname: #"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"#
        case .hostPort: #"^(\[[A-Za-z0-9:.]+\]|[A-Za-z0-9_.-]*):(0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"#
        case .ipv4: #"^([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])(\.([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])){3}$"#
        case .ipv4CIDR: #"^([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])(\.([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])){3}/([0-9]|[0-2][0-9]|3[0-2])$"#
        case .usbID: #"^0x[0-9a-fA-F]{4}$"#
        case .pciSlot: #"^0x[0-9a-fA-F]{1,2}$"#
        case .serial: #"^[A-Za-z0-9_.-]{1,20}$"#
        case .vncListen: #"^(none|unix:[^\u0000-\u001f\u007f]{1,4095}|(\[[A-Za-z0-9:.]+\]|[A-Za-z0-9_.-]*):0{0,3}[0-9]{1,2})$"#
        case .spiceListen: #"^(unix|(\[[A-Za-z0-9:.]+\]|[A-Za-z0-9_.-]*):(0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))$"#
        }
    }

    /// What the format accepts, for error messages: "a DNS label (…)".
    package var summary: String {
        switch self {
        case .text: "text without control characters or newlines"
        case .document: "text of lines, at most 65536 bytes, without control characters other than tab, line feed and carriage return"
        case .path: "a path of 1 to 4095 bytes without control characters or newlines"
        case .name: "a DNS label: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        case .deviceName: "1 to 24 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"
        case .word: "a word of letters, digits and '_ . - + :'"
        case .labelKey: "a label key: [prefix/]name, name at most 63 letters, digits, '-', '_', '.'"
        case .labelValue: "a label value: at most 63 letters, digits, '-', '_', '.', alphanumeric at both ends"
        case .envName: "an environment variable name: letters, digits and '_', not starting with a digit"
        case .mac: "a unicast MAC address like 52:54:00:12:34:56"
        case .hostfwd: "a port forward [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport, like tcp:127.0.0.1:2222-:22"
        case .cpuFeature: "a CPU feature like +avx2 or -x2apic"
        case .bootOrder: "drive letters a to p, like 'cdn'"
        case .ifname: "an interface name of at most 15 letters, digits, '_', '.', '-', starting with a letter or digit"
        case .hostPort: "HOST:PORT, like 127.0.0.1:5900 or :5900"
        case .ipv4: "an IPv4 address like 10.0.2.2"
        case .ipv4CIDR: "an IPv4 network like 10.0.2.0/24"
        case .usbID: "a USB id like 0x046d"
        case .pciSlot: "a PCI slot like 0x06"
        case .serial: "1 to 20 letters, digits, '_', '.', '-'"
        case .vncListen: "none, HOST:DISPLAY (like 127.0.0.1:0) or unix:PATH"
        case .spiceListen: "unix, or HOST:PORT like 127.0.0.1:5930"
        }
    }

    /// Whether `s` is in this format.
    package func accepts(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { accepts($0) }
    }

    /// Whether the UTF-8 bytes `u` are in this format. The formats manifests use most are
    /// checked on the bytes; the others on a String.
    func accepts(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        switch self {
        case .text: return !Self.hasControl(u)
        case .document: return u.count <= 65536 && !u.contains(where: Self.isDocumentControl)
        case .path: return !u.isEmpty && u.count <= 4095 && !Self.hasControl(u)
        case .name: return Self.isDNSLabel(u)
        case .deviceName: return Self.isDeviceName(u)
        case .word:
            guard let f = u.first, Self.isAlnum(f), u.count <= 128 else { return false }
            for b in u where !Self.isAlnum(b) && !Self.isWordPunctuation(b) { return false }
            return true
        case .labelKey:
            var slash = -1
            for i in u.indices.reversed() where u[i] == UInt8(ascii: "/") {
                slash = i
                break
            }
            var name = u
            if slash >= 0 {
                let prefix = UnsafeBufferPointer(rebasing: u[..<slash])
                guard !prefix.isEmpty, prefix.count <= 253 else { return false }
                var start = 0
                for i in 0...prefix.count where i == prefix.count || prefix[i] == UInt8(ascii: ".") {
                    guard Self.isDNSLabel(UnsafeBufferPointer(rebasing: prefix[start..<i])) else { return false }
                    start = i + 1
                }
                name = UnsafeBufferPointer(rebasing: u[(slash + 1)...])
            }
            return !name.isEmpty && Self.isLabelValue(name)
        case .labelValue: return u.isEmpty || Self.isLabelValue(u)
        case .envName:
            guard let f = u.first, !Self.isDigit(f) else { return false }
            for b in u where !Self.isAlnum(b) && b != UInt8(ascii: "_") { return false }
            return true
        case .cpuFeature:
            var body = u[...]
            if let f = body.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") { body = body.dropFirst() }
            guard let f = body.first, Self.isAlnum(f) else { return false }
            for b in body where !Self.isAlnum(b) && !Self.isNamePunctuation(b) { return false }
            return true
        case .bootOrder:
            return !u.isEmpty && u.count <= 16 && u.allSatisfy { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "p") }
        case .ifname:
            guard let f = u.first, Self.isAlnum(f), u.count <= 15 else { return false }
            return u.allSatisfy { Self.isAlnum($0) || Self.isNamePunctuation($0) }
        case .serial:
            return !u.isEmpty && u.count <= 20 && u.allSatisfy { Self.isAlnum($0) || Self.isNamePunctuation($0) }
        case .hostfwd: return Self.isHostfwd(u)
        case .vncListen where YAMLNode.equal(u, "none"): return true
        default: return acceptsString(String(decoding: u, as: UTF8.self))
        }
    }

    /// `_ . + : -`
    @inline(__always)
    static func isWordPunctuation(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "+") || b == UInt8(ascii: ":")
            || b == UInt8(ascii: "-")
    }

    /// `_ . -`
    @inline(__always)
    static func isNamePunctuation(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
    }

    /// A control character other than tab, line feed and carriage return.
    @inline(__always)
    static func isDocumentControl(_ b: UInt8) -> Bool {
        (b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D) || b == 0x7F
    }

    /// Whether any byte is a control character.
    static func hasControl(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in u where b < 0x20 || b == 0x7F { return true }
        return false
    }

    /// `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport` on bytes; same answers as on a String.
    static func isHostfwd(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        func first(_ b: UInt8, in r: Range<Int>) -> Int? {
            for i in r where u[i] == b { return i }
            return nil
        }
        func isPort(_ r: Range<Int>) -> Bool {
            guard !r.isEmpty, r.count <= 5 else { return false }
            var n = 0
            for i in r {
                guard isDigit(u[i]) else { return false }
                n = n * 10 + Int(u[i] - 0x30)
            }
            return n >= 1 && n <= 65535
        }
        func isIPv4(_ r: Range<Int>) -> Bool {
            var parts = 0
            var start = r.lowerBound
            for i in r.lowerBound...r.upperBound where i == r.upperBound || u[i] == UInt8(ascii: ".") {
                let p = start..<i
                guard !p.isEmpty, p.count <= 3 else { return false }
                var n = 0
                for k in p {
                    guard isDigit(u[k]) else { return false }
                    n = n * 10 + Int(u[k] - 0x30)
                }
                guard n <= 255 else { return false }
                parts += 1
                start = i + 1
            }
            return parts == 4
        }
        guard let dash = first(UInt8(ascii: "-"), in: 0..<u.count) else { return false }
        guard let c1 = first(UInt8(ascii: ":"), in: 0..<dash) else { return false }
        guard let c2 = first(UInt8(ascii: ":"), in: (c1 + 1)..<dash) else { return false }
        guard let c3 = first(UInt8(ascii: ":"), in: (dash + 1)..<u.count) else { return false }
        let proto = UnsafeBufferPointer(rebasing: u[0..<c1])
        guard proto.isEmpty || YAMLNode.equal(proto, "tcp") || YAMLNode.equal(proto, "udp") else { return false }
        let hostAddr = (c1 + 1)..<c2, guestAddr = (dash + 1)..<c3
        guard hostAddr.isEmpty || isIPv4(hostAddr), guestAddr.isEmpty || isIPv4(guestAddr) else { return false }
        return isPort((c2 + 1)..<dash) && isPort((c3 + 1)..<u.count)
    }

    /// The String implementation: used for the formats not checked on bytes, and as the
    /// reference the byte checks are tested against (it has every format).
    package func acceptsString(_ s: String) -> Bool {
        let u = s.utf8
        switch self {
        case .text: return !Self.hasControl(s)
        case .document: return u.count <= 65536 && !u.contains(where: Self.isDocumentControl)
        case .path: return !u.isEmpty && u.count <= 4095 && !Self.hasControl(s)
        case .name: return u.withContiguousStorageIfAvailable(Self.isDNSLabel) ?? Self.isDNSLabel(u)
        case .deviceName: return Self.isDeviceName(u)
        case .word:
            guard let f = u.first, Self.isAlnum(f), u.count <= 128 else { return false }
            return u.allSatisfy { Self.isAlnum($0) || "_.+:-".utf8.contains($0) }
        case .labelKey:
            var name = Substring(s)
            if let slash = s.lastIndex(of: "/") {
                let prefix = s[..<slash]
                guard !prefix.isEmpty, prefix.utf8.count <= 253,
                      prefix.split(separator: ".", omittingEmptySubsequences: false)
                        .allSatisfy({ Self.isDNSLabel($0.utf8) })
                else { return false }
                name = s[s.index(after: slash)...]
            }
            return !name.isEmpty && Self.isLabelValue(name.utf8)
        case .labelValue: return u.isEmpty || Self.isLabelValue(u)
        case .envName:
            guard let f = u.first, !Self.isDigit(f) else { return false }
            return u.allSatisfy { Self.isAlnum($0) || $0 == UInt8(ascii: "_") }
        case .mac:
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 6, parts.allSatisfy({ $0.utf8.count == 2 && UInt8($0, radix: 16) != nil })
            else { return false }
            return UInt8(parts[0], radix: 16)! & 1 == 0
        case .hostfwd: return Self.isHostfwd(s)
        case .cpuFeature:
            var body = u[...]
            if let f = body.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") { body = body.dropFirst() }
            guard let f = body.first, Self.isAlnum(f) else { return false }
            return body.allSatisfy { Self.isAlnum($0) || "_.-".utf8.contains($0) }
        case .bootOrder:
            return !u.isEmpty && u.count <= 16 && u.allSatisfy { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "p") }
        case .ifname:
            guard let f = s.utf8.first, Self.isAlnum(f), s.utf8.count <= 15 else { return false }
            return s.utf8.allSatisfy { Self.isAlnum($0) || "_.-".utf8.contains($0) }
        case .hostPort: return Self.isHostPort(s, maxPort: 65535, allowEmptyHost: true)
        case .ipv4: return Self.isIPv4(Substring(s))
        case .ipv4CIDR:
            let parts = s.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, Self.isIPv4(parts[0]), parts[1].utf8.count <= 2, let n = Int(parts[1]) else {
                return false
            }
            return n <= 32
        case .pciSlot:
            return (u.count == 3 || u.count == 4) && s.hasPrefix("0x") && UInt8(s.dropFirst(2), radix: 16) != nil
        case .usbID:
            return u.count == 6 && s.hasPrefix("0x") && UInt16(s.dropFirst(2), radix: 16) != nil
        case .serial:
            return !u.isEmpty && u.count <= 20 && u.allSatisfy { Self.isAlnum($0) || "_.-".utf8.contains($0) }
        case .vncListen:
            if s == "none" { return true }
            if s.hasPrefix("unix:") { return StringFormat.path.accepts(String(s.dropFirst(5))) }
            return Self.isHostPort(s, maxPort: 99, allowEmptyHost: true)
        case .spiceListen:
            return s == "unix" || Self.isHostPort(s, maxPort: 65535, allowEmptyHost: true)
        }
    }

    // MARK: - Helpers

    static func isControl(_ b: UInt8) -> Bool { b < 0x20 || b == 0x7F }

    /// Whether `s` has a control character; a tight loop over contiguous UTF-8.
    static func hasControl(_ s: String) -> Bool {
        if let r = s.utf8.withContiguousStorageIfAvailable({ buf in
            for b in buf where b < 0x20 || b == 0x7F { return true }
            return false
        }) { return r }
        return s.utf8.contains(where: isControl)
    }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
    static func isAlnum(_ b: UInt8) -> Bool { isDigit(b) || isLower(b) || (b >= 0x41 && b <= 0x5A) }

    static func isDNSLabel<C: Collection<UInt8>>(_ u: C) -> Bool {
        guard let first = u.first, u.count <= 63 else { return false }
        var last = first
        for b in u {
            guard isDigit(b) || isLower(b) || b == UInt8(ascii: "-") else { return false }
            last = b
        }
        return first != UInt8(ascii: "-") && last != UInt8(ascii: "-")
    }

    /// A DNS label of at most 24 bytes that starts with a lower-case letter.
    static func isDeviceName<C: Collection<UInt8>>(_ u: C) -> Bool {
        guard let first = u.first, isLower(first), u.count <= 24 else { return false }
        return isDNSLabel(u)
    }

    static func isLabelValue<C: Collection<UInt8>>(_ u: C) -> Bool {
        guard let first = u.first, u.count <= 63, isAlnum(first) else { return false }
        var last = first
        for b in u {
            guard isAlnum(b) || "-_.".utf8.contains(b) else { return false }
            last = b
        }
        return isAlnum(last)
    }

    static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.utf8.count <= 3 && p.utf8.allSatisfy(isDigit) && Int(p)! <= 255
        }
    }

    /// A port of up to five digits, from 1 to `max` (from 0 for a VNC display, whose `max` is 99).
    static func isPort(_ s: Substring, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= 5 && s.utf8.allSatisfy(isDigit) && Int(s)! <= max && (max < 100 || Int(s)! >= 1)
    }

    static func isHostPort(_ s: String, maxPort: Int, allowEmptyHost: Bool) -> Bool {
        guard let colon = s.lastIndex(of: ":") else { return false }
        let host = s[..<colon]
        guard isPort(s[s.index(after: colon)...], max: maxPort) else { return false }
        if host.isEmpty { return allowEmptyHost }
        if host.hasPrefix("[") {
            return host.hasSuffix("]") && host.count > 2
                && host.dropFirst().dropLast().utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }
        }
        return host.utf8.allSatisfy { isAlnum($0) || "_.-".utf8.contains($0) }
    }

    /// `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`, addresses IPv4 or empty.
    static func isHostfwd(_ s: String) -> Bool {
        guard let dash = s.firstIndex(of: "-") else { return false }
        let hostPart = s[..<dash], guestPart = s[s.index(after: dash)...]
        // host: proto ':' addr ':' port
        guard let c1 = hostPart.firstIndex(of: ":") else { return false }
        let proto = hostPart[..<c1]
        let rest = hostPart[hostPart.index(after: c1)...]
        guard let c2 = rest.firstIndex(of: ":") else { return false }
        let hostAddr = rest[..<c2], hostPort = rest[rest.index(after: c2)...]
        guard let c3 = guestPart.firstIndex(of: ":") else { return false }
        let guestAddr = guestPart[..<c3], guestPort = guestPart[guestPart.index(after: c3)...]
        guard proto.isEmpty || proto == "tcp" || proto == "udp" else { return false }
        guard hostAddr.isEmpty || isIPv4(hostAddr), guestAddr.isEmpty || isIPv4(guestAddr) else { return false }
        return isPort(hostPort, max: 65535) && isPort(guestPort, max: 65535)
    }
}
