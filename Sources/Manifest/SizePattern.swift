// MARK: - SizePattern

/// Regular expressions for sizes within bounds, for the JSON Schema.
///
/// A size is a string (`2GiB`), so JSON Schema's `minimum`/`maximum` cannot bound it;
/// a pattern can. For each unit `U` (B, K/KiB, M/MiB, G/GiB, T/TiB) the pattern accepts
/// `N[.F] U` exactly when the value is at most `max` bytes:
/// - with `max` a multiple of `U` and `q = max / U`: an integer part below `q` with any
///   fraction, or `q` with a zero fraction;
/// - with `max` below `U` (an I/O size in TiB): an integer part of 0 and a fraction small
///   enough (conservative: 0.0000… for a `max` under a thousandth of the unit).
///
/// Below the maximum, a lookahead refuses zero, and, for a unit that divides `min`,
/// an integer part below `min / U`. Not expressed (the decoder alone refuses them,
/// listed in `schemas/corpus/EXCEPTIONS.md`): a fraction that is not a whole number of
/// bytes (`1.3B`), and a value in a unit larger than `min` that lies below `min`
/// (`0.0001GiB` for a 1 MiB minimum; no such value with at most nine fraction digits is
/// a whole number of bytes for the minimums in the field table).
enum SizePattern {
    /// The units, grouped by multiplier, as ``ByteSize`` accepts them.
    static let units: [(names: String, bytes: UInt64)] = [
        ("B", 1), ("K|KiB", 1 << 10), ("M|MiB", 1 << 20), ("G|GiB", 1 << 30), ("T|TiB", 1 << 40),
    ]

    /// The pattern for sizes from `min` to `max` bytes (inclusive).
    static func pattern(min: UInt64, max: UInt64) -> String {
        var refused = [#"0*(\.0*)?"#]
        var alternatives: [String] = []
        for (names, unit) in units {
            let units = "(?:\(names))"
            if min >= unit && min / unit > 1 {
                // Integer parts 0 … min/U − 1 are below the minimum whatever the fraction.
                refused.append("0*\(atMost(min / unit - 1))" + #"(\.[0-9]*)? *"# + units)
            }
            let number: String
            if max % unit == 0 {
                let q = max / unit
                number = "0*(?:\(atMost(q - 1))" + #"(?:\.[0-9]+)?|"# + "\(q)" + #"(?:\.0+)?)"#
            } else if max >= unit {
                // Not a multiple: below the whole part, any fraction (conservative at the top).
                number = "0*\(atMost(max / unit - 1))" + #"(?:\.[0-9]+)?"#
            } else if max * 1000 >= unit {
                number = #"0*(?:\.0{3}[0-9]*|0\.0{3}[0-9]*)"#
            } else {
                continue
            }
            alternatives.append(number + " *" + units)
        }
        let zero = refused[0] + " *[A-Za-z]*$"
        let low = refused.dropFirst().map { $0 + "$" }
        let lookahead = "(?!\\+?(?:" + ([zero] + low).joined(separator: "|") + "))"
        return "^" + lookahead + #"\+?(?:"# + alternatives.joined(separator: "|") + ")$"
    }

    /// A regular expression for the decimal integers 0 … `n` written without leading zeros.
    static func atMost(_ n: UInt64) -> String {
        let digits = Array(String(n).utf8).map { Int($0) - 48 }
        let k = digits.count
        var parts: [String] = []
        // Shorter numbers: 0, then 1 to k−1 digits without a leading zero.
        parts.append("0")
        if k > 1 {
            parts.append(k == 2 ? "[1-9]" : "[1-9][0-9]{0,\(k - 2)}")
        }
        // Numbers of k digits: equal to n on a prefix, then a smaller digit, then anything.
        for i in 0..<k {
            let low = i == 0 ? 1 : 0
            let high = digits[i] - 1
            guard high >= low else { continue }
            let prefix = digits[..<i].map(String.init).joined()
            let rest = k - i - 1
            parts.append(prefix + "[\(low)-\(high)]" + (rest > 0 ? "[0-9]{\(rest)}" : ""))
        }
        if n > 0 { parts.append(String(n)) }
        return "(?:" + parts.joined(separator: "|") + ")"
    }
}
