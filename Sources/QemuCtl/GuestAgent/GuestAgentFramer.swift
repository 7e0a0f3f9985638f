package import QMP

/// Splits the byte stream from a QEMU guest agent into JSON frames, and resynchronises it.
///
/// The agent speaks QMP's wire format without a greeting, events or ids, so a reply can only be
/// matched to its command by order. A stream whose order is lost — a reply that arrived after its
/// caller gave up, half a frame left by an earlier client, a guest agent that restarted — is put
/// back in step with `guest-sync-delimited`: the client sends a `0xFF` byte (which resets the
/// agent's JSON parser) and the command with a fresh id, and the agent answers with a `0xFF`
/// byte followed by `{"return": id}`. Until the sentinel arrives every byte is stale and dropped;
/// after it, frames whose `return` is not the id are stale replies and dropped too.
///
/// A value type without I/O: feed bytes with ``append(_:)``, take frames with ``nextFrame()``.
package struct GuestAgentFramer: Sendable {
    /// The sentinel byte that precedes the reply to `guest-sync-delimited` (and resets the agent's
    /// parser when the client sends it).
    package static let sentinel: UInt8 = 0xFF

    private var reader: QMPFrameReader
    private let maxFrameSize: Int
    /// Whether a resynchronisation is under way (``beginSync()`` until ``endSync()``).
    package private(set) var syncing = false
    /// Whether a sentinel has arrived since the resynchronisation began.
    package private(set) var sentinelSeen = false
    /// Bytes dropped as stale, for diagnostics and tests.
    package private(set) var discardedBytes = 0

    /// Creates a framer refusing frames longer than `maxFrameSize` bytes.
    package init(maxFrameSize: Int = 16 << 20) {
        self.maxFrameSize = maxFrameSize
        reader = QMPFrameReader(maxFrameSize: maxFrameSize)
    }

    /// Starts a resynchronisation: everything buffered and everything up to the next sentinel is stale.
    ///
    /// While it lasts, every sentinel restarts the stream (the `0xFF` byte never occurs in UTF-8
    /// JSON, so it can only be the agent answering a `guest-sync-delimited`, perhaps an earlier one
    /// whose caller gave up). The caller ends it with ``endSync()`` once it reads the reply
    /// carrying its own id.
    package mutating func beginSync() {
        reader = QMPFrameReader(maxFrameSize: maxFrameSize)
        syncing = true
        sentinelSeen = false
    }

    /// Ends the resynchronisation: from now on a sentinel is a protocol violation.
    package mutating func endSync() {
        syncing = false
    }

    /// Adds bytes read from the socket.
    package mutating func append(_ bytes: some Sequence<UInt8>) {
        guard syncing else {
            reader.append(bytes)
            return
        }
        var run: [UInt8] = []
        for b in bytes {
            if b == Self.sentinel {
                discardedBytes += run.count
                run.removeAll(keepingCapacity: true)
                reader = QMPFrameReader(maxFrameSize: maxFrameSize)
                sentinelSeen = true
            } else {
                run.append(b)
            }
        }
        if sentinelSeen { reader.append(run) } else { discardedBytes += run.count }
    }

    /// The next complete frame, parsed; `nil` when more bytes are needed.
    ///
    /// - Throws: ``GuestAgentError`` (``GuestAgentError/Code-swift.struct/protocolViolation``) when the
    ///   stream cannot be the agent's (a byte outside a frame, a frame too large, invalid JSON).
    package mutating func nextFrame() throws(GuestAgentError) -> JSONValue? {
        if syncing && !sentinelSeen { return nil }
        let frame: ArraySlice<UInt8>?
        do {
            frame = try reader.nextFrame()
        } catch {
            throw GuestAgentError(code: .protocolViolation, message: "the guest agent sent a malformed stream: \(error)")
        }
        guard let frame else { return nil }
        do {
            return try JSONValue(parsing: frame)
        } catch {
            throw GuestAgentError(code: .protocolViolation, message: "the guest agent sent invalid JSON: \(error)")
        }
    }
}
