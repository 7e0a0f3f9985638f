#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import Manifest
import QemuCtl

extension Importer {
    /// Loads the printed manifest back and maps it onto a QEMU configuration, as `apply` would.
    ///
    /// - Throws: ``ImportError`` with every diagnostic or mapping problem (for example a port
    ///   forward to port 0, which QEMU accepts and qemuctl does not).
    package static func load(_ vm: ImportedVM, yaml: String, store: StateStore) throws(ImportError) -> VirtualMachine {
        let set = ManifestLoader(hostFiles: .ignore).load(bytes: Array(yaml.utf8), file: "<import>", baseDirectory: "/")
        guard !set.hasErrors, let loaded = set.virtualMachines.first else {
            throw ImportError("the discovered manifest does not load:\n" + set.diagnostics.map(\.description).joined(separator: "\n"))
        }
        do {
            _ = try VMConfigMapping.config(for: loaded, uuid: vm.uuid, socketDirectory: store.directory)
        } catch {
            throw ImportError(error.description)
        }
        return loaded
    }

    /// Records an imported VM in the state directory so that `apply` manages it from now on.
    ///
    /// The manifest is loaded back from `yaml` (the text `qemuctl import` prints), so the
    /// record holds exactly what `validate` and `diff` read from it; it must also map onto
    /// a QEMU configuration, so a later relaunch can start it. The VM's socket stays where
    /// QEMU created it: `STATE/NAME.sock` becomes a symlink to it.
    ///
    /// - Returns: The normalized manifest recorded.
    /// - Throws: ``ImportError`` when the name is taken in the state directory, the
    ///   manifest does not load or map (a bug worth reporting), or a file cannot be written.
    package static func adopt(_ vm: ImportedVM, yaml: String, store: StateStore) throws(ImportError) -> VirtualMachine {
        let loaded = try load(vm, yaml: yaml, store: store)
        let layout = store.layout(vm.name)
        if layout.socketPath.utf8.count > RuntimeLayout.maxSocketPathLength {
            throw ImportError("the socket path \(layout.socketPath) is too long; use a shorter --state-dir")
        }
        if Posix.fileExists(store.recordPath(vm.name)) {
            throw ImportError("a VM named \(vm.name) is already managed in \(store.directory); pass another NAME to import it under")
        }
        do throws(StateError) {
            // The VM directory made and checked as every state file's (never through a link).
            guard let (state, dir) = try store.openVMDirectory(vm.name, create: true) else { throw StateError(message: "cannot create \(layout.runtimeDirectory)") }
            Posix.closeFD(dir)
            Posix.closeFD(state)
        } catch { throw ImportError(error.message) }
        let resolved = URL(fileURLWithPath: vm.socketPath).standardizedFileURL.path
        if resolved != layout.socketPath {
            let existing = try? FileManager.default.destinationOfSymbolicLink(atPath: layout.socketPath)
            if existing != vm.socketPath {
                if Posix.fileExists(layout.socketPath) || existing != nil {
                    throw ImportError("\(layout.socketPath) already exists; another VM uses the name \(vm.name)")
                }
                if symlink(vm.socketPath, layout.socketPath) != 0 {
                    throw ImportError("cannot link \(layout.socketPath) to \(vm.socketPath): \(Posix.errorText(errno))")
                }
            }
        }
        let uuid = vm.uuid.isEmpty ? UUID().uuidString.lowercased() : vm.uuid
        let record = StoredRecord(
            launch: LaunchRecord(uuid: uuid, labels: loaded.labels, spec: loaded.spec),
            pid: vm.pid, accelerator: vm.accelerator,
            acceleratorReasons: ["\(vm.accelerator): as the adopted QEMU runs (qemuctl import)"],
            startedAt: Self.processStart(vm.pid)?.timeIntervalSince1970 ?? Date().timeIntervalSince1970, source: nil,
            adopted: Adoption(pid: vm.pid, startTime: Adoption.startTime(of: vm.pid), socketPath: vm.socketPath,
                              deviceAliases: vm.deviceAliases, adoptedAt: Date().timeIntervalSince1970))
        var proven = record
        proven.launch.pciSlots = vm.pciSlots.isEmpty ? nil : vm.pciSlots
        proven.process = ProcessIdentity.current(pid: vm.pid)
        do { try store.saveRecord(proven, name: vm.name) } catch { throw ImportError(error.message) }
        store.journal(vm.name, "adopted pid=\(vm.pid) socket=\(vm.socketPath)")
        return loaded
    }

    /// When a process started: the time its `/proc/PID` directory was made.
    static func processStart(_ pid: Int32) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: "/proc/\(pid)"))?[.modificationDate] as? Date
    }
}
