import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import QemuCtl
import Reconcile
import Synchronization

extension QemuCtlCommand {
    /// `qemuctl console NAME`: the VM's serial console on this terminal.
    struct Console: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach this terminal to a VM's serial console (detach with Ctrl-]).",
            discussion: """
                The console is the VM's first serial port (ttyS0), a socket in its runtime directory. \
                On a terminal, keys go to the guest unchanged (raw mode, so Ctrl-C reaches the guest); \
                type Ctrl-] (the byte 0x1d, as in telnet) to detach: the VM keeps running. With standard \
                input and output as pipes the bytes are copied as they are, and end of input detaches too.

                QEMU serves one console client at a time: while another is attached this command fails \
                with "console busy" instead of waiting.

                --log prints what the guest wrote to the console so far (spec.serial.log: true) and exits.

                Exit status: 0 detached (or the log printed), 1 an error, 3 the VM closed the console.

                EXAMPLES:
                  qemuctl console web-1                          # Ctrl-] detaches
                  qemuctl console web-1 --log                    # the serial log so far
                  # and what the guest writes next, as tail -f
                  qemuctl console web-1 --log --follow
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name.", completion: .vmNames, transform: VMNameArgument.parse)
        var name: String

        @Flag(help: "Print the serial log so far and exit.")
        var log = false

        @Flag(help: "With --log: keep printing what the guest writes, as tail -f does, until Ctrl-C (exit status 0).")
        var follow = false

        func validate() throws {
            if follow && !log { throw ValidationError("--follow follows the serial log: give --log --follow") }
        }

        /// The detach byte: Ctrl-] (group separator, 0x1d).
        static let escapeByte: UInt8 = 0x1d

        func run() async throws {
            let layout = global.store.layout(name)
            if log {
                try printLog(layout)
                return
            }
            guard FileManager.default.fileExists(atPath: layout.consoleSocket) else {
                Terminal.fail("VM \(name) has no console socket at \(layout.consoleSocket): it is not running, or was not launched by qemuctl (see qemuctl get)")
                throw ExitCode(1)
            }
            // A second qemuctl console fails at once on the lock; another kind of client
            // shows in query-chardev (over a short-lived monitor connection).
            let (lockFD, lockError) = Posix.lockFile(layout.consoleLock, wait: false)
            if let lockError {
                Terminal.fail(lockError)
                throw ExitCode(1)
            }
            guard lockFD >= 0 else {
                Terminal.fail("console busy: another qemuctl console is attached to \(name)")
                throw ExitCode(1)
            }
            defer { Posix.closeFD(lockFD) }
            do {
                if let client = try await SerialConsole.connectedClient(vm: name, socketPath: layout.socketPath, timeout: global.deadline) {
                    Terminal.fail("console busy: another client is connected to \(name)'s serial console (\(client)); QEMU serves one at a time")
                    throw ExitCode(1)
                }
            } catch let error as InstanceError {
                Terminal.error("qemuctl: warning: cannot tell whether the console is free (\(error.message)); attaching anyway")
            }
            let socket: Int32
            do { socket = try LocalSockets.connectUnix(layout.consoleSocket) } catch {
                Terminal.fail("\(error.message) (is VM \(name) running?)")
                throw ExitCode(1)
            }
            defer { LocalSockets.close(socket) }
            let wake = SignalWake.install()
            let interactive = RawTerminal.isTerminal(0)
            Terminal.error("Connected to the serial console of \(name). Escape character is '^]' (Ctrl-]).")
            let raw = RawTerminal.enter(0)
            let end = await StreamPump(input: 0, output: 1, socket: socket, escapeByte: Self.escapeByte, signalFD: wake).runDetached()
            raw?.restore()
            let lead = interactive ? "\r\n" : ""
            switch end {
            case .escape, .inputClosed:
                Terminal.error("\(lead)Detached from \(name); the VM keeps running.")
            case .peerClosed:
                Terminal.error("\(lead)The console of \(name) closed (the VM stopped?).")
                throw ExitCode(3)
            case .signal(let s):
                Terminal.error("\(lead)Detached from \(name) on signal \(s).")
                throw ExitCode(128 + s)
            case .failed(let message):
                Terminal.fail(message)
                throw ExitCode(1)
            }
        }

        private func printLog(_ layout: RuntimeLayout) throws {
            let fd = open(layout.serialLog, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if Posix.fileExists(layout.runtimeDirectory) {
                    Terminal.fail("VM \(name) keeps no serial log: set spec.serial.log: true in its manifest (a restart-class change)")
                } else {
                    Terminal.fail("no VM named \(name) in \(global.store.directory)")
                }
                throw ExitCode(1)
            }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var offset = 0
            let watch = follow ? Self.stopOnSignal() : nil
            defer { watch?.1.forEach { $0.cancel() } }
            let stop = watch?.0
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw ValidationError("reading \(layout.serialLog) failed: \(Posix.errorText(errno))") }
                if n > 0 {
                    if Posix.writeAll(1, buffer, count: n) != nil { return }  // stdout closed (a pager quit): stop quietly
                    offset += n
                    continue
                }
                // The end: done, or (--follow) wait for more; a log emptied by a relaunch is read from its start.
                guard let stop else { return }
                while !stop.isSet {
                    var st = stat()
                    if fstat(fd, &st) == 0, Int(st.st_size) < offset {
                        offset = 0
                        lseek(fd, 0, SEEK_SET)
                        break
                    }
                    if fstat(fd, &st) == 0, Int(st.st_size) > offset { break }
                    if Terminal.stdoutClosed { return }
                    usleep(100_000)
                }
                if stop.isSet { return }
            }
        }

        /// A flag set by the first SIGINT or SIGTERM (which then no longer end the process).
        /// - Returns: The flag and the signal sources, to keep while it is read.
        private static func stopOnSignal() -> (StopFlag, [any DispatchSourceSignal]) {
            let flag = StopFlag()
            let sources = [SIGINT, SIGTERM].map { sig in
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { flag.set() }
                source.resume()
                return source
            }
            return (flag, sources)
        }
    }
}

/// Set once by a signal handler, read by a loop (`console --log --follow`).
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    /// Whether a signal came.
    var isSet: Bool { flag.load(ordering: .relaxed) }
    /// Notes the signal.
    func set() { flag.store(true, ordering: .relaxed) }
}
