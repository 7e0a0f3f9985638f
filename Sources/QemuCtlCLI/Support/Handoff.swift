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
    @Argument(help: "The VM name.", transform: VMNameArgument.parse)
    var name: String

    @Option(help: "Accept local clients on HOST:PORT (loopback only; port 0 picks a free one). The default.")
    var listen: String = "127.0.0.1:0"

    @Flag(help: "Hand over one connection whose other end is this process's standard input and output (for ssh ProxyCommand-style use).")
    var stdio = false

    @Flag(help: "With --listen: exit after the first client has been handed over.")
    var once = false

    /// `HOST:PORT`, `[::1]:PORT`.
    func listenAddress() throws -> (String, Int) {
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
        do {
            try await DisplayHandoff.check(display, vm: name, socketPath: layout.socketPath, timeout: global.deadline)
        } catch {
            Terminal.fail(error.message)
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
        let (host, port) = try listenAddress()
        let listener: LocalSockets.Listener
        do { listener = try LocalSockets.listenTCP(host: host, port: port) } catch {
            Terminal.fail(error.message)
            throw ExitCode(1)
        }
        defer { LocalSockets.close(listener.fd) }
        let shown = host.contains(":") ? "[\(host)]:\(listener.port)" : "\(host):\(listener.port)"
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
