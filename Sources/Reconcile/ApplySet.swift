#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
package import QemuCtl

// MARK: - ApplySet

/// The manifest set an `apply` works from (kubectl's applyset): `apply --prune` deletes only
/// VMs that the same set applied and that it no longer declares.
///
/// Its id is `--prune-set NAME` when given, else derived from the canonical paths given with
/// `-f` (`paths-` and 12 hex digits of a SHA-256 over the sorted real paths), so `-f vms/` and
/// `-f ./vms` are one set and `-f a/` and `-f b/` are two. Each launch record keeps the id of the
/// set that last applied the VM (``LaunchRecord/applySet``): every create and relaunch sets it;
/// a VM already running joins the set of an `apply --prune` that declares it (a record-only
/// change, `metadata.applySet`, shown in the plan).
///
/// A record without an id (written before sets existed, or adopted by `qemuctl import`) is never
/// deleted by `--prune`: which manifests it came from is unknown, and guessing wrong deletes a VM.
/// It joins a set the first time an `apply --prune` declares it; `qemuctl delete NAME` deletes it.
package struct ApplySet: Sendable, Hashable {
    /// `paths-1a2b3c4d5e6f`, or the `--prune-set` name.
    package var id: String
    /// What the id was made from, for people: the paths as given, or `--prune-set NAME`.
    package var origin: String

    /// The set named `name` (`--prune-set`): letters, digits, `.`, `_` and `-`, at most 63.
    package init(named name: String) throws(ApplySetError) {
        guard !name.isEmpty, name.utf8.count <= 63, !name.hasPrefix("-"),
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) })
        else {
            throw ApplySetError(message: "--prune-set '\(name)' is not a set name: use letters, digits, '.', '_' and '-', at most 63 characters")
        }
        id = name
        origin = "--prune-set \(name)"
    }

    /// The set of the manifest paths `paths` as given to `-f` (`-` is standard input).
    package init(paths: [String]) {
        let canonical = Set(paths.map { $0 == "-" ? "-" : Posix.realPath($0) ?? $0 }).sorted()
        var h = SHA256()
        h.update(Array(canonical.joined(separator: "\n").utf8))
        id = "paths-" + String(HMACSHA256.hex(h.finalize()).prefix(12))
        origin = paths.joined(separator: " ")
    }
}

/// A `--prune-set` name that cannot be one.
package struct ApplySetError: Error, Sendable {
    /// What is wrong and what to do.
    package var message: String
}

// MARK: - LabelSelector

/// `-l/--selector` (kubectl's equality-based selectors): comma-separated requirements, each
/// `key=value` (or `key==value`), `key!=value`, `key` (the label is set) or `!key` (it is not).
package struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    /// One requirement.
    package enum Requirement: Sendable, Hashable {
        /// The label is set to this value.
        case equals(String, String)
        /// The label is not set to this value (or not set).
        case notEquals(String, String)
        /// The label is set.
        case exists(String)
        /// The label is not set.
        case absent(String)
    }

    /// All must hold.
    package var requirements: [Requirement]
    /// The selector as given.
    package var description: String

    /// Parses `text`; throws a message naming the requirement that is not one.
    package init(_ text: String) throws(ApplySetError) {
        description = text
        requirements = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let p = part.trimmingWhitespace
            func key(_ k: Substring) throws(ApplySetError) -> String {
                let k = k.trimmingWhitespace
                guard !k.isEmpty, !k.contains(where: { "=!, ".contains($0) }) else {
                    throw ApplySetError(message: "'\(text)' is not a label selector: '\(p)' (use key=value, key!=value, key or !key, comma-separated)")
                }
                return k
            }
            if let r = p.firstRange(of: "!=") {
                requirements.append(.notEquals(try key(p[..<r.lowerBound]), String(p[r.upperBound...]).trimmingWhitespace))
            } else if let r = p.firstRange(of: "==") ?? p.firstRange(of: "=") {
                requirements.append(.equals(try key(p[..<r.lowerBound]), String(p[r.upperBound...]).trimmingWhitespace))
            } else if p.hasPrefix("!") {
                requirements.append(.absent(try key(p.dropFirst())))
            } else {
                requirements.append(.exists(try key(Substring(p))))
            }
        }
    }

    /// Whether `labels` satisfy every requirement.
    package func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { r in
            switch r {
            case .equals(let k, let v): labels[k] == v
            case .notEquals(let k, let v): labels[k] != v
            case .exists(let k): labels[k] != nil
            case .absent(let k): labels[k] == nil
            }
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces.
    fileprivate var trimmingWhitespace: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
