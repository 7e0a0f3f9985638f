package import Manifest

extension VirtualMachineSpec {
    /// Every secret the spec references, by the field path that
    /// ``PlanOptions/secretMarkers`` and ``LaunchRecord/secrets`` use.
    ///
    /// `apply` reads each one (file or environment), derives its ``SecretMarker`` and passes the
    /// markers to the planner; after setting a password it stores the marker in the record.
    ///
    /// ```swift
    /// var markers: [String: SecretMarker] = [:]
    /// for (path, ref) in vm.spec.secretReferences { markers[path] = try marker(of: read(ref)) }
    /// options.secretMarkers[vm.name] = markers
    /// ```
    package var secretReferences: [(path: String, reference: SecretReference)] {
        var out: [(String, SecretReference)] = []
        for d in disks {
            switch d.backend {
            case .rbd(let r): if let k = r.keyFrom { out.append(("spec.disks[\(d.name)].rbd.keyFrom", k)) }
            case .iscsi(let i): if let p = i.passwordFrom { out.append(("spec.disks[\(d.name)].iscsi.passwordFrom", p)) }
            case .file, .nbd: break
            }
        }
        if let p = display.vnc?.passwordFrom { out.append(("spec.display.vnc.passwordFrom", p)) }
        if let p = display.spice?.passwordFrom { out.append(("spec.display.spice.passwordFrom", p)) }
        if case .secret(let r)? = cloudInit?.userData { out.append(("spec.cloudInit.userData", r)) }
        if case .secret(let r)? = cloudInit?.networkConfig { out.append(("spec.cloudInit.networkConfig", r)) }
        return out
    }
}
