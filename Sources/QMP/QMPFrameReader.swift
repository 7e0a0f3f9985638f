/// Splits the byte stream of a QMP connection into JSON object frames.
///
/// QEMU ends every message with `\r\n`, but a frame may also arrive split at any
/// byte, several frames may arrive in one read, and a monitor configured with
/// `pretty=on` puts newlines inside a frame. So frames are found by following the
/// JSON structure (braces outside strings), not by looking for line ends.
///
/// The reader is a value type with no I/O: feed it bytes with ``append(_:)`` and
/// take complete frames with ``nextFrame()``.
package struct QMPFrameReader: Sendable {
    /// Why the byte stream cannot be a QMP stream.
    package enum Failure: Error, Equatable, Sendable {
        /// A byte outside any frame that is neither whitespace nor `{`.
        case unexpectedByte(UInt8, offset: Int)
        /// A frame grew beyond the cap.
        case frameTooLarge(limit: Int)
    }

    /// The largest frame accepted, in bytes.
    package let maxFrameSize: Int

    private var buffer: [UInt8] = []
    /// Start of unconsumed data in `buffer`.
    private var head = 0
    /// Next byte to scan.
    private var scan = 0
    /// Start of the frame being scanned, when inside one.
    private var frameStart: Int? = nil
    private var depth = 0
    private var inString = false
    private var escaped = false
    /// Bytes consumed before `buffer[0]`, for error offsets.
    private var consumedBefore = 0
    private var failed: Failure? = nil

    /// Creates a reader refusing frames longer than `maxFrameSize` bytes (default 16 MiB).
    package init(maxFrameSize: Int = 16 << 20) {
        self.maxFrameSize = maxFrameSize
    }

    /// Adds bytes read from the connection.
    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if head > 0 && head >= buffer.count / 2 {
            compact()
        }
        buffer.append(contentsOf: bytes)
    }

    /// Adds bytes read from the connection.
    package mutating func append(_ bytes: some Sequence<UInt8>) {
        if head > 0 && head >= buffer.count / 2 {
            compact()
        }
        buffer.append(contentsOf: bytes)
    }

    private mutating func compact() {
        buffer.removeSubrange(0..<head)
        scan -= head
        if let s = frameStart { frameStart = s - head }
        consumedBefore += head
        head = 0
    }

    /// Whether bytes of an unfinished frame are buffered.
    package var hasPartialFrame: Bool { frameStart != nil }

    /// Returns the next complete frame, `nil` when more bytes are needed.
    ///
    /// - Throws: ``Failure`` once the stream is known to be broken; every later
    ///   call throws the same failure.
    package mutating func nextFrame() throws(Failure) -> ArraySlice<UInt8>? {
        if let failed { throw failed }
        var i = scan
        var head = self.head
        var frameStart = self.frameStart
        var depth = self.depth
        var inString = self.inString
        var escaped = self.escaped
        let maxFrameSize = self.maxFrameSize
        let consumedBefore = self.consumedBefore
        enum Outcome { case frame(Int, Int), more, failure(Failure) }
        let outcome: Outcome = buffer.withUnsafeBufferPointer { bytes in
            let count = bytes.count
            while i < count {
                let b = bytes[i]
                if frameStart == nil {
                    switch b {
                    case 0x20, 0x09, 0x0A, 0x0D:
                        i += 1
                        head = i
                        continue
                    case UInt8(ascii: "{"):
                        frameStart = i
                        depth = 1
                        i += 1
                        continue
                    default:
                        return .failure(.unexpectedByte(b, offset: consumedBefore + i))
                    }
                }
                if inString {
                    if escaped {
                        escaped = false
                    } else if b == UInt8(ascii: "\\") {
                        escaped = true
                    } else if b == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else {
                    switch b {
                    case UInt8(ascii: "\""): inString = true
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            let start = frameStart!
                            if i - start + 1 > maxFrameSize { return .failure(.frameTooLarge(limit: maxFrameSize)) }
                            frameStart = nil
                            return .frame(start, i)
                        }
                    default: break
                    }
                }
                i += 1
                // `i - start` bytes are scanned and the frame is not finished: it will
                // have more than `maxFrameSize` once it reaches that many.
                if let start = frameStart, i - start >= maxFrameSize {
                    return .failure(.frameTooLarge(limit: maxFrameSize))
                }
            }
            return .more
        }
        self.frameStart = frameStart
        self.depth = depth
        self.inString = inString
        self.escaped = escaped
        switch outcome {
        case .frame(let start, let end):
            scan = end + 1
            self.head = end + 1
            return buffer[start...end]
        case .more:
            scan = i
            self.head = head
            return nil
        case .failure(let failure):
            failed = failure
            throw failure
        }
    }
}
