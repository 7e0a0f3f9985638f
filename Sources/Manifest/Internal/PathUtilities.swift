// MARK: - PathUtilities

/// Lexical path handling, without touching the file system.
enum PathUtilities {
    /// `path` made absolute against `base` (itself absolute), with `.`, `..` and empty
    /// segments removed. Works on bytes, one allocation: manifests have many paths.
    static func resolve(_ path: String, against base: String) -> String {
        let isAbsolute = path.utf8.first == UInt8(ascii: "/")
        let capacity = (isAbsolute ? 0 : base.utf8.count) + path.utf8.count + 2
        return String(unsafeUninitializedCapacity: capacity) { out in
            var n = 0
            if !isAbsolute { n = append(base, to: out, count: n) }
            n = append(path, to: out, count: n)
            if n == 0 {
                out[0] = UInt8(ascii: "/")
                n = 1
            }
            return n
        }
    }

    /// Appends the segments of `text` to the normalized absolute path in `out[0..<count]`.
    private static func append(_ text: String, to out: UnsafeMutableBufferPointer<UInt8>, count: Int) -> Int {
        var text = text
        return text.withUTF8 { bytes in
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
                    out[n] = slash
                    n += 1
                    for k in i..<j {
                        out[n] = bytes[k]
                        n += 1
                    }
                }
                i = j + 1
            }
            return n
        }
    }

    /// The directory part of a path: `a/b/c.yaml` → `a/b`, `c.yaml` → `.`.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
