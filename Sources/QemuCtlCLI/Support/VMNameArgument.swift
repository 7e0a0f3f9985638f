import ArgumentParser
import Manifest

// MARK: - VM names on the command line

/// The one rule every NAME argument passes: the manifest's `metadata.name` rule
/// (``StringFormat/name``, a DNS label).
///
/// Commands declare their NAME arguments with `transform: VMNameArgument.parse`, so
/// `qemuctl delete ../victim` is a usage error before any path is built from the text:
/// a DNS label has no `/`, no `.` and no leading `-`, so `STATE/NAME` and
/// `STATE/NAME.sock` always stay inside the state directory.
enum VMNameArgument {
    /// Returns `text` when it is a VM name.
    ///
    /// - Throws: `ValidationError` naming the rule, which ArgumentParser reports as a
    ///   usage error.
    static func parse(_ text: String) throws -> String {
        guard StringFormat.name.accepts(text) else {
            throw ValidationError("'\(printable(text))' is not a VM name: a VM name is \(StringFormat.name.summary)")
        }
        return text
    }

    /// Whether `text` is a VM name (for names read from the state directory, not typed).
    static func isValid(_ text: String) -> Bool { StringFormat.name.accepts(text) }

    /// `text` with control characters escaped, for messages.
    private static func printable(_ text: String) -> String {
        var out = ""
        for s in text.unicodeScalars {
            if s.value < 0x20 || s.value == 0x7F {
                out += "\\u{\(String(s.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }
}
