import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QemuCtl
import Reconcile

/// Options and the run loop `qemuctl vnc` and `qemuctl spice` share.
struct HandoffOptions: ParsableArguments {
    @Argument(help: "The VM name.", completion: .vmNames, transform: VMNameArgument.parse)
    var name: String

    @Option(name: .customLong("socket"),
            help: "Accept clients on this unix socket (created 0600; its directory must be yours and closed to others). Default: DISPLAY-PID.sock in the VM's private runtime directory.")
    var socketPath: String?

    @Option(help: "Accept clients on TCP HOST:PORT instead (loopback only; port 0 picks a free one). Every local user can connect to it: refused for a display without a password unless --insecure-listen.")
    var listen: String?

    @Flag(help: "With --listen: allow it for a display without a password, which hands the VM's screen, keyboard and mouse to any local user.")
    var insecureListen = false

    @Flag(help: "Hand over one connection whose other end is this process's standard input and output (for ssh ProxyCommand-style use).")
    var stdio = false

    @Flag(help: "Exit after the first client has been handed over (not with --stdio).")
    var once = false

    func validate() throws {
        if [socketPath != nil, listen != nil, stdio].filter({ $0 }).count > 1 {
            throw ValidationError("give at most one of --socket, --listen and --stdio")
        }
        if insecureListen && listen == nil { throw ValidationError("--insecure-listen goes with --listen") }
        if listen != nil { _ = try listenAddress() }
    }

    /// `HOST:PORT`, `[::1]:PORT`.
    func listenAddress() throws -> (String, Int) {
        let listen = self.listen ?? ""
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen takes HOST:PORT, e.g. 127.0.0.1:5901")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "127.0.0.1" }
        guard LocalSockets.isLoopback(host) else {
            throw ValidationError("--listen \(listen): only loopback addresses (127.0.0.1, ::1) are allowed; the hand-off never opens a port to the network")
        }
        return (host, port)
    }

    /// Runs the hand-off for `display`.
    func run(_ display: DisplayProtocol, global: GlobalOptions) async throws {
        let layout = global.store.layout(name)
        guard FileManager.default.fileExists(atPath: layout.socketPath) else {
            Terminal.fail("no running VM named \(name) in \(global.store.directory) (no \(layout.socketPath))")
            throw ExitCode(1)
        }
        // A viewer types its password into whatever gets its connection: only the recorded QEMU does.
        let peer = ProcessIdentity.listener(of: layout.socketPath)
        if let why = global.store.disproof(ofPeer: peer?.pid ?? -1, uid: peer?.uid, name: name) {
            Terminal.fail("refusing to hand clients to the monitor of VM \(name): the process on \(layout.socketPath) "
                          + "is not the QEMU qemuctl launched or adopted: \(why)")
            throw ExitCode(1)
        }
        let passwordRequired: Bool
        do {
            passwordRequired = try await DisplayHandoff.check(display, vm: name, socketPath: layout.socketPath, timeout: global.deadline)
        } catch {
            Terminal.fail(error.message)
            throw ExitCode(1)
        }
        // A TCP port on loopback is open to every local user, and the kernel does not say who connects.
        if listen != nil && !passwordRequired && !insecureListen {
            Terminal.fail("refusing --listen \(listen ?? ""): the \(display.rawValue.uppercased()) display of \(name) has no password, "
                          + "so any local user who connects gets its screen, keyboard and mouse",
                          hint: "use the default unix socket (only you can connect), --stdio, or set a password "
                              + "(spec.display.\(display.rawValue).passwordFrom); --insecure-listen accepts the risk")
            throw ExitCode(1)
        }
        let wake = SignalWake.install()
        if stdio {
            try await runStdio(display, layout: layout, global: global, wake: wake)
        } else {
            try await runListener(display, layout: layout, global: global, wake: wake)
        }
    }

    private func runStdio(_ display: DisplayProtocol, layout: RuntimeLayout, global: GlobalOptions, wake: Int32) async throws {
        let (mine, theirs) = try LocalSockets.pair()
        defer { LocalSockets.close(mine) }
        do {
            try await DisplayHandoff.hand(theirs, to: display, vm: name, socketPath: layout.socketPath, timeout: global.deadline)
        } catch {
            LocalSockets.close(theirs)
            Terminal.fail(error.message)
            throw ExitCode(1)
        }
        LocalSockets.close(theirs)
        let end = await StreamPump(input: 0, output: 1, socket: mine, escapeByte: nil, signalFD: wake).runDetached()
        if case .failed(let message) = end {
            Terminal.fail(message)
            throw ExitCode(1)
        }
    }

    private func runListener(_ display: DisplayProtocol, layout: RuntimeLayout, global: GlobalOptions, wake: Int32) async throws {
        let listener: LocalSockets.Listener
        let unix = listen == nil
        let shown: String
        let address = unix ? nil : try listenAddress()
        do throws(InstanceError) {
            if unix {
                let path = socketPath ?? "\(layout.runtimeDirectory)/\(display.rawValue)-\(getpid()).sock"
                listener = try LocalSockets.listenUnix(path: path)
                shown = "unix socket \(path)"
            } else {
                let (host, port) = address ?? ("127.0.0.1", 0)
                listener = try LocalSockets.listenTCP(host: host, port: port)
                shown = host.contains(":") ? "[\(host)]:\(listener.port)" : "\(host):\(listener.port)"
            }
        } catch {
            Terminal.fail(error.message)
            throw ExitCode(1)
        }
        defer {
            LocalSockets.close(listener.fd)
            if unix { unlink(listener.host) }
        }
        Terminal.error("Listening on \(shown): each client is handed to the \(display.rawValue.uppercased()) server of \(name) (Ctrl-C stops)")
        let name = self.name
        while true {
            let accepted: Int32?
            do {
                accepted = try await Self.blocking { () throws(InstanceError) -> Int32? in try LocalSockets.accept(listener, wake: wake) }
            } catch {
                Terminal.fail(error.message)
                throw ExitCode(1)
            }
            guard let client = accepted else { return }  // a signal: stop listening
            // On a unix socket the kernel says who connected: only this user's clients are handed over.
            if unix, let uid = LocalSockets.peerUID(client), uid != Posix.effectiveUID {
                Terminal.error("qemuctl: refused a client of uid \(uid): only uid \(Posix.effectiveUID) may use this hand-off")
                LocalSockets.close(client)
                continue
            }
            let clock = ContinuousClock()
            let start = clock.now
            do {
                try await DisplayHandoff.hand(client, to: display, vm: name, socketPath: layout.socketPath, timeout: global.deadline)
                let ms = Double((clock.now - start).components.attoseconds) / 1e15 + Double((clock.now - start).components.seconds) * 1000
                Terminal.error("client handed to \(name) (\(Terminal.oneDecimal(ms)) ms)")
            } catch {
                Terminal.error("qemuctl: error: \(error.message)")
            }
            LocalSockets.close(client)
            if once { return }
        }
    }

    /// Runs blocking work on a thread of its own.
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(InstanceError) -> T) async throws(InstanceError) -> T {
        try await withTaskExecutorPreference(BlockingWorkExecutor.shared) { () async throws(InstanceError) -> T in try body() }
    }
}
