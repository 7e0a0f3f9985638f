import CSocketShims
import Foundation
import Manifest
import QMP
import QemuCtl
import QemuCtlTestSupport
import Reconcile
import Testing

// Issue 6, item 2: no manifest value can add or change a QEMU option.
//
// Every string-valued field of the schema (schemas/qemuctl-v1.schema.json, walked below so that a new field
// fails the test until it is covered here) gets every hostile value. Each (field, value) either is refused with
// a diagnostic (manifest: file:line:col on the value's line; mapping: the field's path), or reaches a real
// QEMU started paused, which is then asked over QMP what it made of it: exactly the intended devices, nodes and
// chardevs, each with the literal value. Fields whose back end cannot run here (RBD, tap, bridge, VDE) are
// started anyway and QEMU's own failure shows the literal value arrived (its error message, or the script it ran,
// or the socket it connected to).

// MARK: - Values and fields

/// A per-run marker: if any `$(touch …)` ever ran in a shell, this file appears.
private let pwnedMarker = "/tmp/qc-pwned-\(getpid())"

/// The hostile values, by a short label.
private let hostileValues: [(label: String, value: String)] = [
    ("comma", ","),
    ("double-comma", ",,"),
    ("equals", "="),
    ("snapshot", "snapshot=on"),
    ("options", ",snapshot=on,readonly=on"),
    ("newline", "a\nb"),
    ("nul", "a\u{0}b"),
    ("dash-drive", "-drive"),
    ("shell", "$(touch \(pwnedMarker))"),
    ("quotes", "a\"b'c\\d`e"),
    ("json", #"x","read-only":true,"y":""#),
    ("4KB", String(repeating: "A", count: 4096)),
    ("non-ASCII", "é☃𝄞\u{202E}x"),
    ("brackets", "sw[port=5/group=x]"),
    ("url", "cmd://touch"),
]

/// How a field is exercised once a hostile value is accepted.
private enum Reach {
    /// No hostile value may be accepted (a format without `,` `=` spaces or leading `-`): acceptance is a failure.
    case refusedOnly
    /// Part of the one VM started per hostile value; checked over QMP.
    case combined
    /// A secret's file or variable: read by qemuctl, never given to QEMU (checked on the command line).
    case secretFile
    /// A plain token in a `key=value` list (a CPU feature name): checked on the command line, where it must be
    /// exactly one element of the option's list.
    case token
    /// Started alone; QEMU's failure (message, executed script, connection) shows the literal value arrived.
    case alone
    /// Read by qemuctl only (into the cloud-init seed, or a readiness probe): QEMU's command line is the same
    /// whatever the value (checked against the benign value's).
    case qemuctlOnly
}

/// One string field: where it is in a manifest, a value that is fine, and how it reaches QEMU.
private struct FieldCase: Sendable {
    /// The schema path (`spec.disks[].file.path`; map keys and values as `metadata.labels{key}`).
    var path: String
    /// Spec lines (two-space indent) or a whole `metadata:` block, with `@V` where the value goes.
    var yaml: String
    /// Prepended to the value (paths get a directory of their own; VNC gets `unix:@BASE/…`).
    var prefix: String = ""
    /// A value the manifest accepts, to show the template itself is valid.
    var benign: String
    var reach: Reach
}

/// A document for one VM: `spec` lines, or `metadata` lines when they start with `metadata:`.
private func document(_ body: String, name: String) -> String {
    let head = "apiVersion: qemuctl/v1\nkind: VirtualMachine\n"
    if body.hasPrefix("metadata:") { return head + body + "\nspec:\n  machine: {type: q35, accel: tcg}\n" }
    let machine = body.contains("machine:") ? "" : "  machine: {type: q35, accel: tcg}\n"
    let memory = body.contains("memory:") ? "" : "  memory: {size: 64MiB}\n"
    return head + "metadata:\n  name: \(name)\nspec:\n" + machine + memory + body + "\n"
}

/// Every string field of the schema, with its template.
private let fieldCases: [FieldCase] = {
    func f(_ path: String, _ yaml: String, _ benign: String, _ reach: Reach = .refusedOnly, prefix: String = "") -> FieldCase {
        FieldCase(path: path, yaml: yaml, prefix: prefix, benign: benign, reach: reach)
    }
    let disk = "  disks:\n    - name: d\n"
    let net = "  networks:\n    - name: n\n"
    return [
        f("apiVersion", "HEAD:apiVersion", "qemuctl/v1"),
        f("kind", "HEAD:kind", "VirtualMachine"),
        f("metadata.name", "metadata:\n  name: @V", "web-1"),
        f("metadata.labels{key}", "metadata:\n  name: l\n  labels:\n    @V: v", "team"),
        f("metadata.labels{value}", "metadata:\n  name: l\n  labels:\n    team: @V", "web"),
        f("spec.runState", "  runState: @V", "paused"),
        f("spec.restartPolicy", "  restartPolicy: @V", "onFailure"),
        f("spec.arch", "  arch: @V", "amd64"),
        f("spec.emulator", "  emulator: @V", "emu/qemu", .combined, prefix: "emu/"),
        f("spec.machine.type", "  machine: {type: @V, accel: tcg}", "q35"),
        f("spec.machine.accel", "  machine: {type: q35, accel: @V}", "tcg"),
        f("spec.cpu.model", "  cpu: {model: @V}", "qemu64"),
        f("spec.cpu.features[]", "  cpu: {model: qemu64, features: [@V]}", "+avx2", .token),
        f("spec.memory.size", "  memory: {size: @V}", "64MiB"),
        f("spec.memory.max", "  memory: {size: 64MiB, max: @V}", "128MiB"),
        f("spec.memory.backend", "  memory: {size: 64MiB, backend: @V}", "memfd"),
        f("spec.memory.path", "  memory: {size: 64MiB, backend: file, path: @V}", "mem/ram", .combined, prefix: "mem/"),
        f("spec.firmware.type", "  firmware: {type: @V}", "bios"),
        f("spec.firmware.code", "  firmware: {type: efi, code: @V, vars: /v.fd}", "fw/code", .combined, prefix: "fw/"),
        f("spec.firmware.vars", "  firmware: {type: efi, code: /c.fd, vars: @V}", "fwv/vars", .combined, prefix: "fwv/"),
        f("spec.boot.kernel", "  boot: {kernel: @V}", "k/vmlinuz", .combined, prefix: "k/"),
        f("spec.boot.initrd", "  boot: {kernel: /k, initrd: @V}", "i/initrd", .combined, prefix: "i/"),
        f("spec.boot.cmdline", "  boot: {kernel: /k, cmdline: @V}", "console=ttyS0", .combined),
        f("spec.boot.order", "  boot: {order: @V}", "cdn"),
        f("spec.disks[].name", "  disks:\n    - name: @V\n      file: {path: /d.raw, format: raw}", "root"),
        f("spec.disks[].file.path", disk + "      file: {path: @V, format: raw}", "disk/d.raw", .combined, prefix: "disk/"),
        f("spec.disks[].file.format", disk + "      file: {path: /d.raw, format: @V}", "qcow2"),
        f("spec.disks[].file.backing.path", disk + "      file: {path: /d.qcow2, format: qcow2, backing: {path: @V, format: raw}}",
          "bk/b.raw", .combined, prefix: "bk/"),
        f("spec.disks[].file.backing.format", disk + "      file: {path: /d.qcow2, format: qcow2, backing: {path: /b.raw, format: @V}}", "raw"),
        f("spec.disks[].nbd.unix", disk + "      nbd: {unix: @V}", "nbd/s.sock", .combined, prefix: "nbd/"),
        f("spec.disks[].nbd.host", disk + "      nbd: {host: @V}", "nbd.example"),
        f("spec.disks[].nbd.export", disk + "      nbd: {unix: /n.sock, export: @V}", "data", .combined),
        f("spec.disks[].rbd.pool", disk + "      rbd: {pool: @V, image: i}", "rbd"),
        f("spec.disks[].rbd.image", disk + "      rbd: {pool: p, image: @V}", "img"),
        f("spec.disks[].rbd.snapshot", disk + "      rbd: {pool: p, image: i, snapshot: @V}", "snap1"),
        f("spec.disks[].rbd.conf", disk + "      rbd: {pool: p, image: i, conf: @V}", "ceph/ceph.conf", .alone, prefix: "ceph/"),
        f("spec.disks[].rbd.user", disk + "      rbd: {pool: p, image: i, user: @V}", "admin"),
        f("spec.disks[].rbd.keyFrom.file", disk + "      rbd: {pool: p, image: i, keyFrom: {file: @V}}", "key/k", .secretFile, prefix: "key/"),
        f("spec.disks[].rbd.keyFrom.env", disk + "      rbd: {pool: p, image: i, keyFrom: {env: @V}}", "CEPH_KEY", .secretFile),
        f("spec.disks[].iscsi.portal", disk + "      iscsi: {portal: @V, target: iqn.2024-01.x:t}", "10.0.0.1:3260"),
        f("spec.disks[].iscsi.target", disk + "      iscsi: {portal: \"h:3260\", target: @V}", "iqn.2024-01.x:t"),
        f("spec.disks[].iscsi.user", disk + "      iscsi: {portal: \"h:3260\", target: t, user: @V}", "chap"),
        f("spec.disks[].iscsi.passwordFrom.file", disk + "      iscsi: {portal: \"h:3260\", target: t, user: u, passwordFrom: {file: @V}}",
          "pw/p", .secretFile, prefix: "pw/"),
        f("spec.disks[].iscsi.passwordFrom.env", disk + "      iscsi: {portal: \"h:3260\", target: t, user: u, passwordFrom: {env: @V}}", "CHAP_PW", .secretFile),
        f("spec.disks[].iscsi.initiator", disk + "      iscsi: {portal: \"h:3260\", target: t, initiator: @V}", "iqn.2024-01.x:i"),
        f("spec.disks[].interface", disk + "      file: {path: /d.raw, format: raw}\n      interface: @V", "scsi"),
        f("spec.disks[].serial", disk + "      file: {path: /d.raw, format: raw}\n      serial: @V", "SN-1", .combined),
        f("spec.disks[].cache", disk + "      file: {path: /d.raw, format: raw}\n      cache: @V", "none"),
        f("spec.disks[].pciAddress", disk + "      file: {path: /d.raw, format: raw}\n      pciAddress: @V", "0x10"),
        f("spec.disks[].create.size", disk + "      file: {path: /d.raw, format: raw}\n      create: {size: @V}", "1GiB"),
        f("spec.disks[].create.from.path", disk + "      file: {path: /d.qcow2, format: qcow2}\n      create: {from: {path: @V, format: raw}}",
          "base/b.raw", .combined, prefix: "base/"),
        f("spec.disks[].create.from.format", disk + "      file: {path: /d.qcow2, format: qcow2}\n      create: {from: {path: /b.raw, format: @V}}", "raw"),
        f("spec.disks[].create.mode", disk + "      file: {path: /d.qcow2, format: qcow2}\n      create: {from: {path: /b.raw, format: raw}, mode: @V}", "copy"),
    ] + ["bps", "bpsRead", "bpsWrite", "bpsMax", "bpsReadMax", "bpsWriteMax", "iopsSize"].map { key in
        let base = key.hasSuffix("Max") ? "\(key.dropLast(3)): 1MiB, " : ""
        return f("spec.disks[].throttle.\(key)", disk + "      file: {path: /d.raw, format: raw}\n      throttle: {\(base)\(key): @V}", "2MiB")
    } + [
        f("spec.cdroms[].name", "  cdroms:\n    - name: @V", "cd0"),
        f("spec.cdroms[].path", "  cdroms:\n    - name: c\n      path: @V", "cd/x.iso", .combined, prefix: "cd/"),
        f("spec.cdroms[].interface", "  cdroms:\n    - name: c\n      interface: @V", "scsi"),
        f("spec.networks[].name", "  networks:\n    - name: @V\n      user: {}", "net0"),
        f("spec.networks[].user.net", net + "      user: {net: @V}", "10.0.3.0/24"),
        f("spec.networks[].user.host", net + "      user: {host: @V}", "10.0.2.2"),
        f("spec.networks[].user.dns", net + "      user: {dns: @V}", "10.0.2.3"),
        f("spec.networks[].user.dhcpStart", net + "      user: {dhcpStart: @V}", "10.0.2.15"),
        f("spec.networks[].user.hostname", net + "      user: {hostname: @V}", "guest"),
        f("spec.networks[].user.domain", net + "      user: {domain: @V}", "example.org"),
        f("spec.networks[].user.hostfwd[]", net + "      user: {hostfwd: [@V]}", "tcp:127.0.0.1:2222-:22"),
        f("spec.networks[].tap.ifname", net + "      tap: {ifname: @V}", "tap0"),
        f("spec.networks[].tap.bridge", net + "      tap: {bridge: @V}", "br0"),
        f("spec.networks[].tap.script", net + "      tap: {script: @V}", "tap/up", .alone, prefix: "tap/"),
        f("spec.networks[].tap.downscript", net + "      tap: {downscript: @V}", "tapdown/down", .alone, prefix: "tapdown/"),
        f("spec.networks[].bridge.name", net + "      bridge: {name: @V}", "br0"),
        f("spec.networks[].bridge.helper", net + "      bridge: {name: br0, helper: @V}", "helper/h", .alone, prefix: "helper/"),
        f("spec.networks[].socket.listen", net + "      socket: {listen: @V}", ":1234"),
        f("spec.networks[].socket.connect", net + "      socket: {connect: @V}", "127.0.0.1:1234"),
        f("spec.networks[].socket.mcast", net + "      socket: {mcast: @V}", "230.0.0.1:1234"),
        f("spec.networks[].stream.unix", net + "      stream: {unix: @V, server: true}", "stream/s.sock", .combined, prefix: "stream/"),
        f("spec.networks[].stream.inet", net + "      stream: {inet: @V}", "127.0.0.1:1234"),
        f("spec.networks[].vde.sock", net + "      vde: {sock: @V}", "vde/sw", .alone, prefix: "vde/"),
        f("spec.networks[].vde.group", net + "      vde: {sock: /v, group: @V}", "users"),
        f("spec.networks[].model", net + "      user: {}\n      model: @V", "e1000"),
        f("spec.networks[].mac", net + "      user: {}\n      mac: @V", "52:54:00:12:34:56"),
        f("spec.networks[].link", net + "      user: {}\n      link: @V", "down"),
        f("spec.networks[].pciAddress", net + "      user: {}\n      pciAddress: @V", "0x10"),
        f("spec.display.vnc.listen", "  display: {vnc: {listen: @V}}", "vncsock", .combined, prefix: "unix:@BASE/vnc/"),
        f("spec.display.vnc.passwordFrom.file", "  display: {vnc: {passwordFrom: {file: @V}}}", "vncpw/p", .combined, prefix: "vncpw/"),
        f("spec.display.vnc.passwordFrom.env", "  display: {vnc: {passwordFrom: {env: @V}}}", "VNC_PW", .secretFile),
        f("spec.display.spice.listen", "  display: {spice: {listen: @V}}", "127.0.0.1:5930"),
        f("spec.display.spice.passwordFrom.file", "  display: {spice: {passwordFrom: {file: @V}}}", "spicepw/p", .combined, prefix: "spicepw/"),
        f("spec.display.spice.passwordFrom.env", "  display: {spice: {passwordFrom: {env: @V}}}", "SPICE_PW", .secretFile),
        f("spec.display.spice.compression", "  display: {spice: {compression: @V}}", "off"),
        f("spec.display.video", "  display: {video: @V}", "virtio"),
        f("spec.usb.controller", "  usb: {controller: @V}", "ehci"),
        f("spec.usb.devices[].name", "  usb: {devices: [{name: @V, type: tablet}]}", "tab"),
        f("spec.usb.devices[].type", "  usb: {devices: [{name: u, type: @V}]}", "mouse"),
        f("spec.usb.devices[].vendor", "  usb: {devices: [{name: u, type: host, vendor: @V, product: \"0x0001\"}]}", "0x046d"),
        f("spec.usb.devices[].product", "  usb: {devices: [{name: u, type: host, vendor: \"0x0001\", product: @V}]}", "0x046d"),
        f("spec.rtc.base", "  rtc: {base: @V}", "localtime"),
        f("spec.rtc.clock", "  rtc: {clock: @V}", "vm"),
        f("spec.rtc.driftFix", "  rtc: {driftFix: @V}", "slew"),
        f("spec.cloudInit.userData.file", "  cloudInit: {userData: {file: @V}}", "ud/u", .qemuctlOnly, prefix: "ud/"),
        f("spec.cloudInit.userData.env", "  cloudInit: {userData: {env: @V}}", "USER_DATA", .qemuctlOnly),
        f("spec.cloudInit.userData.inline", "  cloudInit: {userData: {inline: @V}}", "#cloud-config", .qemuctlOnly),
        f("spec.cloudInit.sshAuthorizedKeys[]", "  cloudInit: {sshAuthorizedKeys: [@V]}", "ssh-ed25519 AAAA me", .qemuctlOnly),
        f("spec.cloudInit.networkConfig.file", "  cloudInit: {networkConfig: {file: @V}}", "nc/n", .qemuctlOnly, prefix: "nc/"),
        f("spec.cloudInit.networkConfig.env", "  cloudInit: {networkConfig: {env: @V}}", "NETWORK_CONFIG", .qemuctlOnly),
        f("spec.cloudInit.networkConfig.inline", "  cloudInit: {networkConfig: {inline: @V}}", "version: 2", .qemuctlOnly),
        f("spec.cloudInit.metaData{key}", "  cloudInit:\n    metaData:\n      @V: v", "zone", .qemuctlOnly),
        f("spec.cloudInit.metaData{value}", "  cloudInit:\n    metaData:\n      zone: @V", "eu-1", .qemuctlOnly),
        f("spec.cloudInit.instanceID", "  cloudInit: {instanceID: @V}", "web-2", .qemuctlOnly),
        f("spec.readiness.serialMatch", "  serial: {log: true}\n  readiness: {serialMatch: @V}", "login:", .qemuctlOnly),
        f("spec.audio.backend", "  audio: {backend: @V}", "wav"),
        f("spec.audio.model", "  audio: {model: @V}", "ac97"),
    ]
}()

/// `path` with repeated slashes collapsed, as the manifest loader resolves paths (`a//b` is `a/b`).
private func collapsed(_ path: String) -> String {
    var out = ""
    for ch in path where !(ch == "/" && out.hasSuffix("/")) { out.append(ch) }
    return out
}

/// A YAML double-quoted scalar holding exactly `s`.
private func yamlQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        case "\0": out += "\\0"
        default:
            if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\x%02x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// The manifest text for field `c` with `value` (already prefixed), the value's line, for VM `name`.
private func manifestText(_ c: FieldCase, _ value: String, name: String, base: String) -> (text: String, line: Int) {
    let quoted = yamlQuoted(value.replacingOccurrences(of: "@BASE", with: base))
    let text: String
    switch c.yaml {
    case "HEAD:apiVersion":
        text = "apiVersion: @V\nkind: VirtualMachine\nmetadata:\n  name: \(name)\nspec:\n  machine: {type: q35, accel: tcg}\n"
    case "HEAD:kind":
        text = "apiVersion: qemuctl/v1\nkind: @V\nmetadata:\n  name: \(name)\nspec:\n  machine: {type: q35, accel: tcg}\n"
    default:
        text = document(c.yaml, name: name)
    }
    let line = (text.components(separatedBy: "\n").firstIndex { $0.contains("@V") } ?? -1) + 1
    return (text.replacingOccurrences(of: "@V", with: quoted), line)
}

// MARK: - Schema walk

/// Every string-valued leaf of the JSON Schema (enums, patterns, sizes), map keys and values included.
private func schemaStringFields() throws -> Set<String> {
    let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repoRoot + "/schemas/qemuctl-v1.schema.json"))
    let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    var out: Set<String> = []
    func walk(_ node: [String: Any], _ path: String) {
        let types: [String] = (node["type"] as? String).map { [$0] } ?? (node["type"] as? [String]) ?? []
        if types.contains("object") {
            for (k, v) in (node["properties"] as? [String: Any]) ?? [:] {
                if let child = v as? [String: Any] { walk(child, path.isEmpty ? k : "\(path).\(k)") }
            }
            if let values = node["additionalProperties"] as? [String: Any] {
                if node["propertyNames"] != nil { out.insert("\(path){key}") }
                walk(values, "\(path){value}")
            }
        }
        if types.contains("array"), let items = node["items"] as? [String: Any] { walk(items, path + "[]") }
        if types.contains("string") { out.insert(path) }
        for key in ["oneOf", "anyOf"] {
            for alt in (node[key] as? [[String: Any]]) ?? [] { walk(alt, path) }
        }
    }
    walk(root, "")
    return out
}

// MARK: - Outcomes

private enum Outcome: Sendable, Equatable {
    case refusedByManifest
    case refusedByMapping
    case accepted
}

/// Tallies across the whole run, printed once (the issue's note quotes them).
private final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var counts: [String: Int] = [:]
    func add(_ key: String, _ n: Int = 1) { lock.lock(); counts[key, default: 0] += n; lock.unlock() }
    /// Per field: what happened to each value (M manifest refusal, m:LABEL mapping refusal, A:LABEL accepted).
    private(set) var perField: [String: [String]] = [:]
    func note(_ field: String, _ what: String) { lock.lock(); perField[field, default: []].append(what); lock.unlock() }
    var fieldTable: String {
        lock.lock(); defer { lock.unlock() }
        return perField.sorted { $0.key < $1.key }.map { k, v in
            let refused = v.filter { $0 == "M" }.count
            let rest = v.filter { $0 != "M" }
            return "  \(k): manifest-refused \(refused)/\(v.count)" + (rest.isEmpty ? "" : "; " + rest.joined(separator: " "))
        }.joined(separator: "\n")
    }
    var summary: String { lock.lock(); defer { lock.unlock() }; return counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
}

// MARK: - Helpers for the started VMs

/// Runs a program and waits (off the cooperative pool's threads is not needed: these are short).
private func runProcess(_ path: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Creates `path`'s parent directories and the file with `bytes`.
private func makeFile(_ path: String, bytes: Int = 0, mode: Int = 0o644, contents: String? = nil) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let data = contents.map { Data($0.utf8) } ?? Data(count: bytes)
    guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: mode]) else {
        throw FixtureError("cannot create \(path)")
    }
}

/// Creates `path`'s parent directories and a symbolic link there to `target`.
private func makeLink(_ path: String, to target: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
}

/// An executable script at `path` that appends `$0|$*` to `log` and exits `status`.
private func makeRecordingScript(_ path: String, log: String, status: Int) throws {
    try makeFile(path, mode: 0o755, contents: "#!/bin/sh\nprintf '%s|%s\\n' \"$0\" \"$*\" >> '\(log)'\nexit \(status)\n")
}

/// qemu-nbd serving `image` on `socket` under `export`, until killed.
private final class NBDServer: @unchecked Sendable {
    let process = Process()
    init(socket: String, export: String, image: String) throws {
        try FileManager.default.createDirectory(atPath: (socket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-nbd")
        process.arguments = ["--socket=\(socket)", "--export-name=\(export)", "--format=raw", "--persistent", "--shared=8", image]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }
    /// Waits until the socket accepts connections.
    func ready(_ socket: String) async throws {
        for _ in 0..<500 {
            let fd = csock_unix_connect(socket)
            if fd >= 0 { close(fd); return }
            if !process.isRunning { throw FixtureError("qemu-nbd exited on \(socket)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw FixtureError("qemu-nbd did not listen on \(socket)")
    }
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }
}

/// qom-get of a string property.
private func qomString(_ qmp: QMPClient, _ path: String, _ property: String) async throws -> String? {
    try await qmp.execute("qom-get", arguments: ["path": .string(path), "property": .string(property)]).stringValue
}

// MARK: - The test

@Suite(.timeLimit(.minutes(3)), .offPool) struct OptionInjectionTests {
    /// Every string field of the schema has a row here, and every row is a schema field.
    @Test func everySchemaStringFieldIsCovered() throws {
        let schema = try schemaStringFields()
        let covered = Set(fieldCases.map(\.path))
        #expect(schema.subtracting(covered).sorted() == [], "string fields of the schema with no injection case: add them to fieldCases")
        #expect(covered.subtracting(schema).sorted() == [], "cases for fields the schema does not have")
        #expect(schema.count >= 90)
    }

    /// Each template is valid with a benign value, so a refusal below is the hostile value's doing.
    @Test func everyTemplateIsValidWithABenignValue() throws {
        for c in fieldCases {
            let (text, line) = manifestText(c, c.prefix + c.benign, name: "benign", base: "/b")
            #expect(line > 0, "\(c.path): no @V in template")
            let set = ManifestLoader().load(bytes: Array(text.utf8), file: "benign.yaml", baseDirectory: "/b")
            #expect(!set.hasErrors, "\(c.path): \(set.diagnostics.map(\.description))\n\(text)")
        }
    }

    /// The same refusals through the command line: `qemuctl validate` exits 1 with file:line:col; a value only the
    /// mapping refuses (a bridge helper QEMU would run through a shell) stops `plan` before anything runs.
    @Test func theCommandLineReportsRefusalsWithTheirPlace() async throws {
        let dir = try TempDir("oiv")
        defer { dir.remove() }
        let cases: [(path: String, value: String)] = [
            ("metadata.name", ",snapshot=on,readonly=on"), ("spec.disks[].serial", "a,b"),
            ("spec.networks[].user.hostfwd[]", "-drive"), ("spec.boot.cmdline", "a\nb"),
        ]
        for (i, c) in cases.enumerated() {
            let field = try #require(fieldCases.first { $0.path == c.path })
            let (text, line) = manifestText(field, c.value, name: "v\(i)", base: dir.path)
            let file = dir.file("case\(i).yaml")
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try await QemuctlBinary.run(["validate", "-f", file])
            #expect(r.status == 1, "\(c.path): \(r.err)")
            #expect(r.err.contains("\(file):\(line):"), "\(c.path): \(r.err)")
        }
        let helper = try #require(fieldCases.first { $0.path == "spec.networks[].bridge.helper" })
        let file = dir.file("helper.yaml")
        try manifestText(helper, "h $(touch \(pwnedMarker))", name: "h", base: dir.path).text.write(toFile: file, atomically: true, encoding: .utf8)
        let plan = try await QemuctlBinary.run(["plan", "--state-dir", dir.file("s"), "-f", file])
        #expect(plan.status != 0)
        #expect(plan.err.contains("spec.networks[0].bridge.helper") && plan.err.contains("shell"), "\(plan.err)")
        #expect(!FileManager.default.fileExists(atPath: pwnedMarker))
    }

    @Test func hostileValuesAreRefusedOrReachQEMUVerbatim() async throws {
        let dir = try TempDir("oi")
        defer { dir.remove() }
        let base = dir.path
        let tally = Tally()
        try? FileManager.default.removeItem(atPath: pwnedMarker)

        // 1. Classify every (field, value): manifest refusal, mapping refusal, or accepted.
        var accepted: [Int: [String: String]] = [:]  // value index → field path → manifest value
        var aloneCases: [(field: FieldCase, value: String, index: Int)] = []
        for (vi, hv) in hostileValues.enumerated() {
            for c in fieldCases {
                tally.add("cases")
                let value = c.prefix + hv.value
                let name = "c\(vi)"
                let (text, line) = manifestText(c, value, name: name, base: base)
                let file = "\(c.path)-\(hv.label).yaml"
                let set = ManifestLoader().load(bytes: Array(text.utf8), file: file, baseDirectory: base)
                if set.hasErrors {
                    tally.add("refused-by-manifest")
                    tally.note(c.path, "M")
                    let errors = set.diagnostics.filter { $0.severity == .error }
                    // Reported where the value is (the document head for apiVersion/kind), as file:line:col.
                    #expect(errors.contains { $0.location.line == line && $0.location.file == file },
                            "\(c.path) × \(hv.label): diagnostics not on line \(line): \(errors.map(\.description))")
                    #expect(errors.allSatisfy { $0.description.hasPrefix("\(file):\($0.location.line):\($0.location.column): error: ") })
                    continue
                }
                let vm = try #require(set.virtualMachines.first)
                do {
                    _ = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: base + "/s")
                } catch {
                    tally.add("refused-by-mapping")
                    tally.note(c.path, "m:\(hv.label)")
                    #expect(error.fields.contains { $0.hasPrefix(c.path.replacingOccurrences(of: "[]", with: "[0]")) },
                            "\(c.path) × \(hv.label): mapping refused other fields: \(error)")
                    continue
                }
                tally.note(c.path, "A:\(hv.label)")
                switch c.reach {
                case .refusedOnly:
                    Issue.record("\(c.path) accepted the hostile value \(hv.label) (\(yamlQuoted(hv.value))): give it a check that reaches QEMU")
                case .combined:
                    accepted[vi, default: [:]][c.path] = value
                case .secretFile, .alone, .token, .qemuctlOnly:
                    aloneCases.append((c, value, vi))
                }
            }
        }

        // 2. One VM per hostile value with every accepted combined field, and the lone back ends; started a few at
        // a time (the rest of the suite runs beside this), each checked over QMP or by what QEMU did.
        var jobs: [@Sendable () async throws -> Void] = []
        for (vi, fields) in accepted.sorted(by: { $0.key < $1.key }) {
            jobs.append { try await Self.startAndVerifyCombined(index: vi, fields: fields, base: base, tally: tally) }
        }
        for a in aloneCases {
            let (field, value, index) = (a.field, a.value, a.index)
            jobs.append { try await Self.verifyAlone(field, value: value, index: index, base: base, tally: tally) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var pending = jobs.makeIterator()
            for _ in 0..<4 { if let job = pending.next() { group.addTask { try await job() } } }
            while try await group.next() != nil {
                if let job = pending.next() { group.addTask { try await job() } }
            }
        }
        #expect(!FileManager.default.fileExists(atPath: pwnedMarker), "a shell ran $(touch …)")
        print("option injection: \(tally.summary)\n\(tally.fieldTable)")
        #expect((tally.counts["verified-over-qmp"] ?? 0) >= 100, "\(tally.summary)")
    }

    // MARK: Combined VM

    static let defaults: [String: String] = [
        "spec.emulator": "emu/qemu", "spec.memory.path": "mem/ram", "spec.firmware.code": "fw/code",
        "spec.firmware.vars": "fwv/vars", "spec.boot.kernel": "k/vmlinuz", "spec.boot.initrd": "i/initrd",
        "spec.boot.cmdline": "console=ttyS0", "spec.disks[].file.path": "disk/d.raw", "spec.disks[].nbd.unix": "nbd/s.sock",
        "spec.disks[].nbd.export": "data", "spec.cdroms[].path": "cd/x.iso", "spec.networks[].stream.unix": "stream/s.sock",
        "spec.display.vnc.listen": "unix:@BASE/vnc/v.sock", "spec.display.vnc.passwordFrom.file": "vncpw/p",
        "spec.display.spice.passwordFrom.file": "spicepw/p", "spec.disks[].serial": "SN-1",
        "spec.disks[].file.backing.path": "bk/b.raw", "spec.disks[].create.from.path": "base/b.raw",
    ]

    fileprivate static func startAndVerifyCombined(index vi: Int, fields: [String: String], base root: String, tally: Tally) async throws {
        let base = root + "/v\(vi)"
        let label = hostileValues[vi].label
        func value(_ path: String) -> String {
            (fields[path] ?? defaults[path]!).replacingOccurrences(of: "@BASE", with: base)
        }
        func abs(_ path: String) -> String { collapsed(base + "/" + value(path)) }
        let name = "oi-\(vi)"
        let yaml = """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: \(name)}
            spec:
              emulator: \(yamlQuoted(value("spec.emulator")))
              machine: {type: q35, accel: tcg}
              memory: {size: 64MiB, backend: file, path: \(yamlQuoted(value("spec.memory.path")))}
              firmware: {type: efi, code: \(yamlQuoted(value("spec.firmware.code"))), vars: \(yamlQuoted(value("spec.firmware.vars")))}
              boot: {kernel: \(yamlQuoted(value("spec.boot.kernel"))), initrd: \(yamlQuoted(value("spec.boot.initrd"))), cmdline: \(yamlQuoted(value("spec.boot.cmdline")))}
              disks:
                - name: d
                  file: {path: \(yamlQuoted(value("spec.disks[].file.path"))), format: raw}
                  serial: \(yamlQuoted(value("spec.disks[].serial")))
                - name: n
                  nbd: {unix: \(yamlQuoted(value("spec.disks[].nbd.unix"))), export: \(yamlQuoted(value("spec.disks[].nbd.export")))}
                - name: b
                  file: {path: bov.qcow2, format: qcow2, backing: {path: \(yamlQuoted(value("spec.disks[].file.backing.path"))), format: raw}}
                - name: o
                  file: {path: oov.qcow2, format: qcow2}
                  create: {from: {path: \(yamlQuoted(value("spec.disks[].create.from.path"))), format: raw}}
              cdroms:
                - name: c
                  path: \(yamlQuoted(value("spec.cdroms[].path")))
              networks:
                - name: s
                  stream: {unix: \(yamlQuoted(value("spec.networks[].stream.unix"))), server: true}
              display:
                vnc: {listen: \(yamlQuoted(value("spec.display.vnc.listen"))), passwordFrom: {file: \(yamlQuoted(value("spec.display.vnc.passwordFrom.file")))}}
                spice: {listen: unix, passwordFrom: {file: \(yamlQuoted(value("spec.display.spice.passwordFrom.file")))}}

            """
        // Host files the VM needs, at the literal paths.
        try makeLink(abs("spec.emulator"), to: Fixtures.qemu)
        try FileManager.default.createDirectory(atPath: (abs("spec.memory.path") as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try makeFile(abs("spec.firmware.code"), bytes: 256 << 10)
        try makeFile(abs("spec.firmware.vars"), bytes: 128 << 10)
        try makeLink(abs("spec.boot.kernel"), to: Fixtures.guestKernel)
        try makeLink(abs("spec.boot.initrd"), to: Fixtures.guestInitrd)
        try makeFile(abs("spec.disks[].file.path"), bytes: 1 << 20)
        try makeFile(abs("spec.cdroms[].path"), bytes: 1 << 20)
        // An overlay naming the literal backing path (made by qemu-img, the value one argument), and one made by
        // qemuctl from the literal base path as `apply` would.
        try makeFile(abs("spec.disks[].file.backing.path"), bytes: 1 << 20)
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        made.arguments = ["create", "-q", "-f", "qcow2", "-u", "-b", abs("spec.disks[].file.backing.path"), "-F", "raw", base + "/bov.qcow2", "1M"]
        try made.run()
        made.waitUntilExit()
        #expect(made.terminationStatus == 0, "\(label): qemu-img create")
        try makeFile(abs("spec.disks[].create.from.path"), bytes: 1 << 20)
        #expect(try await ImageCreation.createIfMissing(path: base + "/oov.qcow2", format: "qcow2", size: nil,
                                                        from: .init(path: abs("spec.disks[].create.from.path"), format: .raw, mode: .overlay)),
                "\(label)")
        try FileManager.default.createDirectory(atPath: (abs("spec.networks[].stream.unix") as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let vncSocket = String(value("spec.display.vnc.listen").dropFirst(5))
        try FileManager.default.createDirectory(atPath: (vncSocket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try makeFile(abs("spec.display.vnc.passwordFrom.file"), mode: 0o600, contents: "vnc-secret\n")
        try makeFile(abs("spec.display.spice.passwordFrom.file"), mode: 0o600, contents: "spice-secret\n")
        let nbdImage = base + "/nbd-image.raw"
        try makeFile(nbdImage, bytes: 1 << 20)
        let nbd = try NBDServer(socket: abs("spec.disks[].nbd.unix"), export: value("spec.disks[].nbd.export"), image: nbdImage)
        defer { nbd.stop() }
        try await nbd.ready(abs("spec.disks[].nbd.unix"))

        let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "\(name).yaml", baseDirectory: base)
        #expect(!set.hasErrors, "\(label): \(set.diagnostics.map(\.description))")
        let vm = try #require(set.virtualMachines.first)
        let config = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: root + "/s")
        var started: Instance? = nil
        // A second try only when QEMU started but its monitor stayed silent: a machine starved by the rest of the
        // suite, not a refusal (QEMU's own refusals fail at once and are not retried).
        for attempt in 1...2 where started == nil {
            do {
                started = try await Instance.start(config, options: StartOptions(socketDirectory: root + "/s", startPaused: true, timeout: .seconds(30)))
            } catch where attempt == 1 && error.message.contains("did not answer") {
                continue
            } catch {
                Issue.record("\(label): the VM did not start: \(error)")
                return
            }
        }
        let instance = try #require(started)
        defer { Task { try? await instance.forceStop() } }
        let qmp = instance.qmp

        // Identity and run state.
        #expect(try await qmp.execute("query-name")["name"]?.stringValue == name)
        #expect(try await qmp.queryStatus().status == "prelaunch")
        // QEMU is the binary at the literal emulator path, and no option stands alone that a value spelled.
        let argv = try #require(Posix.commandLine(of: instance.pid))
        #expect(argv.first == abs("spec.emulator"), "\(label)")
        for (i, a) in argv.enumerated() where ["-drive", "-snapshot", "-readonly"].contains(a) {
            // Only ever as the verbatim argument of an option that takes one (the kernel command line).
            #expect(i > 0 && ["-append", "-kernel", "-initrd"].contains(argv[i - 1]), "\(label): \(a) at \(i)")
        }
        // Direct kernel boot: the literal kernel, initrd and command line.
        #expect(try await qomString(qmp, "/machine", "kernel") == abs("spec.boot.kernel"), "\(label)")
        #expect(try await qomString(qmp, "/machine", "initrd") == abs("spec.boot.initrd"), "\(label)")
        #expect(try await qomString(qmp, "/machine", "append") == value("spec.boot.cmdline"), "\(label)")
        // The disk's serial number, as written.
        #expect(try await qomString(qmp, "/machine/peripheral/disk-d", "serial") == value("spec.disks[].serial"), "\(label)")
        // RAM backed by the literal file.
        #expect(try await qomString(qmp, "/objects/ram0", "mem-path") == abs("spec.memory.path"), "\(label)")

        // Block nodes: exactly ours, each with the literal file, the declared driver, no backing, the intended mode.
        let nodes = try await qmp.execute("query-named-block-nodes", arguments: ["flat": true]).arrayValue ?? []
        var byName: [String: JSONValue] = [:]
        for n in nodes { byName[n["node-name"]?.stringValue ?? "?"] = n }
        #expect(Set(byName.keys) == ["file-d", "fmt-d", "file-n", "fmt-n", "file-c", "fmt-c",
                                     "file-b", "fmt-b", "bfile-b", "bfmt-b", "file-o", "fmt-o", "bfile-o", "bfmt-o",
                                     "efi-code-file", "efi-code", "efi-vars-file", "efi-vars"], "\(label): \(byName.keys.sorted())")
        let expectations: [(node: String, drv: String, file: String?, ro: Bool)] = [
            ("file-d", "file", abs("spec.disks[].file.path"), false), ("fmt-d", "raw", abs("spec.disks[].file.path"), false),
            ("file-c", "file", abs("spec.cdroms[].path"), true), ("fmt-c", "raw", abs("spec.cdroms[].path"), true),
            ("efi-code-file", "file", abs("spec.firmware.code"), true), ("efi-code", "raw", abs("spec.firmware.code"), true),
            ("efi-vars-file", "file", abs("spec.firmware.vars"), false), ("efi-vars", "raw", abs("spec.firmware.vars"), false),
            ("file-n", "nbd", nil, false), ("fmt-n", "raw", nil, false),
            ("file-b", "file", base + "/bov.qcow2", false), ("fmt-b", "qcow2", base + "/bov.qcow2", false),
            ("bfile-b", "file", abs("spec.disks[].file.backing.path"), true), ("bfmt-b", "raw", abs("spec.disks[].file.backing.path"), true),
            ("file-o", "file", base + "/oov.qcow2", false), ("fmt-o", "qcow2", base + "/oov.qcow2", false),
            ("bfile-o", "file", abs("spec.disks[].create.from.path"), true), ("bfmt-o", "raw", abs("spec.disks[].create.from.path"), true),
        ]
        for e in expectations {
            let n = byName[e.node]
            #expect(n?["drv"]?.stringValue == e.drv, "\(label) \(e.node)")
            #expect(n?["ro"]?.boolValue == e.ro, "\(label) \(e.node)")
            #expect(n?["backing_file_depth"]?.intValue == 0, "\(label) \(e.node)")
            if let file = e.file { #expect(n?["file"]?.stringValue == file, "\(label) \(e.node)") }
        }
        // The overlays' backing files are the literal paths, below them.
        #expect(byName["fmt-b"]?["backing_file"]?.stringValue == abs("spec.disks[].file.backing.path"), "\(label)")
        #expect(byName["fmt-o"]?["backing_file"]?.stringValue == abs("spec.disks[].create.from.path"), "\(label)")
        // Block backends: only anonymous ones (a -drive would add a named one), attached to our devices.
        let blocks = try await qmp.queryBlock()
        #expect(blocks.allSatisfy { $0.device.isEmpty }, "\(label): \(blocks.map(\.device))")
        let disk = blocks.first { $0.qdev?.contains("/disk-d/") == true }?.inserted
        #expect(disk?.file == abs("spec.disks[].file.path") && disk?.readOnly == false && disk?.driver == "raw", "\(label): \(String(describing: disk))")
        #expect(blocks.first { $0.qdev?.contains("/disk-n/") == true }?.inserted?.driver == "raw", "\(label)")
        let cd = blocks.first { $0.qdev == "cd-c" || $0.qdev?.contains("/cd-c/") == true }?.inserted
        #expect(cd?.file == abs("spec.cdroms[].path") && cd?.readOnly == true, "\(label): \(blocks.map { "\($0.qdev ?? "-") \($0.inserted?.file ?? "-")" })")

        // Devices: exactly the intended ones.
        let peripherals = try await qmp.execute("qom-list", arguments: ["path": "/machine/peripheral"]).arrayValue ?? []
        let ids = Set(peripherals.compactMap { p -> String? in
            guard p["type"]?.stringValue?.hasPrefix("child<") == true else { return nil }
            return p["name"]?.stringValue
        })
        #expect(ids == ["disk-d", "disk-n", "disk-b", "disk-o", "cd-c", "net-s", "video0", "hotplug0", "hotplug1", "hotplug2", "hotplug3"],
                "\(label): \(ids.sorted())")
        // Character devices: the monitor and the console, nothing else.
        let chardevs = try await qmp.execute("query-chardev").arrayValue ?? []
        // (The monitors are qemuctl's own: `qmp` and any further `qmp-…` control sockets in the state directory.)
        let monitors = chardevs.filter { $0["label"]?.stringValue?.hasPrefix("qmp") == true }
        #expect(monitors.allSatisfy { ($0["filename"]?.stringValue ?? "").contains("unix:\(root)/s/") }, "\(label): \(monitors)")
        #expect(Set(chardevs.compactMap { $0["label"]?.stringValue }).subtracting(monitors.compactMap { $0["label"]?.stringValue })
                == ["serial-console"], "\(label)")
        // VNC on the literal socket, with a password; SPICE with its ticket (both read from the literal files).
        let vnc = try await qmp.execute("query-vnc")
        #expect(vnc["family"]?.stringValue == "unix" && vnc["service"]?.stringValue == vncSocket, "\(label): \(vnc)")
        #expect(vnc["auth"]?.stringValue == "vnc", "\(label)")
        #expect(try await qmp.execute("query-spice")["auth"]?.stringValue == "spice", "\(label)")
        // The stream NIC listens on the literal path.
        var st = stat()
        #expect(lstat(abs("spec.networks[].stream.unix"), &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK, "\(label)")
        tally.add("vms-started")
        tally.add("verified-over-qmp", fields.count)
    }

    // MARK: Alone

    fileprivate static func verifyAlone(_ c: FieldCase, value: String, index vi: Int, base root: String, tally: Tally) async throws {
        let base = root + "/a\(vi)-" + c.path.split(separator: ".").suffix(2).joined(separator: "-").replacingOccurrences(of: "[]", with: "")
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let label = "\(c.path) × \(hostileValues[vi].label)"
        let path = collapsed(base + "/" + value)
        let log = base + "/ran.log"
        let name = "oa-\(vi)-\(abs(c.path.hashValue) % 10000)"
        var yaml = manifestText(c, value, name: name, base: base).text
        switch c.path {
        case "spec.networks[].tap.script", "spec.networks[].tap.downscript":
            // The up script fails (QEMU stops there); the down script runs when QEMU quits.
            let up = c.path.hasSuffix("downscript") ? base + "/up" : path
            try makeRecordingScript(up, log: log, status: c.path.hasSuffix("downscript") ? 0 : 1)
            if c.path.hasSuffix("downscript") {
                try makeRecordingScript(path, log: log, status: 0)
                yaml = yaml.replacingOccurrences(of: "tap: {downscript:", with: "tap: {script: \(base)/up, downscript:")
            }
        case "spec.networks[].bridge.helper":
            try makeRecordingScript(path, log: log, status: 1)
        case "spec.networks[].vde.sock":
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        default:
            break
        }
        let set = ManifestLoader().load(bytes: Array(yaml.utf8), file: "\(name).yaml", baseDirectory: base)
        #expect(!set.hasErrors, "\(label): \(set.diagnostics.map(\.description))")
        let vm = try #require(set.virtualMachines.first)
        let config = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: base + "/s")

        let layout = RuntimeLayout(name: name, socketDirectory: base + "/s")
        let cmd = try config.commandLine(LaunchOptions(qmpSocketPath: layout.socketPath, runtimeDirectory: layout.runtimeDirectory,
                                                       pidFile: layout.pidFile, daemonize: true))
        if c.reach == .secretFile {
            // The secret's file or variable is qemuctl's to read; QEMU gets a file in the private runtime
            // directory (RBD, iSCSI) or the value over QMP (VNC, SPICE).
            let expected: Secret = c.path.hasSuffix(".env") ? .environment(value) : .file(path)
            let referenced = cmd.secretFiles.map(\.secret) + cmd.postStartActions.map { action -> Secret in
                switch action { case .setPassword(_, let s): s }
            }
            #expect(referenced == [expected], "\(label)")
            #expect(cmd.secretFiles.allSatisfy { $0.path.hasPrefix(layout.runtimeDirectory + "/") })
            let needle = c.path.hasSuffix(".env") ? value : path
            #expect(!cmd.arguments.contains { $0.contains(needle) }, "\(label): the secret's reference reached QEMU's argv")
            tally.add("secret-reference-never-in-argv")
            return
        }
        if c.reach == .qemuctlOnly {
            // qemuctl's own input (the seed's content, a probe): QEMU's argv is what the benign value gives.
            let benignText = manifestText(c, c.prefix + c.benign, name: name, base: base).text
            let benignSet = ManifestLoader().load(bytes: Array(benignText.utf8), file: "\(name).yaml", baseDirectory: base)
            let benignVM = try #require(benignSet.virtualMachines.first, "\(label): \(benignSet.diagnostics.map(\.description))")
            let benignCmd = try VMConfigMapping.config(for: benignVM, uuid: nil, socketDirectory: base + "/s").commandLine(
                LaunchOptions(qmpSocketPath: layout.socketPath, runtimeDirectory: layout.runtimeDirectory, pidFile: layout.pidFile, daemonize: true))
            #expect(cmd.arguments == benignCmd.arguments, "\(label): the value changed QEMU's command line")
            #expect(cmd.secretFiles.isEmpty && cmd.postStartActions.isEmpty, "\(label)")
            tally.add("qemuctl-only-argv-unchanged")
            return
        }
        if c.reach == .token {
            // A CPU feature: one `name=on|off` element of -cpu, nothing more.
            let i = try #require(cmd.arguments.firstIndex(of: "-cpu"))
            let on = !value.hasPrefix("-")
            let feature = value.hasPrefix("-") || value.hasPrefix("+") ? String(value.dropFirst()) : value
            #expect(cmd.arguments[i + 1].split(separator: ",", omittingEmptySubsequences: false)
                    == ["qemu64", "\(feature)=\(on ? "on" : "off")"], "\(label): \(cmd.arguments[i + 1].prefix(80))")
            #expect(!feature.contains(",") && !feature.contains("="))
            tally.add("token-checked-on-argv")
            return
        }

        // VDE: a switch control socket at the literal path that counts connections and hangs up at once.
        var listener: Int32 = -1
        if c.path == "spec.networks[].vde.sock" {
            listener = csock_unix_listen(path + "/ctl", 4)
            _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        }
        defer { if listener >= 0 { close(listener) } }
        let fd = listener
        let acceptor = Task<Int, Never> {
            var connections = 0
            while fd >= 0 && !Task.isCancelled {
                let peer = accept(fd, nil, nil)
                if peer >= 0 { close(peer); connections += 1 } else { try? await Task.sleep(for: .milliseconds(5)) }
            }
            return connections
        }
        var started: Instance? = nil
        var failure = ""
        for attempt in 1...2 {
            do {
                started = try await Instance.start(config, options: StartOptions(socketDirectory: base + "/s", startPaused: true, timeout: .seconds(30),
                                                                                 launchTimeout: .seconds(20)))
            } catch {
                failure = error.message
            }
            // A script that QEMU could not execute at all (ETXTBSY: a child forked by another test at
            // the moment the script was written still held it open for writing) wrote no log line:
            // once more. A script that ran is judged by its log below.
            let scriptRan = !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").isEmpty
            guard c.path == "spec.networks[].tap.script", !scriptRan, attempt == 1 else { break }
        }
        acceptor.cancel()
        let connections = await acceptor.value
        let ran = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        switch c.path {
        case "spec.disks[].rbd.conf":
            #expect(failure.contains("error reading conf file \(path):"), "\(label): \(failure)")
        case "spec.networks[].tap.script":
            #expect(ran.hasPrefix(path + "|"), "\(label): the up script did not run at the literal path: \(ran) \(failure)")
            // The script's own log above is the proof; QEMU names the failed script on stderr, but a
            // daemonizing QEMU sometimes loses that line (seen once in CI as "no message").
            #expect(failure.contains("network script \(path) failed") || failure.contains("refused to start"), "\(label): \(failure)")
        case "spec.networks[].tap.downscript":
            let instance = try #require(started, "\(label): \(failure)")
            _ = try? await instance.quit()
            _ = await instance.wait(timeout: .seconds(10))
            let after = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(after.contains("\n" + path + "|"), "\(label): the down script did not run at the literal path: \(after)")
        case "spec.networks[].bridge.helper":
            #expect(ran.hasPrefix(path + "|--use-vnet --fd="), "\(label): \(ran) \(failure)")
            #expect(ran.hasSuffix("--br=br0\n"), "\(label): \(ran)")
        case "spec.networks[].vde.sock":
            #expect(listener >= 0, "\(label): cannot listen on \(path)/ctl")
            #expect(connections >= 1, "\(label): QEMU never connected to \(path)/ctl (\(failure))")
        default:
            Issue.record("\(label): no check for this field")
        }
        if let s = started { _ = try? await s.forceStop() }
        tally.add("verified-by-qemu-failure-or-script")
    }
}
