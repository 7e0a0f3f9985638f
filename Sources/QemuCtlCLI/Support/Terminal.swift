#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Where output goes and how it looks: colour only on a terminal, and never with `NO_COLOR`.
enum Terminal {
    /// Whether standard output is a terminal.
    static var isTTY: Bool { isatty(1) == 1 }

    /// Whether to colour standard output.
    static var color: Bool { isTTY && ProcessInfo.processInfo.environment["NO_COLOR"] == nil }

    /// Writes one line to standard error.
    static func error(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }

    /// `qemuctl: error: MESSAGE` on standard error.
    static func fail(_ message: String) { error("qemuctl: error: \(message)") }

    /// Aligned columns, two spaces apart.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// Prints a value as indented JSON with sorted keys.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
