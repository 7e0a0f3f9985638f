// vmstatus NAME [--dir SOCKET-DIR] [--throttle DISK BYTES-PER-SECOND]
//
// Attaches to the QEMU called NAME (its QMP socket is SOCKET-DIR/NAME.sock; the default
// directory is the library's: /var/run/qemu as root, ~/.cache/qemuctl otherwise), prints its
// run state and disks, and optionally caps one disk's bandwidth, reading the limit back.
import QemuCtl
import QMP

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    let line = "vmstatus: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(1)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var directory: String?
var throttle: (disk: String, bps: Int)?
var name: String?
while !arguments.isEmpty {
    let argument = arguments.removeFirst()
    switch argument {
    case "--dir":
        guard !arguments.isEmpty else { fail("--dir needs a directory") }
        directory = arguments.removeFirst()
    case "--throttle":
        guard arguments.count >= 2, let bps = Int(arguments[1]), bps >= 0 else {
            fail("--throttle needs a disk name and a number of bytes per second")
        }
        throttle = (arguments[0], bps)
        arguments.removeFirst(2)
    default:
        guard name == nil, !argument.hasPrefix("-") else { fail("usage: vmstatus NAME [--dir DIR] [--throttle DISK BPS]") }
        name = argument
    }
}
guard let name else { fail("usage: vmstatus NAME [--dir DIR] [--throttle DISK BPS]") }

do {
    let vm = try await Instance.attach(name: name, socketDirectory: directory, timeout: .seconds(5))
    defer { vm.close() }
    let state = try await vm.refreshState()
    print("\(vm.name): \(state) (pid \(vm.pid))")
    if let throttle {
        var limits = QMPIOThrottle()
        limits.bps = throttle.bps
        try await vm.setIOThrottle(disk: throttle.disk, limits)
    }
    for disk in try await vm.blockDevices() {
        guard let inserted = disk.inserted else { continue }
        print("  \(disk.qdev ?? disk.device): \(inserted.driver), bps limit \(inserted.throttle.bps)")
    }
} catch {
    fail("\(error)")
}
