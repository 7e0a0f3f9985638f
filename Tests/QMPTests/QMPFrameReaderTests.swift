import Testing
@testable import QMP

@Suite struct QMPFrameReaderTests {
    static let stream = #"{"QMP": {"version": {}, "capabilities": ["oob"]}}"# + "\r\n"
        + #"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"# + "\r\n"
        + #"{"return": {"s": "a } \" { [ ] \\"}, "id": 1}"# + "\r\n"

    static func frames(_ reader: inout QMPFrameReader) throws(QMPFrameReader.Failure) -> [String] {
        var out: [String] = []
        while let f = try reader.nextFrame() { out.append(String(decoding: f, as: UTF8.self)) }
        return out
    }

    @Test func splitsFramesOnStructureNotLines() throws {
        var r = QMPFrameReader()
        r.append(Array(Self.stream.utf8))
        let frames = try Self.frames(&r)
        #expect(frames.count == 3)
        #expect(try JSONValue(parsing: frames[2])["return"]?["s"]?.stringValue == "a } \" { [ ] \\")
        #expect(!r.hasPartialFrame)
    }

    @Test func handlesASplitAtEveryByte() throws {
        let bytes = Array(Self.stream.utf8)
        for cut in 1..<bytes.count {
            var r = QMPFrameReader()
            r.append(bytes[..<cut])
            var frames = try Self.frames(&r)
            r.append(bytes[cut...])
            frames += try Self.frames(&r)
            #expect(frames.count == 3, "cut at \(cut)")
        }
    }

    @Test func handlesOneByteAtATimeAndPrettyOutput() throws {
        let pretty = "{\n    \"return\": {\n        \"status\": \"running\"\n    },\n    \"id\": 3\n}\n"
        var r = QMPFrameReader()
        var frames: [String] = []
        for b in Array((pretty + pretty).utf8) {
            r.append([b])
            frames += try Self.frames(&r)
        }
        #expect(frames.count == 2)
        #expect(try JSONValue(parsing: frames[1])["id"]?.intValue == 3)
    }

    @Test func refusesGarbageBetweenFrames() throws {
        var r = QMPFrameReader()
        r.append(Array("{\"a\":1}\r\nxyz".utf8))
        #expect(try r.nextFrame() != nil)
        #expect(throws: QMPFrameReader.Failure.unexpectedByte(UInt8(ascii: "x"), offset: 9)) { try r.nextFrame() }
        // The failure sticks.
        #expect(throws: QMPFrameReader.Failure.self) { try r.nextFrame() }
    }

    @Test func refusesOversizedFrames() throws {
        var r = QMPFrameReader(maxFrameSize: 1024)
        r.append(Array(("{\"a\":\"" + String(repeating: "x", count: 2000)).utf8))
        #expect(throws: QMPFrameReader.Failure.frameTooLarge(limit: 1024)) { try r.nextFrame() }
    }

    /// Found by the fuzz-qmp-frames fuzzer (fuzz/corpus/qmp-frames/regress-frame-one-over-limit):
    /// a frame of exactly `maxFrameSize + 1` bytes used to pass.
    @Test func theFrameSizeLimitIsExact() throws {
        for limit in [1, 2, 3, 30, 1024] {
            for size in max(2, limit - 1)...(limit + 2) {
                let frame = "{" + String(repeating: " ", count: size - 2) + "}"
                for chunk in [1, 7, size] {
                    var r = QMPFrameReader(maxFrameSize: limit)
                    var result: Result<[String], QMPFrameReader.Failure> = .success([])
                    var offset = 0
                    let bytes = Array(frame.utf8)
                    while offset < bytes.count, case .success(let got) = result {
                        r.append(bytes[offset..<min(bytes.count, offset + chunk)])
                        offset += chunk
                        result = Result { () throws(QMPFrameReader.Failure) in try got + Self.frames(&r) }
                    }
                    if size <= limit {
                        #expect(result == .success([frame]), "limit \(limit), size \(size), chunk \(chunk)")
                    } else {
                        #expect(result == .failure(.frameTooLarge(limit: limit)), "limit \(limit), size \(size), chunk \(chunk)")
                    }
                }
            }
        }
    }

    @Test func compactsItsBufferOnLongStreams() throws {
        var r = QMPFrameReader()
        let frame = Array((#"{"return": {}, "id": 1}"# + "\r\n").utf8)
        var count = 0
        for _ in 0..<10_000 {
            r.append(frame)
            while try r.nextFrame() != nil { count += 1 }
        }
        #expect(count == 10_000)
    }
}
