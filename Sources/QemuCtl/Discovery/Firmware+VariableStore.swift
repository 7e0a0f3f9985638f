// MARK: - Firmware variable store

extension Firmware {
    /// What ``prepareVariableStore()`` found or did.
    public enum VariableStoreState: Sendable, Equatable {
        /// There is no variable store to prepare (``Firmware/vars`` is `nil`).
        case none
        /// The store existed and was left as it was.
        case existing
        /// The store was created as a copy of ``Firmware/varsTemplate``.
        case created
    }

    /// Makes sure the VM's variable store exists: creates ``vars`` as a 0600 copy of ``varsTemplate``
    /// when nothing has that name yet, and leaves an existing store alone.
    ///
    /// The copy is written beside ``vars`` and linked into place with no-replace semantics, so a file,
    /// directory or symbolic link that appears at ``vars`` meanwhile is never overwritten or followed,
    /// and two starts racing make one copy. Missing parent directories are created 0700.
    ///
    /// - Returns: Whether the store was created, existed, or is not configured.
    /// - Throws: ``FirmwareDiscoveryError/Code-swift.struct/variableStore`` when ``vars`` is missing and
    ///   there is no template, or the copy fails (the message names the files and the error).
    @discardableResult
    public func prepareVariableStore() throws(FirmwareDiscoveryError) -> VariableStoreState {
        guard let vars else { return .none }
        guard let template = varsTemplate else {
            if Posix.fileExists(vars) || Posix.isSymbolicLink(vars) { return .existing }
            throw FirmwareDiscoveryError(
                code: .variableStore,
                message: "the firmware variable store \(vars) does not exist and no template is known to create it from "
                    + "(no firmware descriptor names one for \(code)); create it (a copy of the firmware's VARS image) or name another")
        }
        switch Posix.copyFileNoReplace(from: template, to: vars, mode: 0o600) {
        case .success(.created): return .created
        case .success(.existed): return .existing
        case .failure(let e):
            throw FirmwareDiscoveryError(code: .variableStore,
                                         message: "cannot create the firmware variable store \(vars) from \(template): \(e.message)")
        }
    }

    /// The default place of a VM's variable store when the manifest names none: `NAME.efivars.fd` in
    /// the socket (state) directory, beside `NAME.sock` and outside the VM's runtime directory, so that
    /// deleting the VM keeps it, like a disk image.
    ///
    /// - Parameters:
    ///   - vmName: The VM name (a DNS label: it cannot contain `.`, so the name never collides with a
    ///     VM's runtime directory).
    ///   - socketDirectory: The socket directory; `nil` is ``RuntimeLayout/defaultSocketDirectory``.
    public static func defaultVariableStorePath(vmName: String, socketDirectory: String?) -> String {
        RuntimeLayout(name: vmName, socketDirectory: socketDirectory).socketDirectory + "/\(vmName).efivars.fd"
    }
}
