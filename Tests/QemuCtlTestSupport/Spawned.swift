import CSocketShims
#if canImport(Glibc)
import Glibc
#endif
public import Foundation
import Synchronization

/// A `qemuctl` (or any program) left running while a test talks to it: through a
/// pseudo-terminal (standard input, output and error are the pty's slave side, as
/// in a terminal emulator) or through pipes. Reads never block a thread of the
/// cooperative pool: descriptors are non-blocking and polled between short sleeps.
public final class Spawned: Sendable {
    /// The process.
    public let process: Process
    /// The descriptor the test writes to: the pty master, or the stdin pipe.
    private let inputFD: Int32
    /// The descriptor the test reads the output from: the pty master, or the stdout pipe.
    private let outputFD: Int32
    /// The stderr pipe (pipe mode only), else -1.
    private let errorFD: Int32
    /// The pty's slave side (pty mode only), kept open by the test, else -1.
    public let slaveFD: Int32
    private let state = Mutex<(out: [UInt8], err: [UInt8], inputClosed: Bool)>(([], [], false))

    /// Starts `path ARGUMENTS` with `environment` added, on a new pty (`pty: true`) or pipes.
    public init(_ arguments: [String], path: String = QemuctlBinary.path, environment: [String: String] = [:],
                pty: Bool) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        p.environment = env
        if pty {
            var master: Int32 = -1, slave: Int32 = -1
            var size = winsize(ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0)
            guard openpty(&master, &slave, nil, nil, &size) == 0 else { throw FixtureError("openpty: \(String(cString: strerror(errno)))") }
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            _ = fcntl(master, F_SETFD, FD_CLOEXEC)
            _ = fcntl(slave, F_SETFD, FD_CLOEXEC)
            let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
            p.standardInput = handle
            p.standardOutput = handle
            p.standardError = handle
            inputFD = master
            outputFD = master
            errorFD = -1
            slaveFD = slave
        } else {
            let input = Pipe(), output = Pipe(), error = Pipe()
            p.standardInput = input
            p.standardOutput = output
            p.standardError = error
            inputFD = dup(input.fileHandleForWriting.fileDescriptor)
            outputFD = dup(output.fileHandleForReading.fileDescriptor)
            errorFD = dup(error.fileHandleForReading.fileDescriptor)
            for fd in [inputFD, outputFD, errorFD] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            for fd in [outputFD, errorFD] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            slaveFD = -1
            process = p
            try p.run()
            // The child has its copies; close the parent's originals so end of file is seen.
            try? input.fileHandleForWriting.close()
            try? input.fileHandleForReading.close()
            try? output.fileHandleForWriting.close()
            try? output.fileHandleForReading.close()
            try? error.fileHandleForWriting.close()
            try? error.fileHandleForReading.close()
            return
        }
        process = p
        try p.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        // Each descriptor once: closeInput() may have closed the input already, and closing its
        // number again would close whatever another test opened since (seen: another test's
        // pipe read failing with EAGAIN/EBADF inside Foundation).
        let inputClosed = state.withLock { $0.inputClosed }
        for fd in Set([inputClosed && slaveFD < 0 ? -1 : inputFD, outputFD, errorFD, slaveFD]) where fd >= 0 { close(fd) }
    }

    /// Writes bytes to the program's input.
    public func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(inputFD, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return }
            offset += n
        }
    }

    /// Writes text to the program's input.
    public func write(_ text: String) { write(Array(text.utf8)) }

    /// Closes the input pipe (pipe mode): the program sees end of file.
    public func closeInput() {
        let first = state.withLock { s in
            defer { s.inputClosed = true }
            return !s.inputClosed
        }
        if first && slaveFD < 0 { close(inputFD) }
    }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        for (fd, isError) in [(outputFD, false), (errorFD, true)] where fd >= 0 {
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                state.withLock { s in
                    if isError { s.err += buffer[0..<n] } else { s.out += buffer[0..<n] }
                }
            }
        }
    }

    /// Everything read from the output so far.
    public var output: [UInt8] { drain(); return state.withLock { $0.out } }
    /// The output so far as text.
    public var outputText: String { String(decoding: output, as: UTF8.self) }
    /// Everything read from the stderr pipe so far (pipe mode).
    public var errorText: String { drain(); return String(decoding: state.withLock { $0.err }, as: UTF8.self) }

    /// Waits until `predicate` holds for the output (and stderr) text; returns the seconds it took.
    @discardableResult
    public func waitFor(_ what: String, timeout: Duration = .seconds(30),
                        _ predicate: (_ output: String, _ error: String) -> Bool) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            drain()
            let (o, e) = state.withLock { (String(decoding: $0.out, as: UTF8.self), String(decoding: $0.err, as: UTF8.self)) }
            if predicate(o, e) {
                let d = clock.now - start
                return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            }
            if clock.now - start > timeout {
                throw FixtureError("no \(what) within \(timeout); output so far: \(o.debugDescription); stderr: \(e.debugDescription)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Reads exactly `count` more bytes of output after `offset`, waiting up to `timeout`.
    public func read(_ count: Int, after offset: Int, timeout: Duration = .seconds(20)) async throws -> [UInt8] {
        try await waitFor("\(count) bytes", timeout: timeout) { _, _ in true && self.state.withLock { $0.out.count } >= offset + count }
        return state.withLock { Array($0.out[offset..<(offset + count)]) }
    }

    /// Waits for the process to exit; its status, or `nil` at the timeout.
    public func waitForExit(timeout: Duration = .seconds(20)) async -> Int32? {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while process.isRunning {
            if clock.now > end { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        drain()
        return process.terminationStatus
    }

    /// Whether the pty's line discipline is in raw mode (no canonical input, no echo).
    public var terminalIsRaw: Bool {
        var t = termios()
        guard slaveFD >= 0, tcgetattr(slaveFD, &t) == 0 else { return false }
        return t.c_lflag & tcflag_t(ICANON) == 0 && t.c_lflag & tcflag_t(ECHO) == 0
    }
}

/// A TCP client for tests, on a non-blocking socket (reads poll between short sleeps).
public final class TCPTestClient: Sendable {
    private let fd: Int32

    /// Connects to `127.0.0.1:port`.
    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw FixtureError("connect 127.0.0.1:\(port): \(e)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// Connects to the unix socket at `unixPath`.
    public init(unixPath: String) throws {
        fd = csock_unix_connect(unixPath)
        guard fd >= 0 else { throw FixtureError("connect \(unixPath): \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    /// Sends bytes.
    public func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Receives exactly `count` bytes, waiting up to `timeout`.
    public func receive(_ count: Int, timeout: Duration = .seconds(20)) async throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while out.count < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count - out.count, 0) }
            if n > 0 { out += buffer[0..<n]; continue }
            if n == 0 { throw FixtureError("connection closed after \(out.count) of \(count) bytes") }
            if clock.now > end { throw FixtureError("received \(out.count) of \(count) bytes within \(timeout)") }
            try await Task.sleep(for: .milliseconds(2))
        }
        return out
    }
}
