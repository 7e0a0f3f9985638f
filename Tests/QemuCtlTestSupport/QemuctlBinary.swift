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
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        final class Box: @unchecked Sendable { var out = Data(), err = Data() }
        let box = Box()
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            let group = DispatchGroup()
            group.enter(); group.enter(); group.enter()
            p.terminationHandler = { _ in group.leave() }
            do { try p.run() } catch {
                continuation.resume(throwing: error)
                return
            }
            DispatchQueue.global().async {
                box.out = out.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
            DispatchQueue.global().async {
                box.err = err.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
            if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
            try? input.fileHandleForWriting.close()
            group.notify(queue: .global()) { continuation.resume(returning: p.terminationStatus) }
        }
        return Run(status: status, out: String(decoding: box.out, as: UTF8.self), err: String(decoding: box.err, as: UTF8.self))
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
