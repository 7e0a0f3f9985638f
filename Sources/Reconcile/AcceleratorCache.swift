#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl

/// The accelerator probe's answers kept in the state directory
/// (`.accelerator-cache.json`), so each `qemuctl` run does not start QEMU again
/// to learn what the previous one learned.
///
/// An answer is reused only for the same QEMU binary (path, size and modification
/// time), machine type and request, and while `/dev/kvm` is as usable as it was.
struct AcceleratorCache: Sendable {
    let store: StateStore

    init(store: StateStore) { self.store = store }

    func choice(binary: String, machineType: String?, requested: AcceleratorMode) async throws(QEMUDiscoveryError) -> AcceleratorChoice {
        let (size, mtime) = Posix.sizeAndModificationTime(binary) ?? (0, 0)
        let kvmFD = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if kvmFD >= 0 { close(kvmFD) }
        let key = "\(binary)|\(size)|\(Int(mtime))|\(machineType ?? "-")|\(requested.rawValue)|kvm=\(kvmFD >= 0)"
        var entries = load()
        if let hit = entries[key] { return hit }
        let fresh = try await AcceleratorProbe.shared.probe(binary: binary, machineType: machineType, requested: requested)
        entries[key] = fresh
        save(entries)
        return fresh
    }

    private func load() -> [String: AcceleratorChoice] {
        // Read without following a link; a file that is not this user's is ignored (and not replaced).
        guard let bytes = try? store.readOwnFile(".accelerator-cache.json", limit: 1 << 20) else { return [:] }
        return (try? JSONDecoder().decode([String: AcceleratorChoice].self, from: Data(bytes))) ?? [:]
    }

    private func save(_ entries: [String: AcceleratorChoice]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(entries) else { return }
        try? store.writeOwnFile(".accelerator-cache.json", Array(data))
    }
}
