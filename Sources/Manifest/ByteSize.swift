// MARK: - ByteSize

/// Byte sizes as manifests write them: a number and a binary unit, as QEMU counts.
///
/// `K`/`KiB` = 1024, `M`/`MiB` = 1024², `G`/`GiB` = 1024³, `T`/`TiB` = 1024⁴, `B` = 1.
/// A fraction is allowed when the result is a whole number of bytes (`1.5GiB`).
/// A bare number is refused: `512` is 512 MiB to QEMU's `-m` but 512 bytes to `-drive`.
package enum ByteSize {
    /// Why a size was refused.
    package enum Problem: Error, Sendable, Equatable {
        /// Empty, or not `NUMBER[UNIT]`.
        case malformed
        /// Negative or zero.
        case notPositive
        /// A number without a unit.
        case missingUnit
        /// An unit other than the accepted ones (`MB`, `gb`).
        case unknownUnit(String)
        /// More than 2⁶⁴−1 bytes.
        case overflow
        /// A fraction of a byte.
        case fractionalBytes

        /// The message after the field's name: "must be positive".
        package func message(_ text: String) -> String {
            switch self {
            case .malformed: "is not a size: \(Text.quoted(text))"
            case .notPositive: "must be a positive size, not \(Text.quoted(text))"
            case .missingUnit: "needs a unit: \(Text.quoted(text))"
            case .unknownUnit(let u): "has an unknown unit \(Text.quoted(u)) in \(Text.quoted(text))"
            case .overflow: "is too large: \(Text.quoted(text))"
            case .fractionalBytes: "is not a whole number of bytes: \(Text.quoted(text))"
            }
        }
    }

    /// The hint shown with every size problem.
    package static let unitsHint =
        "sizes take a unit: B, K, KiB, M, MiB, G, GiB, T, TiB; binary, 1K = 1KiB = 1024 bytes"

    static let units: [(String, UInt64)] = [
        ("B", 1), ("K", 1 << 10), ("KiB", 1 << 10), ("M", 1 << 20), ("MiB", 1 << 20),
        ("G", 1 << 30), ("GiB", 1 << 30), ("T", 1 << 40), ("TiB", 1 << 40),
    ]

    /// Parses a size; nil when it is not valid.
    package static func parse(_ text: String) -> UInt64? {
        try? parseChecked(text).get()
    }

    /// Parses a size, saying why it is not valid.
    package static func parseChecked(_ text: String) -> Result<UInt64, Problem> {
        var text = text
        return text.withUTF8 { parseChecked($0) }
    }

    /// Parses a size from its UTF-8 bytes, saying why it is not valid.
    static func parseChecked(_ u: UnsafeBufferPointer<UInt8>) -> Result<UInt64, Problem> {
        guard !u.isEmpty else { return .failure(.malformed) }
        var i = 0
        if u[0] == UInt8(ascii: "-") { return .failure(.notPositive) }
        if u[0] == UInt8(ascii: "+") { i = 1 }
        var whole: UInt64 = 0
        var digits = 0
        var overflow = false
        while i < u.count, StringFormat.isDigit(u[i]) {
            let (m, o1) = whole.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(u[i] - 0x30))
            overflow = overflow || o1 || o2
            whole = a
            digits += 1
            i += 1
        }
        // Fraction as numerator/denominator, up to 9 digits.
        var numerator: UInt64 = 0
        var denominator: UInt64 = 1
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var fd = 0
            while i < u.count, StringFormat.isDigit(u[i]) {
                if fd < 9 {
                    numerator = numerator * 10 + UInt64(u[i] - 0x30)
                    denominator *= 10
                } else if u[i] != UInt8(ascii: "0") {
                    return .failure(.fractionalBytes)
                }
                fd += 1
                i += 1
            }
            if fd == 0 { return .failure(.malformed) }
        }
        guard digits > 0 else { return .failure(.malformed) }
        while i < u.count, u[i] == UInt8(ascii: " ") { i += 1 }
        let unitBytes = UnsafeBufferPointer(rebasing: u[i...])
        if unitBytes.isEmpty { return .failure(whole == 0 && numerator == 0 ? .notPositive : .missingUnit) }
        guard let unit = units.first(where: { YAMLNode.equal(unitBytes, $0.0) })?.1 else {
            let unitText = String(decoding: unitBytes, as: UTF8.self)
            return .failure(unitText.utf8.allSatisfy(StringFormat.isAlnum) ? .unknownUnit(unitText) : .malformed)
        }
        if overflow { return .failure(.overflow) }
        let (w, o) = whole.multipliedReportingOverflow(by: unit)
        if o { return .failure(.overflow) }
        // numerator * unit / denominator must be whole; numerator < 10⁹ and unit ≤ 2⁴⁰ fit in 128 bits.
        let (fracHigh, fracLow) = numerator.multipliedFullWidth(by: unit)
        let (q, r) = denominator.dividingFullWidth((fracHigh, fracLow))
        if r != 0 { return .failure(.fractionalBytes) }
        let (total, o3) = w.addingReportingOverflow(q)
        if o3 { return .failure(.overflow) }
        if total == 0 { return .failure(.notPositive) }
        return .success(total)
    }

    /// The shortest exact form: `16TiB`, `512MiB`, `1536KiB`, `100B`.
    package static func format(_ bytes: UInt64) -> String {
        for (name, unit) in [("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes >= unit && bytes % unit == 0 {
            return "\(bytes / unit)\(name)"
        }
        return "\(bytes)B"
    }
}
