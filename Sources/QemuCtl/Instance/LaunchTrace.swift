import Synchronization

/// A process-wide observer of the QEMU command lines this process starts (`qemuctl -vv`), one
/// line each: the binary and its arguments, shell-quoted. Off until ``install(_:)``. A command
/// line never holds a secret (they reach QEMU through files and QMP), so nothing is redacted.
public enum LaunchTrace {
    private static let handler = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// Sends every later command line to `observer`; `nil` turns tracing off.
    public static func install(_ observer: (@Sendable (String) -> Void)?) {
        handler.withLock { $0 = observer }
    }

    /// Tells the observer, if any, that `binary` starts with `arguments` for VM `name`.
    static func starting(_ name: String, _ binary: String, _ arguments: [String]) {
        guard let observer = handler.withLock({ $0 }) else { return }
        observer("exec (\(name)): " + ([binary] + arguments).map(quoted).joined(separator: " "))
    }

    /// `word` as a POSIX shell reads it back: bare when safe, else in single quotes.
    static func quoted(_ word: String) -> String {
        let safe = !word.isEmpty && word.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./,=:@+%".unicodeScalars.contains($0)
        }
        return safe ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
