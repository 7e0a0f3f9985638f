/// An asynchronous event QEMU sent, such as `STOP`, `RESUME` or `SHUTDOWN`.
public struct QMPEvent: Sendable, Hashable, CustomStringConvertible {
    /// The event name, e.g. `SHUTDOWN`.
    public var name: String
    /// The event's `data` member (`null` when QEMU sent none).
    public var data: JSONValue
    /// When QEMU emitted the event: seconds since the Unix epoch.
    public var seconds: Int
    /// Microseconds within ``seconds``.
    public var microseconds: Int

    /// Creates an event.
    public init(name: String, data: JSONValue = .null, seconds: Int = 0, microseconds: Int = 0) {
        self.name = name
        self.data = data
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// "NAME {data}".
    public var description: String { data.isNull ? name : "\(name) \(data)" }
}

/// The greeting QEMU sends when a client connects.
public struct QMPGreeting: Sendable, Hashable {
    /// QEMU's version as `major.minor.micro`.
    public var version: String
    /// The package string QEMU was built with (e.g. `Debian 1:7.2+dfsg-7`).
    public var package: String
    /// The capabilities QEMU offers (e.g. `oob`).
    public var capabilities: [String]
}

/// A stream of QMP events for one subscriber.
///
/// The stream buffers a bounded number of events; when the subscriber falls behind,
/// the oldest buffered events are dropped and counted in ``droppedCount``. The
/// stream ends when the connection closes: normally when it was closed by this
/// side, with a ``QMPError`` (``QMPError/Code-swift.struct/connectionClosed``)
/// saying why when QEMU went away.
public struct QMPEventStream: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = QMPEvent
    /// The failure type.
    public typealias Failure = any Error

    let stream: AsyncThrowingStream<QMPEvent, any Error>
    let counter: DropCounter

    /// How many events this subscriber lost because its buffer was full.
    public var droppedCount: Int { counter.value }

    /// Creates the iterator.
    public func makeAsyncIterator() -> AsyncThrowingStream<QMPEvent, any Error>.Iterator {
        stream.makeAsyncIterator()
    }
}
