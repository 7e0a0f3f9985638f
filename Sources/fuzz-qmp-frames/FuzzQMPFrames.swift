// libFuzzer target: bytes → QMPFrameReader → frames or a failure; each frame → JSONValue.
//
// The input is a QMP byte stream. It is fed to three readers: all at once, one byte at a
// time (every split point), and in chunks of 1–64 or so bytes whose sizes come from a
// hash of the input. All three must produce the same frames and the same failure.
// Built two ways (see `make fuzz`): with `-DFUZZING` libFuzzer supplies `main`; in the
// normal build `main` runs the files named on the command line through it once.
internal import FuzzSupport
internal import QMP

/// What one reader made of the stream.
struct Outcome: Equatable {
    var frames: [[UInt8]] = []
    var failure: QMPFrameReader.Failure?
    var partial = false
}

/// Feeds `stream` to a reader in pieces of the sizes `nextChunk` returns.
func read(_ stream: [UInt8], maxFrameSize: Int, nextChunk: () -> Int) -> Outcome {
    var reader = QMPFrameReader(maxFrameSize: maxFrameSize)
    var outcome = Outcome()
    var offset = 0
    repeat {
        let end = min(stream.count, offset + max(1, nextChunk()))
        reader.append(stream[offset..<end])
        offset = end
        do {
            while let frame = try reader.nextFrame() { outcome.frames.append(Array(frame)) }
        } catch {
            outcome.failure = error
            // A failed reader stays failed.
            precondition((try? reader.nextFrame()) == nil)
            break
        }
    } while offset < stream.count
    outcome.partial = reader.hasPartialFrame
    return outcome
}

/// FNV-1a: the seed for chunk sizes and the frame size limit.
func hash(_ bytes: [UInt8]) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}

func fuzzOne(_ stream: [UInt8]) {
    var seed = hash(stream)
    func random() -> UInt64 {
        // xorshift64*
        seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27
        return seed &* 0x2545_F491_4F6C_DD1D
    }
    // Mostly the default limit; one input in four gets a small one, to reach frameTooLarge.
    let maxFrameSize = random() % 4 == 0 ? Int(random() % 256) + 1 : 16 << 20

    let whole = read(stream, maxFrameSize: maxFrameSize) { stream.count }
    let bytewise = read(stream, maxFrameSize: maxFrameSize) { 1 }
    let chunked = read(stream, maxFrameSize: maxFrameSize) {
        random() % 8 == 0 ? Int(random() % 4096) + 1 : Int(random() % 64) + 1
    }
    precondition(whole == bytewise, "byte-at-a-time reading differs from reading all at once")
    precondition(whole == chunked, "chunked reading differs from reading all at once")

    // The frames are the stream's objects, in order, separated only by whitespace.
    var offset = 0
    for frame in whole.frames {
        // A frame runs from a `{` to the bracket that brings the depth back to zero; the
        // reader counts brackets without matching kinds (`{]` is a frame the parser refuses).
        precondition(frame.first == UInt8(ascii: "{") && (frame.last == UInt8(ascii: "}") || frame.last == UInt8(ascii: "]")))
        precondition(frame.count <= maxFrameSize, "a frame of \(frame.count) bytes passed a \(maxFrameSize)-byte limit")
        while [0x20, 0x09, 0x0A, 0x0D].contains(stream[offset]) { offset += 1 }
        precondition(stream[offset..<(offset + frame.count)].elementsEqual(frame), "a frame is not the next object of the stream")
        offset += frame.count

        // Each frame parses (or fails) like any JSON text, and what it parses to
        // writes out as JSON that parses back to the same text.
        if let value = try? JSONValue(parsing: frame) {
            guard case .object = value else { preconditionFailure("a frame parsed to a non-object: \(value)") }
            let text = value.jsonBytes
            guard let again = try? JSONValue(parsing: text) else {
                preconditionFailure("the encoding of a parsed frame does not parse: \(value)")
            }
            precondition(again.jsonBytes == text, "encoding a parsed frame is not stable: \(value)")
            // What the client reads from messages.
            _ = value["event"]?.stringValue
            _ = value["timestamp"]?["seconds"]?.intValue
            _ = value["QMP"]?["version"]?["qemu"]?["major"]?.intValue
            _ = value["QMP"]?["capabilities"]?.arrayValue?.compactMap(\.stringValue)
            _ = value["error"]?["desc"]?.stringValue
            _ = value["id"]?.intValue
            _ = value.description
        }
    }
}

#if FUZZING
/// The libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
/// Runs the corpus files named on the command line through ``fuzzOne(_:)`` once.
@main
enum FuzzQMPFramesMain {
    static func main() {
        CorpusRunner.run(arguments: Array(CommandLine.arguments.dropFirst()), body: fuzzOne)
    }
}
#endif
