#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QemuCtl

/// Where output goes and how it looks: colour only on a terminal, and never with `NO_COLOR`.
enum Terminal {
    /// Whether standard output is a terminal.
    static var isTTY: Bool { isatty(1) == 1 }

    /// Whether to colour standard output.
    static var color: Bool { isTTY && Posix.environmentValue("NO_COLOR") == nil }

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

    /// `qemuctl: error: MESSAGE` on standard error, then `hint: HINT` when there is a useful next step.
    static func fail(_ message: String, hint: String? = nil) {
        error("qemuctl: error: \(message)")
        if let hint { self.hint(hint) }
    }

    /// `qemuctl: warning: MESSAGE` on standard error.
    static func warn(_ message: String) { error("qemuctl: warning: \(message)") }

    /// `hint: TEXT` on standard error.
    static func hint(_ text: String) { error("hint: \(text)") }

    /// Whether standard error is a terminal (progress lines go there).
    static var stderrIsTTY: Bool { isatty(2) == 1 }

    /// ANSI colours used on a terminal.
    enum Colour: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36", dim = "2", bold = "1"
    }

    /// `text` in `colour` when ``color`` is on; plain otherwise.
    static func paint(_ text: String, _ colour: Colour) -> String {
        color ? "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m" : text
    }

    /// Writes `line` and a newline to standard output at once (no stdio buffering),
    /// for output that follows events as they happen.
    /// - Returns: `false` when standard output is closed (the reader went away).
    @discardableResult
    static func writeLine(_ line: String) -> Bool {
        var text = line + "\n"
        return text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    /// Whether the reader of standard output has gone away (a closed pipe or a hung-up
    /// terminal), checked without writing.
    static var stdoutClosed: Bool {
        var p = pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
    }

    /// `text` followed by spaces up to `width` characters (never cut).
    static func padded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    /// `value` with one decimal, as `%.1f` prints it.
    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((abs(value) * 10).rounded())
        return (value < 0 && tenths > 0 ? "-" : "") + "\(tenths / 10).\(tenths % 10)"
    }

    /// Aligned columns, two spaces apart.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : padded(cell, widths[i]) }
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
