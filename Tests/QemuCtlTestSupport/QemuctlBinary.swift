import CSocketShims
import Foundation

/// The built `qemuctl` binary (`swift build` puts it in `.build/debug`).
public enum QemuctlBinary {
    /// Its path.
    public static var path: String { Fixtures.repoRoot + "/.build/debug/qemuctl" }

    /// The result of one run.
    public struct Run: Sendable {
        /// The exit status.
        public var status: Int32
        /// Standard output.
        public var out: String
        /// Standard error.
        public var err: String
        /// The signal that ended the process, if one did (SIGKILL from a fault point).
        public var signal: Int32? = nil
    }

    /// Runs `qemuctl ARGUMENTS` with `environment` added, feeding `stdin`; waits for it
    /// without blocking a thread of the cooperative pool (other tests keep running).
    ///
    /// With `executable` (e.g. `/bin/sh`), runs that program with `arguments` instead.
    public static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
                           directory: String? = nil, executable: String? = nil) async throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw FixtureError("\(path) is missing: build it with `swift build` (make test does)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable ?? path)
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory ?? Fixtures.repoRoot)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        p.environment = env
        // Descriptors of our own (close-on-exec pipes), each closed exactly once by whoever owns
        // it: Foundation's Pipe kept hundreds of read ends open in a full run, and past 1024
        // descriptors its select(2)-based Process monitor misses children's exits.
        var outFDs: [Int32] = [-1, -1], errFDs: [Int32] = [-1, -1], inFDs: [Int32] = [-1, -1]
        guard cproc_pipe(&outFDs) == 0 else { throw FixtureError("pipe: \(errno)") }
        guard cproc_pipe(&errFDs) == 0 else { Glibc.close(outFDs[0]); Glibc.close(outFDs[1]); throw FixtureError("pipe: \(errno)") }
        guard cproc_pipe(&inFDs) == 0 else {
            for fd in outFDs + errFDs { Glibc.close(fd) }
            throw FixtureError("pipe: \(errno)")
        }
        p.standardOutput = FileHandle(fileDescriptor: outFDs[1], closeOnDealloc: false)
        p.standardError = FileHandle(fileDescriptor: errFDs[1], closeOnDealloc: false)
        p.standardInput = FileHandle(fileDescriptor: inFDs[0], closeOnDealloc: false)
        // Output is collected by two threads of their own blocked in read(2): never the
        // cooperative pool or Dispatch's global queue (about two workers on a 2-core
        // machine), and no dispatch read sources (closing a pipe whose source was still
        // being cancelled crashed libdispatch's event loop in a full run).
        final class Box: @unchecked Sendable {
            let lock = NSLock()
            var out = Data(), err = Data(), outDone = false, errDone = false
        }
        let box = Box()
        func collect(_ fd: Int32, _ append: @escaping @Sendable (Data) -> Void) {
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 65536)
                var ours = true
                while true {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                        // Made non-blocking under us (a stale descriptor number elsewhere): wait, go on.
                        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                        _ = poll(&pfd, 1, 100)
                        continue
                    }
                    if n < 0 && errno == EBADF { ours = false }
                    if n <= 0 { break }
                    append(Data(buffer[0..<n]))
                }
                if ours { Glibc.close(fd) }
                append(Data())
            }
        }
        do {
            try p.run()
        } catch {
            for fd in outFDs + errFDs + inFDs { Glibc.close(fd) }
            throw error
        }
        // The child has its copies; the parent keeps only its ends.
        Glibc.close(outFDs[1])
        Glibc.close(errFDs[1])
        Glibc.close(inFDs[0])
        collect(outFDs[0]) { d in box.lock.withLock { if d.isEmpty { box.outDone = true } else { box.out.append(d) } } }
        collect(errFDs[0]) { d in box.lock.withLock { if d.isEmpty { box.errDone = true } else { box.err.append(d) } } }
        if let stdin {
            let bytes = Array(stdin.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(inFDs[1], $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                offset += n
            }
        }
        Glibc.close(inFDs[1])
        while p.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        // The rest of the output; a descendant that kept the pipes open (a daemon) is
        // not waited for beyond a moment.
        let clock = ContinuousClock()
        let end = clock.now + .seconds(2)
        while !box.lock.withLock({ box.outDone && box.errDone }) && clock.now < end {
            try await Task.sleep(for: .milliseconds(5))
        }
        let status = p.terminationStatus
        let (outData, errData) = box.lock.withLock { (box.out, box.err) }
        let signal: Int32? = p.terminationReason == .uncaughtSignal ? status : nil
        return Run(status: status, out: String(decoding: outData, as: UTF8.self), err: String(decoding: errData, as: UTF8.self),
                   signal: signal)
    }
}

extension FileHandle {
    /// What a readability handler can read now: empty at end of file, `nil` when the
    /// read would block (a spurious wake-up). `availableData` traps on EAGAIN instead,
    /// which once killed the whole test process.
    func readAvailable() -> Data? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, $0.count) }
            if n >= 0 { return Data(buffer[0..<n]) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            return Data()  // an error ends the stream like end of file
        }
    }
}

/// Runs `path ARGS` and returns its exit status and its output (stdout and stderr
/// together), waiting on a thread of its own, never on the cooperative pool or
/// Dispatch's global queue.
public func runTool(_ path: String, _ args: [String]) async throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    p.standardInput = FileHandle.nullDevice
    try p.run()
    return await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            continuation.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
        }
    }
}

/// Whether process `pid` has exited (gone, or a zombie waiting for its parent), waiting up to 5 s.
public func processExits(_ pid: Int32) async -> Bool {
    for _ in 0..<500 {
        if kill(pid, 0) != 0 { return true }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let state = stat.split(separator: ")").last?.split(separator: " ").first, state == "Z" {
            return true
        }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

extension QemuctlBinary {
    /// A `qemuctl` that keeps running (e.g. `qemuctl events`), with its output
    /// collected as it arrives.
    public final class Background: @unchecked Sendable {
        private let process: Process
        private let lock = NSLock()
        private var outData = Data()
        private var errData = Data()
        private let outPipe = Pipe()
        private let errPipe = Pipe()
        private var stdoutClosed = false

        /// Starts `qemuctl ARGUMENTS` with `environment` added.
        public init(_ arguments: [String], environment: [String: String] = [:]) throws {
            guard FileManager.default.isExecutableFile(atPath: QemuctlBinary.path) else {
                throw FixtureError("\(QemuctlBinary.path) is missing: build it with `swift build` (make test does)")
            }
            process = Process()
            process.executableURL = URL(fileURLWithPath: QemuctlBinary.path)
            process.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env.merge(environment) { _, new in new }
            process.environment = env
            process.standardOutput = outPipe
            process.standardError = errPipe
            process.standardInput = FileHandle.nullDevice
            // Each pipe is drained by a thread of its own with read(2): no dispatch read sources,
            // whose pipes closed under them crashed libdispatch in full runs.
            try process.run()
            Self.pump(outPipe.fileHandleForReading, stop: { [weak self] in self?.lock.withLock { self?.stdoutClosed } ?? true }) { [weak self] d in
                guard let self else { return }
                self.lock.withLock { self.outData.append(d) }
            }
            Self.pump(errPipe.fileHandleForReading, stop: { false }) { [weak self] d in
                guard let self else { return }
                self.lock.withLock { self.errData.append(d) }
            }
        }

        /// Reads `handle` on a thread until end of file, or until `stop()` says so (then closes it).
        private static func pump(_ handle: FileHandle, stop: @escaping @Sendable () -> Bool, _ append: @escaping @Sendable (Data) -> Void) {
            let fd = handle.fileDescriptor
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    if stop() {
                        try? handle.close()
                        return
                    }
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&pfd, 1, 50)
                    if ready == 0 || (ready < 0 && errno == EINTR) { continue }
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    if n <= 0 { return }
                    append(Data(buffer[0..<n]))
                }
            }
        }

        /// Standard output so far.
        public var out: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
        /// Standard error so far.
        public var err: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }
        /// Standard output so far, as lines.
        public var lines: [String] { out.split(separator: "\n").map(String.init) }

        /// Waits until a line of standard output satisfies `match`; returns it, or `nil` at the timeout.
        public func waitForLine(timeout: Duration = .seconds(20), _ match: (String) -> Bool) async -> String? {
            let clock = ContinuousClock()
            let end = clock.now + timeout
            while clock.now < end {
                if let line = lines.first(where: match) { return line }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return lines.first(where: match)
        }

        /// Closes this side's end of the standard output pipe (within ~50 ms, by its reading
        /// thread): the process's next write (or its check) finds no reader.
        public func closeStdout() {
            lock.withLock { stdoutClosed = true }
        }

        /// Sends `signal` to the process.
        public func send(_ signal: Int32) { Foundation.kill(process.processIdentifier, signal) }

        /// The process id.
        public var pid: Int32 { process.processIdentifier }

        /// Waits for the process to exit; returns its exit status (128 + the signal when a
        /// signal ended it), or `nil` at the timeout.
        public func exitStatus(timeout: Duration = .seconds(10)) async -> Int32? {
            let clock = ContinuousClock()
            let end = clock.now + timeout
            while process.isRunning {
                if clock.now >= end { return nil }
                try? await Task.sleep(for: .milliseconds(10))
            }
            // Killed by a signal: the shell's convention, 128 + the signal.
            return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
        }

        /// Kills the process if it still runs.
        public func kill() {
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }

        deinit { kill() }
    }
}
