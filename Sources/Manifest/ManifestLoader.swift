internal import Dispatch

// MARK: - ManifestSet

/// The result of loading manifests: the VMs that decoded and every diagnostic.
///
/// Invalid input is a normal result, not a thrown error: check ``hasErrors``.
package struct ManifestSet: Sendable {
    /// The VMs, in load order (files sorted, then documents in file order). Complete only
    /// when ``hasErrors`` is false; with errors, it holds the VMs that decoded.
    package var virtualMachines: [VirtualMachine]
    /// Every error and warning, in report order.
    package var diagnostics: [ManifestDiagnostic]
    /// The files read, as named in diagnostics.
    package var files: [String]
    /// Each file's bytes, by name, when the loader ``ManifestLoader/keepsSourceText``; else empty.
    package var sourceTexts: [String: [UInt8]] = [:]

    /// Whether any diagnostic is an error.
    package var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    /// Whether any error is a usage problem (a path that cannot be read, or holds no manifests).
    package var hasUnreadablePaths: Bool { diagnostics.contains { $0.code == .unreadable } }

    /// The VMs, or a ``ManifestError`` with every diagnostic when any is an error.
    package func get() throws(ManifestError) -> [VirtualMachine] {
        if hasErrors { throw ManifestError(diagnostics: diagnostics) }
        return virtualMachines
    }
}

// MARK: - ManifestLoader

/// Loads manifests from files, directories and standard input.
///
/// ```swift
/// let set = ManifestLoader().load(paths: ["vms/"])
/// for d in set.diagnostics { print(d) }   // vms/web.yaml:12:7: error: …
/// let vms = try set.get()
/// ```
package struct ManifestLoader: Sendable {
    /// What to do about host files a manifest references (kernels, images, secret files)
    /// that do not exist.
    package enum HostFiles: Sendable {
        /// Do not look at the host: the default, and what makes loading pure.
        case ignore
        /// Report each missing file as a warning (`qemuctl validate`).
        case warn
        /// Report each missing file as an error (`apply`, `plan`).
        case error
    }

    /// Bounds on input size, nesting and aliases.
    package var limits: ManifestLimits
    /// Whether and how missing host files are reported.
    package var hostFiles: HostFiles
    /// How many threads read and decode files (1: all on the caller's thread). With more,
    /// the files are split into contiguous runs, one per thread, and the results joined in
    /// order: the VMs, files and diagnostics are the same as with one thread.
    package var threads: Int
    /// Whether the result keeps each file's bytes (``ManifestSet/sourceTexts``), for messages
    /// that point at a field after decoding (``ManifestSourceMap``). Off by default.
    package var keepsSourceText = false

    /// Creates a loader that works on the caller's thread.
    package init(limits: ManifestLimits = .default, hostFiles: HostFiles = .ignore) {
        self.limits = limits
        self.hostFiles = hostFiles
        self.threads = 1
    }

    /// Creates a loader that reads and decodes files on `threads` threads.
    package init(limits: ManifestLimits = .default, hostFiles: HostFiles = .ignore, threads: Int) {
        self.init(limits: limits, hostFiles: hostFiles)
        self.threads = max(1, threads)
    }

    /// Loads every manifest under `paths`.
    ///
    /// - Parameter paths: files; directories (every `*.yaml` and `*.yml` below, recursively,
    ///   sorted, hidden entries skipped); or `-` for standard input.
    /// - Returns: the VMs and all diagnostics. A path that cannot be read, or a directory
    ///   without manifests, is a diagnostic with code ``ManifestDiagnostic/Code/unreadable``.
    package func load(paths: [String]) -> ManifestSet {
        if threads > 1 { return loadInParallel(paths: paths) }
        var state = LoadState(loader: self)
        let cwd = FileSystem.currentDirectory()
        for path in paths {
            if path == "-" {
                state.addStandardInput(cwd: cwd)
                continue
            }
            switch FileSystem.info(path) {
            case .failure(let f):
                state.unreadable(path, "cannot read '\(path)': \(f.message)")
            case .success(let info) where info.kind == .directory:
                var files: [(String, Int)] = []
                var visited: Set<[UInt64]> = [info.id]
                collect(directory: path, into: &files, visited: &visited, state: &state)
                if files.isEmpty {
                    state.unreadable(path, "no manifests (*.yaml, *.yml) in directory '\(path)'")
                }
                state.expect(files: files.count)
                for (file, size) in files { state.addFile(file, size: size, cwd: cwd) }
            case .success(let info) where info.kind == .file:
                state.addFile(path, size: info.size, cwd: cwd)
            case .success:
                state.unreadable(path, "'\(path)' is not a regular file or directory")
            }
        }
        return state.finish()
    }

    /// Loads manifests from bytes already in memory (tests, benchmarks, editors).
    ///
    /// - Parameters:
    ///   - bytes: the YAML text.
    ///   - file: the name used in diagnostics.
    ///   - baseDirectory: the absolute directory relative paths are resolved against.
    package func load(bytes: [UInt8], file: String, baseDirectory: String) -> ManifestSet {
        var state = LoadState(loader: self)
        if bytes.count > limits.maxFileBytes {
            state.tooLarge(file: file, size: bytes.count)
        } else {
            state.add(bytes: bytes, file: file, baseDirectory: baseDirectory)
        }
        return state.finish()
    }

    /// Loads several in-memory files as one set (cross-file checks included).
    package func load(files: [(name: String, bytes: [UInt8])], baseDirectory: String) -> ManifestSet {
        var state = LoadState(loader: self)
        for (name, bytes) in files {
            if bytes.count > limits.maxFileBytes {
                state.tooLarge(file: name, size: bytes.count)
            } else {
                let dir = PathUtilities.resolve(PathUtilities.directory(of: name), against: baseDirectory)
                state.add(bytes: bytes, file: name, baseDirectory: dir)
            }
        }
        return state.finish()
    }

    /// One file to read, found by walking the paths.
    private enum Job: Sendable {
        case stdin
        case file(path: String, size: Int)
    }

    /// ``load(paths:)`` with the files read and decoded on `threads` threads.
    private func loadInParallel(paths: [String]) -> ManifestSet {
        var state = LoadState(loader: self)
        let cwd = FileSystem.currentDirectory()
        // The walk, on this thread: the files in the order one thread would read them.
        var jobs: [Job] = []
        for path in paths {
            if path == "-" {
                jobs.append(.stdin)
                continue
            }
            switch FileSystem.info(path) {
            case .failure(let f):
                state.unreadable(path, "cannot read '\(path)': \(f.message)")
            case .success(let info) where info.kind == .directory:
                var files: [(String, Int)] = []
                var visited: Set<[UInt64]> = [info.id]
                collect(directory: path, into: &files, visited: &visited, state: &state)
                if files.isEmpty {
                    state.unreadable(path, "no manifests (*.yaml, *.yml) in directory '\(path)'")
                }
                for (file, size) in files { jobs.append(.file(path: file, size: size)) }
            case .success(let info) where info.kind == .file:
                jobs.append(.file(path: path, size: info.size))
            case .success:
                state.unreadable(path, "'\(path)' is not a regular file or directory")
            }
        }
        // Contiguous runs of files, one per thread, each into its own state; joined in order.
        let runs = min(threads, jobs.count)
        if runs > 0 {
            let parts = UnsafeMutablePointer<LoadState>.allocate(capacity: runs)
            defer { parts.deallocate() }
            nonisolated(unsafe) let results = parts
            let loader = self
            let jobs = jobs
            DispatchQueue.concurrentPerform(iterations: runs) { r in
                var part = LoadState(loader: loader)
                for job in jobs[(jobs.count * r / runs)..<(jobs.count * (r + 1) / runs)] {
                    switch job {
                    case .stdin:
                        part.addStandardInput(cwd: cwd)
                    case .file(let path, let size):
                        part.addFile(path, size: size, cwd: cwd)
                    }
                }
                part.releaseBuffer()
                (results + r).initialize(to: part)
            }
            for r in 0..<runs { state.join((parts + r).move()) }
        }
        return state.finish()
    }

    private func collect(
        directory: String, into files: inout [(String, Int)], visited: inout Set<[UInt64]>, state: inout LoadState
    ) {
        switch FileSystem.list(directory) {
        case .failure(let f):
            state.unreadable(directory, "cannot read directory '\(directory)': \(f.message)")
        case .success(let names):
            for (name, kind) in names.sorted(by: { $0.name < $1.name }) where !name.hasPrefix(".") {
                let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
                let isManifestName = name.hasSuffix(".yaml") || name.hasSuffix(".yml")
                if kind == .file {
                    // The common case: no stat; the size is checked after open.
                    if isManifestName { files.append((path, -1)) }
                    continue
                }
                guard case .success(let info) = FileSystem.info(path) else {
                    // A dangling or looping symbolic link (or an entry gone or unreadable): an error like an
                    // unreadable file, never skipped, or `apply --prune` would delete the VM it held.
                    if case .failure(let f) = FileSystem.info(path) {
                        let link = FileSystem.isSymbolicLink(path) ? " (a symbolic link whose target cannot be read)" : ""
                        state.unreadable(path, "cannot read '\(path)': \(f.message)\(link)")
                    }
                    continue
                }
                if info.kind == .directory {
                    if visited.insert(info.id).inserted {
                        collect(directory: path, into: &files, visited: &visited, state: &state)
                    }
                } else if info.kind == .file, isManifestName {
                    files.append((path, info.size))
                }
            }
        }
    }
}

// MARK: - LoadState

/// Accumulates documents and diagnostics across files, then runs the cross-file checks.
private struct LoadState {
    let loader: ManifestLoader
    var diagnostics: [ManifestDiagnostic] = []
    var vms: [VirtualMachine] = []
    /// Per VM in `vms`: the MACs and where they come from.
    var macs: [[(mac: String, node: YAMLNode, derived: Bool)]] = []
    var files: [String] = []
    var fileOfDecoded: [String] = []
    var sourceTexts: [String: [UInt8]] = [:]
    /// The nodes of the file being read, reused from file to file.
    let storage = YAMLStorage()
    /// The decoding context, reused from file to file.
    var context: DecodeContext?
    /// The bytes of the file being read, reused from file to file (freed by ``finish()``).
    var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    init(loader: ManifestLoader) { self.loader = loader }

    /// Makes room for `count` more files of one VM each (the usual layout), so the arrays of a
    /// large directory are not copied as they grow.
    mutating func expect(files count: Int) {
        vms.reserveCapacity(vms.count + count)
        macs.reserveCapacity(macs.count + count)
        files.reserveCapacity(files.count + count)
    }

    mutating func unreadable(_ path: String, _ message: String) {
        diagnostics.append(.init(code: .unreadable, at: SourceLocation(file: path, line: 0, column: 0), message))
    }

    mutating func tooLarge(file: String, size: Int?) {
        let limit = ByteSize.format(UInt64(loader.limits.maxFileBytes))
        let actual = size.map { " (\(ByteSize.format(UInt64($0))))" } ?? ""
        diagnostics.append(.init(
            code: .syntax, at: SourceLocation(file: file, line: 1, column: 1),
            "file is larger than the \(limit) limit\(actual)", hint: "split it, or raise the limit"))
        files.append(file)
    }

    mutating func addFile(_ path: String, size: Int, cwd: String) {
        if size > loader.limits.maxFileBytes {
            tooLarge(file: path, size: size)
            return
        }
        switch FileSystem.readFile(path, limit: loader.limits.maxFileBytes, size: size, into: &buffer) {
        case .failure(let f):
            unreadable(path, "cannot read '\(path)': \(f.message)")
        case .success(nil):
            tooLarge(file: path, size: nil)
        case .success(let count?):
            let dir = PathUtilities.resolve(PathUtilities.directory(of: path), against: cwd)
            add(bytes: UnsafeRawBufferPointer(rebasing: buffer[..<count]), file: path, baseDirectory: dir)
        }
    }

    /// Reads standard input (a regular file larger than the limit is refused unread).
    mutating func addStandardInput(cwd: String) {
        switch FileSystem.readToEnd(fd: 0, limit: loader.limits.maxFileBytes, size: -1, into: &buffer) {
        case .failure(let f):
            unreadable("-", "cannot read standard input: \(f.message)")
        case .success(nil):
            tooLarge(file: "-", size: nil)
        case .success(let count?):
            add(bytes: UnsafeRawBufferPointer(rebasing: buffer[..<count]), file: "-", baseDirectory: cwd)
        }
    }

    mutating func add(bytes: [UInt8], file: String, baseDirectory: String) {
        bytes.withUnsafeBytes { add(bytes: $0, file: file, baseDirectory: baseDirectory) }
    }

    mutating func add(bytes: UnsafeRawBufferPointer, file: String, baseDirectory: String) {
        files.append(file)
        if loader.keepsSourceText { sourceTexts[file] = Array(bytes) }
        let reader = LibYAMLReader(file: file, limits: loader.limits)
        let before = diagnostics.count
        let documents = reader.read(bytes, into: storage, diagnostics: &diagnostics)
        if diagnostics.count == before, !documents.contains(where: { $0.root != nil }) {
            // An empty file, only comments, only '---': an error, so that `apply --prune` never reads
            // "nothing" as "delete every VM".
            let name = file == "-" ? "standard input" : "'\(file)'"
            let found = bytes.isEmpty ? (file == "-" ? "the input is empty" : "the file is empty") : documents.isEmpty ? "only comments or blank lines"
                : "only empty documents"
            diagnostics.append(.init(
                at: SourceLocation(file: file, line: 1, column: 1), "no manifest in \(name): \(found)",
                hint: "a manifest starts with 'apiVersion: \(FieldTable.apiVersion)' and 'kind: \(FieldTable.kind)'"))
        }
        let ctx: DecodeContext
        if let c = context {
            ctx = c
            ctx.start(file: file, baseDirectory: baseDirectory)
        } else {
            ctx = DecodeContext(file: file, baseDirectory: baseDirectory, hostFiles: loader.hostFiles)
            context = ctx
        }
        let decoder = SpecDecoder(ctx: ctx)
        // The readers refer to the context without retaining it: keep it alive throughout.
        withExtendedLifetime(ctx) { storage.withTree { tree in
            ctx.tree = tree
            defer { ctx.tree = .empty }
            for document in documents {
                guard let root = document.root else { continue }
                if let d = decoder.decode(root) {
                    vms.append(d.vm)
                    macs.append(d.macs)
                }
            }
        } }
        diagnostics.append(contentsOf: ctx.diagnostics)
    }

    /// Frees the file buffer (``finish()`` does it too).
    mutating func releaseBuffer() {
        buffer.deallocate()
        buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    }

    /// Appends what `part` loaded, as if this state had loaded it.
    mutating func join(_ part: LoadState) {
        diagnostics.append(contentsOf: part.diagnostics)
        vms.append(contentsOf: part.vms)
        macs.append(contentsOf: part.macs)
        files.append(contentsOf: part.files)
        sourceTexts.merge(part.sourceTexts) { first, _ in first }
    }

    /// Cross-document checks: names unique across the set, MAC addresses unique.
    mutating func finish() -> ManifestSet {
        buffer.deallocate()
        buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        var byName: [String: SourceLocation] = [:]
        var seenMACs: [String: (SourceLocation, String)] = [:]
        byName.reserveCapacity(vms.count)
        seenMACs.reserveCapacity(vms.count * 2)
        // By index: a VirtualMachine is large, and copying one costs a retain per string.
        for i in vms.indices {
            let name = vms[i].name
            let here = vms[i].source
            if !name.isEmpty {
                if let first = byName[name] {
                    diagnostics.append(.init(
                        at: here, "VM '\(name)' is defined twice: at \(first) and at \(here)",
                        hint: "names must be unique across all manifests"))
                } else {
                    byName[name] = here
                }
            }
            for (mac, node, derived) in macs[i] {
                let at = SourceLocation(file: here.file, line: Int(node.line), column: Int(node.column))
                if let first = seenMACs[mac] {
                    diagnostics.append(.init(
                        at: at, "MAC address \(mac) is also used by VM '\(first.1)' at \(first.0)",
                        hint: derived ? "the derived addresses collide; set 'mac' explicitly" : "MAC addresses must be unique"))
                } else {
                    seenMACs[mac] = (at, name)
                }
            }
        }
        diagnostics.sort(by: ManifestDiagnostic.reportOrder)
        return ManifestSet(virtualMachines: vms, diagnostics: diagnostics, files: files, sourceTexts: sourceTexts)
    }
}

// MARK: - JSON report

extension ManifestSet {
    /// The set as one JSON object: `valid`, `diagnostics` (file, line, column, severity,
    /// code, message, hint) and `virtualMachines` (name, file, line, column), keys in a
    /// fixed order, for `qemuctl validate -o json`.
    package func jsonReport() -> String {
        let diags: [JSONValue] = diagnostics.map { d in
            .object([
                ("file", .string(d.location.file)), ("line", .int(Int64(d.location.line))),
                ("column", .int(Int64(d.location.column))), ("severity", .string(d.severity.rawValue)),
                ("code", .string(d.code.rawValue)), ("message", .string(d.message)),
                ("hint", d.hint.map(JSONValue.string) ?? .null),
            ])
        }
        let vms: [JSONValue] = hasErrors ? [] : virtualMachines.map { vm in
            .object([
                ("name", .string(vm.name)), ("file", .string(vm.source.file)),
                ("line", .int(Int64(vm.source.line))), ("column", .int(Int64(vm.source.column))),
            ])
        }
        var out = ""
        JSONValue.object([("valid", .bool(!hasErrors)), ("diagnostics", .array(diags)), ("virtualMachines", .array(vms))])
            .rendered(into: &out)
        return out + "\n"
    }
}

extension VirtualMachine {
    /// One line for `validate`: `web-1: valid (amd64, 2 vCPUs, 2GiB, 2 disks, 1 NIC) — vms/web.yaml:9:9`.
    package var summary: String {
        var line: [UInt8] = []
        appendSummary(to: &line)
        return String(decoding: line, as: UTF8.self)
    }

    /// Appends ``summary`` to `out` as UTF-8 (no line break), without building its parts as
    /// strings of their own (`validate` prints one line per VM of a fleet).
    package func appendSummary(to out: inout [UInt8]) {
        func text(_ s: String) {
            var s = s
            s.withUTF8 { out.append(contentsOf: $0) }
        }
        func number(_ n: some BinaryInteger) {
            if n < 0 { out.append(UInt8(ascii: "-")) }
            var v = UInt64(n.magnitude)
            // The digits, lowest first, in a stack buffer (a UInt64 has at most 20).
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { d in
                var count = 0
                repeat {
                    d[count] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                    count += 1
                } while v > 0
                while count > 0 {
                    count -= 1
                    out.append(d[count])
                }
            }
        }
        func plural(_ n: Int, _ word: String) {
            number(n)
            out.append(UInt8(ascii: " "))
            text(word)
            if n != 1 { out.append(UInt8(ascii: "s")) }
        }
        text(name)
        text(": valid (")
        text(spec.arch.rawValue)
        text(", ")
        plural(spec.cpu.count, "vCPU")
        text(", ")
        // ByteSize.format, digit by digit.
        let size = spec.memory.size
        var unitName = "B"
        var amount = size
        for (name, unit) in [("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where size >= unit && size % unit == 0 {
            (unitName, amount) = (name, size / unit)
            break
        }
        number(amount)
        text(unitName)
        text(", ")
        plural(spec.disks.count, "disk")
        text(", ")
        plural(spec.networks.count, "NIC")
        text(", ")
        text(spec.runState.rawValue)
        text(") — ")
        text(source.file)
        out.append(UInt8(ascii: ":"))
        number(source.line)
        out.append(UInt8(ascii: ":"))
        number(source.column)
    }
}

// MARK: - Benchmark support

extension ManifestLoader {
    /// Reads `files` into nodes only (libyaml events and the node arena, no decoding), for
    /// `bench/yaml`'s breakdown of where the time goes. Returns the number of documents.
    package func readOnly(files: [(name: String, bytes: [UInt8])]) -> Int {
        let storage = YAMLStorage()
        var diagnostics: [ManifestDiagnostic] = []
        var documents = 0
        for (name, bytes) in files {
            let reader = LibYAMLReader(file: name, limits: limits)
            documents += bytes.withUnsafeBytes { reader.read($0, into: storage, diagnostics: &diagnostics) }.count
        }
        return documents
    }
}
