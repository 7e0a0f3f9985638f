package import Manifest
import QemuCtl

// MARK: - HostClaims

/// What a VM claims on the host that another VM of the same state directory must not
/// claim too: its NICs' MAC addresses, its user-network port forwards' host ports and the
/// disk images it writes (QEMU locks them).
///
/// The loader checks MACs within one load; these checks compare the VMs being applied
/// with the VMs *recorded* in the state directory, which another `apply -f other.yaml`
/// created, before anything is created (no image, no state, no QEMU).
package enum HostClaims {
    /// One claim: what kind, the key two VMs must not share, and how to show it.
    struct Claim: Hashable {
        var key: String
        var text: String
    }

    /// The claims of `spec`: `mac:ADDRESS`, and `PROTO:PORT` for each `hostfwd` (any host
    /// address: `0.0.0.0:2222` and `127.0.0.1:2222` collide on the port).
    static func claims(of spec: VirtualMachineSpec) -> [Claim] {
        var out: [Claim] = []
        for disk in spec.disks where !disk.readOnly {
            guard case .file(let path, _) = disk.backend else { continue }
            out.append(Claim(key: "image:" + (Posix.realPath(path) ?? path), text: "the disk image \(path) (written)"))
        }
        for nic in spec.networks {
            out.append(Claim(key: "mac:" + nic.mac.lowercased(), text: "MAC address \(nic.mac.lowercased())"))
            guard case .user(let user) = nic.backend else { continue }
            for rule in user.hostfwd {
                guard let dash = rule.firstIndex(of: "-") else { continue }
                let host = rule[..<dash].split(separator: ":", omittingEmptySubsequences: false)
                guard host.count == 3, let port = Int(host[2]) else { continue }
                let proto = host[0].isEmpty ? "tcp" : String(host[0])
                out.append(Claim(key: "\(proto):\(port)", text: "host port \(proto) \(port) (hostfwd \(rule))"))
            }
        }
        return out
    }

    /// The conflicts between the VMs of `desired` and the VMs recorded in `store` that
    /// are not among them (and, with `prune`, none: those are deleted by the same apply):
    /// one message per claim, naming both VMs.
    package static func conflicts(desired: [VirtualMachine], store: StateStore, prune: Bool) -> [String] {
        guard !prune else { return [] }
        let declared = Set(desired.map(\.name))
        var owners: [String: String] = [:]
        for name in store.recordedNames() where !declared.contains(name) {
            guard let record = try? store.loadRecord(StoredRecord.self, name: name) else { continue }
            for claim in claims(of: record.launch.spec) where owners[claim.key] == nil { owners[claim.key] = name }
        }
        guard !owners.isEmpty else { return [] }
        var problems: [String] = []
        for vm in desired {
            for claim in claims(of: vm.spec) {
                guard let other = owners[claim.key] else { continue }
                problems.append("\(vm.source): error: VM '\(vm.name)': \(claim.text) is also used by VM '\(other)', "
                                + "recorded in \(store.directory) (hint: give each VM its own; `qemuctl describe \(other)` shows its)")
            }
        }
        return problems
    }
}
