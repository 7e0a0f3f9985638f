// MARK: - PathUtilities

/// Lexical path handling, without touching the file system.
enum PathUtilities {
    /// `path` made absolute against `base` (itself absolute), with `.`, `..` and empty
    /// segments removed. Works on bytes, one allocation: manifests have many paths.
    static func resolve(_ path: String, against base: String) -> String {
        var path = path
        return path.withUTF8 { resolve($0, against: base) }
    }

    /// `path` (UTF-8 bytes) made absolute against `base`, as ``resolve(_:against:)-(String,_)``.
    static func resolve(_ path: UnsafeBufferPointer<UInt8>, against base: String) -> String {
        let isAbsolute = path.first == UInt8(ascii: "/")
        let capacity = (isAbsolute ? 0 : base.utf8.count) + path.count + 2
        return String(unsafeUninitializedCapacity: capacity) { out in
            var n = 0
            if !isAbsolute {
                var base = base
                n = base.withUTF8 { append($0, to: out, count: n) }
            }
            n = append(path, to: out, count: n)
            if n == 0 {
                out[0] = UInt8(ascii: "/")
                n = 1
            }
            return n
        }
    }

    /// `path` (UTF-8 bytes) made absolute against `base`, which is already normalized (as
    /// ``resolve(_:against:)-(String,_)`` returns it: absolute, without `.`, `..` or empty
    /// segments): the same result, with `base` copied rather than read segment by segment.
    static func resolve(_ path: UnsafeBufferPointer<UInt8>, againstNormalized base: String) -> String {
        let isAbsolute = path.first == UInt8(ascii: "/")
        let capacity = (isAbsolute ? 0 : base.utf8.count) + path.count + 2
        return String(unsafeUninitializedCapacity: capacity) { out in
            var n = 0
            if !isAbsolute {
                var base = base
                // "/" is the empty path here: each segment appended brings its own slash.
                n = base.withUTF8 { b in
                    guard b.count > 1 else { return 0 }
                    (out.baseAddress!).update(from: b.baseAddress!, count: b.count)
                    return b.count
                }
            }
            n = append(path, to: out, count: n)
            if n == 0 {
                out[0] = UInt8(ascii: "/")
                n = 1
            }
            return n
        }
    }

    /// Appends the segments of `bytes` to the normalized absolute path in `out[0..<count]`.
    private static func append(_ bytes: UnsafeBufferPointer<UInt8>, to out: UnsafeMutableBufferPointer<UInt8>, count: Int) -> Int {
        do {
            let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
            var n = count
            var i = 0
            while i < bytes.count {
                // One segment: bytes[i..<j].
                var j = i
                while j < bytes.count, bytes[j] != slash { j += 1 }
                let length = j - i
                if length == 0 || (length == 1 && bytes[i] == dot) {
                    // empty or "."
                } else if length == 2 && bytes[i] == dot && bytes[i + 1] == dot {
                    while n > 0 {
                        n -= 1
                        if out[n] == slash { break }
                    }
                } else {
                    precondition(n + 1 + length <= out.count)
                    out[n] = slash
                    (out.baseAddress! + n + 1).update(from: bytes.baseAddress! + i, count: length)
                    n += 1 + length
                }
                i = j + 1
            }
            return n
        }
    }

    /// The directory part of a path: `a/b/c.yaml` → `a/b`, `c.yaml` → `.`.
    static func directory(of path: String) -> String {
        // ASCII (the usual case): the last '/' byte, without grapheme breaking.
        var path = path
        if let fast = path.withUTF8({ bytes -> String?? in
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return nil }
            guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return .some(nil) }
            if slash == 0 { return "/" }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<slash]), as: UTF8.self)
        }) {
            return fast ?? "."
        }
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
