import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Reconcile

/// Just `--state-dir`, for commands whose `--timeout` means something else (`stop`).
struct StateDirOption: ParsableArguments {
    @Option(name: .customLong("state-dir"),
            help: "Where VM sockets and state live (env QEMUCTL_STATE_DIR; default /var/run/qemu as root, ~/.cache/qemuctl otherwise).",
            completion: .directory)
    var stateDir: String?

    @OptionGroup var verbosity: VerbosityOption

    /// The state store these options select.
    var store: StateStore { StateStore(directory: stateDir ?? StateStore.defaultDirectory()) }

    /// Refuses an unsafe state directory before the command runs (see ``StateDirectoryCheck``).
    func validate() throws {
        try StateDirectoryCheck.run(store)
    }
}

extension CompletionKind {
    /// The VMs of the state directory (`--state-dir` on the command line being
    /// completed, else QEMUCTL_STATE_DIR or the default): every VM with a readable
    /// launch record.
    static var vmNames: CompletionKind {
        .custom { words, _, prefix in
            var dir: String? = nil
            for (i, w) in words.enumerated() {
                if w == "--state-dir", i + 1 < words.count { dir = words[i + 1] }
                if w.hasPrefix("--state-dir=") { dir = String(w.dropFirst("--state-dir=".count)) }
            }
            return VMNames.managed(in: StateStore(directory: dir ?? StateStore.defaultDirectory())).filter { $0.hasPrefix(prefix) }
        }
    }
}

/// Names of the VMs in a state directory.
enum VMNames {
    /// Recorded VMs plus any `NAME.sock`, sorted (what `events` follows); only names that pass
    /// the VM name rule (``VMNameArgument``), so no path is built from a stray entry's text.
    static func list(in store: StateStore) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: store.directory)) ?? []
        let sockets = entries.filter { $0.hasSuffix(".sock") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) }
        return Array(Set(store.recordedNames() + sockets)).filter(VMNameArgument.isValid).sorted()
    }

    /// What completes as a VM name: the VMs with a launch record that loads, sorted: not a bare `NAME.sock` (a QEMU qemuctl
    /// does not manage, or what a failed launch left), not a directory whose record is missing
    /// or unreadable (a half-created VM); only names that pass the VM name rule
    /// (``VMNameArgument``), so no path is built from a stray entry's text.
    static func managed(in store: StateStore) -> [String] {
        store.recordedNames().filter(VMNameArgument.isValid)
            .filter { (try? store.loadRecord(StoredRecord.self, name: $0)) != nil }.sorted()
    }
}
