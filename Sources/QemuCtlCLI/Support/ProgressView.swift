#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// The live view `apply` draws on a terminal while it works: one line per VM being changed,
/// with a spinner and its latest step, redrawn in place about ten times a second; a VM that
/// is done shows its outcome. The view is erased when the apply ends, before the results are
/// printed, so what stays on the screen is the same as what a pipe receives.
///
/// Only used when standard output is a terminal; never writes anything otherwise.
final class ProgressView: Sendable {
    private struct Row {
        var name: String
        var message = "waiting"
        var outcome: String?
    }

    private struct State {
        var rows: [Row]
        var drawnLines = 0
        var frame = 0
        var dirty = true
        var stopped = false
    }

    private let state: Mutex<State>
    private let fd: Int32
    private static let spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    /// A view of `names` (the VMs the plan changes), drawn on `fd`.
    init(names: [String], fd: Int32 = 1) {
        self.fd = fd
        state = Mutex(State(rows: names.map { Row(name: $0) }))
    }

    /// Whether a live view should be drawn: standard output is a terminal that can move the cursor.
    static var wanted: Bool {
        guard isatty(1) == 1 else { return false }
        let term = getenv("TERM").map { String(cString: $0) } ?? ""
        return term != "dumb" && !term.isEmpty
    }

    /// Records the latest step of VM `name`.
    func update(_ name: String, _ message: String) {
        state.withLock { s in
            guard let i = s.rows.firstIndex(where: { $0.name == name }) else { return }
            s.rows[i].message = message
            s.dirty = true
        }
    }

    /// Records that VM `name` is done, with its outcome (`created`, `failed`, …).
    func finish(_ name: String, _ outcome: String) {
        state.withLock { s in
            guard let i = s.rows.firstIndex(where: { $0.name == name }) else { return }
            s.rows[i].outcome = outcome
            s.dirty = true
        }
    }

    /// Redraws until ``stop()``; run it in a task of its own.
    func run() async {
        while !(state.withLock { $0.stopped }) {
            draw()
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Stops redrawing and erases the view.
    func stop() {
        let text: String = state.withLock { s in
            s.stopped = true
            let erase = Self.erase(s.drawnLines)
            s.drawnLines = 0
            return erase
        }
        write(text)
    }

    private func draw() {
        let width = Self.columns()
        let text: String? = state.withLock { s in
            guard !s.stopped else { return nil }
            s.frame += 1
            let nameWidth = min(24, s.rows.map(\.name.count).max() ?? 0)
            let shown = s.rows.suffix(max(1, Self.rowsAvailable() - 2))
            var out = Self.erase(s.drawnLines)
            let done = s.rows.filter { $0.outcome != nil }.count
            var lines: [String] = []
            for r in shown {
                let mark = r.outcome.map { $0 == "failed" ? "✗" : "✓" } ?? Self.spinner[s.frame % Self.spinner.count]
                let name = r.name.count > nameWidth ? String(r.name.prefix(nameWidth)) : Terminal.padded(r.name, nameWidth)
                lines.append("\(mark) \(name)  \(r.outcome ?? r.message)")
            }
            lines.append("\(done)/\(s.rows.count) VMs done")
            for line in lines {
                // One screen line each, so that moving the cursor up erases exactly what was drawn.
                out += String(line.prefix(max(10, width - 1))) + "\n"
            }
            s.drawnLines = lines.count
            s.dirty = false
            return out
        }
        if let text { write(text) }
    }

    /// Moves the cursor up `lines` lines, clearing each.
    private static func erase(_ lines: Int) -> String {
        guard lines > 0 else { return "" }
        return String(repeating: "\u{1B}[1A\u{1B}[2K", count: lines) + "\r"
    }

    private static func columns() -> Int {
        var size = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
    }

    private static func rowsAvailable() -> Int {
        var size = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_row > 0 ? Int(size.ws_row) : 24
    }

    private func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }
}
