import CSocketShims
import Foundation
@testable public import QMP

/// A scripted QMP server on a unix socket, for the faults a real QEMU does not
/// produce on demand: garbage, split frames, late replies, id-less errors, silence.
///
/// The script runs on its own thread with blocking I/O on the accepted connection:
///
/// ```swift
/// let peer = try FakeQMPPeer { c in
///     c.greet()
///     c.replyNext()            // qmp_capabilities
///     let cmd = c.readCommand()
///     c.send(#"{"return": {}, "id": \#(cmd.id)}"#)
/// }
/// ```
public final class FakeQMPPeer: @unchecked Sendable {
    /// The socket path clients connect to.
    public let socketPath: String
    private let dir: TempDir
    private let listenFD: Int32
    private let finished = DispatchSemaphore(value: 0)

    /// Starts listening (on `path`, or a socket in a temporary directory) and runs `script` on
    /// the first accepted connection.
    public init(at path: String? = nil, _ script: @escaping @Sendable (Conn) -> Void) throws {
        dir = try TempDir("fake")
        socketPath = path ?? dir.file("qmp.sock")
        listenFD = csock_unix_listen(socketPath, 8)
        guard listenFD >= 0 else { throw FixtureError("listen on \(socketPath) failed: errno \(errno)") }
        let fd = listenFD
        let done = finished
        let thread = Thread {
            let client = accept(fd, nil, nil)
            if client >= 0 {
                let conn = Conn(fd: client)
                script(conn)
                conn.close()
            }
            done.signal()
        }
        thread.start()
    }

    /// Waits (up to `seconds`) for the script to end; returns whether it did.
    public func waitForScript(seconds: Double = 10) -> Bool {
        finished.wait(timeout: .now() + seconds) == .success
    }

    deinit {
        Foundation.close(listenFD)
        dir.remove()
    }

    /// One accepted connection, driven by the script.
    public final class Conn: @unchecked Sendable {
        let fd: Int32
        private var reader = QMPFrameReader()
        private var closed = false

        init(fd: Int32) { self.fd = fd }

        /// Sends raw text.
        public func send(_ text: String) { sendBytes(Array(text.utf8)) }

        /// Sends raw bytes.
        public func sendBytes(_ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Sends QEMU 7.2's greeting.
        public func greet() {
            send(#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}"# + "\r\n")
        }

        /// Reads the next command the client sent. At the end of the stream (the
        /// client gave up or closed) it returns an empty command, so a script never
        /// crashes the test process: the test's own expectations report the failure.
        public func readCommand() -> (name: String, id: JSONValue, arguments: JSONValue) {
            readCommandIfAny() ?? (name: "", id: .null, arguments: .null)
        }

        /// Reads the next command the client sent; `nil` at end of stream.
        public func readCommandIfAny() -> (name: String, id: JSONValue, arguments: JSONValue)? {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                if let frame = try? reader.nextFrame() {
                    guard let v = try? JSONValue(parsing: frame) else { return nil }
                    return (v["execute"]?.stringValue ?? "", v["id"] ?? .null, v["arguments"] ?? .null)
                }
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return nil }
                reader.append(buf[0..<n])
            }
        }

        /// Reads the next command and answers it with `{"return": returnJSON, "id": …}`.
        @discardableResult
        public func replyNext(_ returnJSON: String = "{}") -> String? {
            guard let cmd = readCommandIfAny() else { return nil }
            send(#"{"return": \#(returnJSON), "id": \#(cmd.id)}"# + "\r\n")
            return cmd.name
        }

        /// Blocks until the client closes the connection (or `seconds` pass).
        public func waitForClose(seconds: Int = 10) {
            var tv = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var b = [UInt8](repeating: 0, count: 256)
            while b.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
        }

        /// Closes the connection.
        public func close() {
            if !closed {
                closed = true
                Foundation.close(fd)
            }
        }
    }
}
