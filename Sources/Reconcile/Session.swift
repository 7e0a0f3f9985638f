#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
package import Manifest
package import QemuCtl

/// Loads manifests, observes the host and plans: the shared first half of
/// `apply`, `diff` and `plan`.
package struct Session: Sendable {
    /// The state directory.
    package var store: StateStore
    /// The observer.
    package var observer: Observer

    /// Creates a session on `store`.
    package init(store: StateStore, timeout: Duration = .seconds(5)) {
        self.store = store
        self.observer = Observer(store: store, timeout: timeout)
    }

    /// What went wrong before a plan could exist.
    package enum Failure: Error, Sendable {
        /// The manifests have errors (every diagnostic), or paths are unreadable.
        case manifests(ManifestSet)
        /// A VM cannot become a QEMU configuration, or a secret cannot be read.
        case invalid([String])
    }

    /// The manifests, the observation and the plan.
    package struct Result: Sendable {
        /// The loaded manifests.
        package var manifests: ManifestSet
        /// What observation found.
        package var observed: Observer.Report
        /// The plan.
        package var plan: Plan
        /// Each VM's manifest mapped onto a QEMU configuration (without its uuid), once: pass them
        /// to ``Applier/apply(_:observed:configs:)``.
        package var configs: [String: VMConfig]
    }

    /// Loads `paths` (refusing any invalid manifest before touching anything),
    /// checks that every VM maps onto a QEMU configuration and that its secrets can
    /// be read, observes the host and plans.
    /// - Parameters:
    ///   - fingerprint: Whether the plan carries the observed state's fingerprint (``PlanOptions/fingerprint``).
    ///   - only: When given, only these VMs are observed and planned (the manifests are
    ///     still all loaded and checked), and nothing is pruned: the controller's pass for VMs whose
    ///     QEMU just exited, which must not wait for every other VM's monitor to answer.
    ///   - applySet: The manifest set (`--prune-set`); by default the one `paths` make (``ApplySet/init(paths:)``).
    ///   - selector: `-l`: `--prune` deletes only VMs whose recorded labels match.
    package func plan(paths: [String], prune: Bool, restart: PlanOptions.RestartPolicy,
                      fingerprint: Bool = true, only: Set<String>? = nil, applySet: ApplySet? = nil,
                      selector: LabelSelector? = nil) async throws(Failure) -> Result {
        // The QEMUs greet while the manifests load.
        let preconnected = only.map { observer.preconnect($0.sorted()) } ?? observer.takeEarly() ?? observer.preconnect()
        let prune = only == nil && prune
        let set = ManifestLoader(hostFiles: .ignore).load(paths: paths)
        if set.hasErrors { throw .manifests(set) }
        // Nothing declared would make --prune delete every managed VM (empty stdin, an empty or comments-only file).
        if prune && set.virtualMachines.isEmpty {
            throw .invalid(["error: no objects passed to apply: \(paths.joined(separator: ", ")) declare\(paths.count == 1 ? "s" : "") no VM, "
                            + "and --prune with nothing declared would delete every managed VM (hint: pass the manifests; "
                            + "`qemuctl delete NAME` deletes a VM)"])
        }
        var problems: [String] = HostClaims.conflicts(desired: set.virtualMachines, store: store, prune: prune)
        problems += HostChecks.diagnostics(set.virtualMachines).map(\.description)
        var options = PlanOptions(prune: prune, restart: restart, fingerprint: fingerprint)
        options.applySet = applySet ?? ApplySet(paths: paths)
        options.selector = selector
        let markers: SecretMarkers
        do { markers = try SecretMarkers(store: store, create: false) } catch { throw .invalid([error.message]) }
        var configs: [String: VMConfig] = [:]
        for vm in set.virtualMachines {
            do {
                configs[vm.name] = try VMConfigMapping.config(for: vm, uuid: nil, socketDirectory: store.directory)
            } catch {
                problems.append(error.description)
            }
            do {
                options.secretMarkers[vm.name] = try markers.markers(for: vm.spec)
            } catch {
                problems.append("\(vm.source): error: VM '\(vm.name)': \(error.message)")
            }
            let socket = store.layout(vm.name).followerSocketPath  // the longer of its two monitor sockets
            if socket.utf8.count > 107 {
                problems.append("\(vm.source): error: VM '\(vm.name)': its socket path \(socket) is longer than 107 bytes; use a shorter --state-dir")
            }
        }
        if !problems.isEmpty { throw .invalid(problems) }
        let planned = only.map { names in set.virtualMachines.filter { names.contains($0.name) } } ?? set.virtualMachines
        let desired = Dictionary(planned.map { ($0.name, $0.spec) }, uniquingKeysWith: { a, _ in a })
        var report = await observer.observe(extraNames: planned.map(\.name), desired: desired,
                                            preconnected: preconnected)
        let plan = Reconcile.plan(desired: planned, actual: report.vms, options: options)
        if options.prune, let applySet = options.applySet {
            report.warnings += Self.outsideTheSet(report.vms, declared: Set(set.virtualMachines.map(\.name)), applySet: applySet,
                                                  options: options)
        }
        return Result(manifests: set, observed: report, plan: plan, configs: configs)
    }

    /// What `--prune` leaves because another set (or none) applied it: one line per managed VM
    /// that no manifest declares and whose labels match, naming its set.
    static func outsideTheSet(_ vms: [ObservedVM], declared: Set<String>, applySet: ApplySet, options: PlanOptions) -> [String] {
        vms.filter { vm in
            vm.ownership == .managed && !declared.contains(vm.name) && vm.record?.applySet != applySet.id
                && (options.selector?.matches(vm.record?.labels ?? [:]) ?? true)
        }.map { vm in
            if let other = vm.record?.applySet {
                return "\(vm.name) is not in these manifests but belongs to apply set \(other), not \(applySet.id) (\(applySet.origin)): "
                    + "--prune leaves it (prune it with the manifests that applied it, or `qemuctl delete \(vm.name)`)"
            }
            return "\(vm.name) is not in these manifests and has no apply set (applied before sets existed, or adopted): "
                + "--prune never deletes it; `qemuctl delete \(vm.name)` does"
        }
    }
}
