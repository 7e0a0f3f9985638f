package import Manifest
package import QemuCtl

// MARK: - cloud-init seed

extension VirtualMachineSpec.CloudInit {
    /// The NoCloud seed of VM `name` with `uuid`: `instance-id` ``effectiveInstanceID(uuid:)``,
    /// `local-hostname` the VM name, the user-data and network-config read (a file or variable with the
    /// one secret reader, ``SecretMarkers/read(_:path:)``) and the keys to merge.
    ///
    /// - Throws: ``StateError`` naming the field when a file or variable cannot be read (never its value).
    func seed(name: String, uuid: String) throws(StateError) -> NoCloudSeed {
        func text(_ source: Source?, _ field: String) throws(StateError) -> String? {
            switch source {
            case .inline(let t)?: return t
            case .secret(let r)?: return try SecretMarkers.read(r, path: field)
            case nil: return nil
            }
        }
        return NoCloudSeed(instanceID: effectiveInstanceID(uuid: uuid), hostname: name,
                           userData: try text(userData, "spec.cloudInit.userData"),
                           sshAuthorizedKeys: sshAuthorizedKeys,
                           networkConfig: try text(networkConfig, "spec.cloudInit.networkConfig"),
                           metaDataExtras: metaData)
    }
}

extension VirtualMachineSpec.CloudInit {
    /// The user-data as the seed will hold it when it is inline or absent (the keys merged in, as
    /// ``NoCloudSeed/mergedUserData()`` does); `nil` when it comes from a file or variable (not read
    /// here) or cannot be merged (the error says why).
    package func inlineMergedUserData() -> Result<String, CloudInitError>? {
        if case .secret? = userData { return nil }
        var text: String? = nil
        if case .inline(let t)? = userData { text = t }
        do throws(CloudInitError) {
            return .success(try NoCloudSeed(instanceID: "x", hostname: "x", userData: text, sshAuthorizedKeys: sshAuthorizedKeys).mergedUserData())
        } catch {
            return .failure(error)
        }
    }
}

extension Applier {
    /// Writes the NoCloud seed of `vm` (which has `spec.cloudInit`) into its runtime directory as
    /// `cidata.iso`, where the launch attaches it (``VMConfigMapping``), and returns its instance-id.
    ///
    /// The runtime directory is made or checked first (``RuntimeLayout/prepare()``: this user's, 0700,
    /// no links); the volume is made in a private directory inside it and renamed into place
    /// (``NoCloudSeed/writeISO(to:xorriso:)``), mode 0600, so a link planted at the name is replaced, never
    /// followed. User-data is read only here and written only into the seed: the log says how many keys and
    /// which instance-id, never what the user-data holds.
    func writeCloudInitSeed(_ vm: VirtualMachine, uuid: String, log: inout Log) throws(ApplyError) -> String? {
        guard let cloudInit = vm.spec.cloudInit else { return nil }
        let layout = store.layout(vm.name)
        do { try layout.prepare() } catch { throw ApplyError("VM \(vm.name): \(error.message)") }
        let seed: NoCloudSeed
        do { seed = try cloudInit.seed(name: vm.name, uuid: uuid) } catch { throw ApplyError("VM \(vm.name): \(error.message)") }
        let path = layout.runtimeDirectory + "/" + VirtualMachineSpec.CloudInit.seedFileName
        do { try seed.writeISO(to: path) } catch {
            throw ApplyError("VM \(vm.name): spec.cloudInit: \(error.message)")
        }
        log.journal("cloud-init seed written instance-id=\(seed.instanceID)")
        log.say("cloud-init seed (instance-id \(seed.instanceID), \(seed.sshAuthorizedKeys.count) ssh key\(seed.sshAuthorizedKeys.count == 1 ? "" : "s")"
                + (seed.userData == nil ? "" : ", user-data") + (seed.networkConfig == nil ? "" : ", network-config") + ")")
        return seed.instanceID
    }
}
