#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a normal (non-fuzzing) build of a fuzz target runs instead of libFuzzer's driver:
/// every file named on the command line, or found in a directory named there, goes
/// through the target's test function once. `make test`'s build compiles the targets this
/// way, so they cannot rot; `make fuzz` builds them with `-DFUZZING` and libFuzzer's `main`.
package enum CorpusRunner {
    /// Runs `body` on the bytes of every input under `arguments` (files, or directories
    /// searched one level deep). Prints how many ran; exits 1 when a path cannot be read
    /// or none were given.
    package static func run(arguments: [String], body: ([UInt8]) -> Void) -> Never {
        var inputs = 0
        for path in arguments {
            guard let files = files(at: path) else {
                print("cannot read \(path): \(String(cString: strerror(errno)))")
                exit(1)
            }
            for file in files {
                guard let bytes = contents(of: file) else {
                    print("cannot read \(file): \(String(cString: strerror(errno)))")
                    exit(1)
                }
                body(bytes)
                inputs += 1
            }
        }
        if arguments.isEmpty {
            print("usage: \(CommandLine.arguments.first ?? "fuzz-target") CORPUS_DIR_OR_FILE...")
            exit(1)
        }
        print("ran \(inputs) inputs")
        exit(0)
    }

    /// `path` itself when it is a file, its entries (sorted, hidden ones skipped) when a directory.
    private static func files(at path: String) -> [String]? {
        guard let dir = opendir(path) else {
            return errno == ENOTDIR ? [path] : nil
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    private static func contents(of path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[..<n])
        }
    }
}
