#if canImport(Glibc)
import Glibc
#endif

/// What both clients (``Connection`` and ``QMPExchange``) make of the bytes and
/// messages of a QMP stream: one place for the protocol's rules and their errors.
enum Wire {
    /// A decoded message from QEMU.
    enum Message {
        case greeting(QMPGreeting)
        case event(QMPEvent)
        /// A reply: its `id` (when it has one) and the result.
        case reply(id: Int?, Result<JSONValue, ReplyError>)
    }

    /// QEMU's `error` member of a reply, before the command is known.
    struct ReplyError: Error {
        var errorClass: String
        var desc: String

        func qmpError(command: String) -> QMPError {
            QMPError(code: .commandFailed, command: command, errorClass: errorClass, message: desc)
        }
    }

    /// Checks a socket path against the unix socket limit.
    static func pathProblem(_ path: String) -> QMPError? {
        let limit = Int(CSocketPathMax.value) - 1
        guard path.utf8.count > limit else { return nil }
        return QMPError(code: .connectFailed, message:
            "socket path \(path) is \(path.utf8.count) bytes; a unix socket path holds at most \(limit): use a shorter state or socket directory")
    }

    /// The error for a failed connect(2).
    static func connectError(path: String, errno e: CInt) -> QMPError {
        let text = errnoText(e)
        let message: String
        switch e {
        case ENOENT: message = "no QMP socket at \(path) (\(text)): is the VM running, and is this its socket path?"
        case ECONNREFUSED: message = "nothing is listening on \(path) (\(text)): the socket is stale (its QEMU exited) or not a QEMU monitor"
        case EACCES, EPERM: message = "permission denied connecting to \(path): run as the user who owns the VM"
        case ENOTSOCK: message = "\(path) is not a unix socket"
        case ENAMETOOLONG: message = "socket path \(path) is too long for a unix socket: use a shorter directory"
        case EAGAIN: message = "the monitor socket \(path) has no room for another client: try again later"
        default: message = "cannot connect to \(path): \(text)"
        }
        return QMPError(code: .connectFailed, message: message)
    }

    /// The error for a connect(2) that found the listener's queue full until the deadline.
    static func queueFull(path: String, timeout: Duration) -> QMPError {
        QMPError(code: .timedOut, message:
            "\(path) accepted no connection within \(timeout) (its queue is full): QEMU is busy serving another client, or unresponsive (stopped or wedged)")
    }

    /// The error for a byte stream that cannot be QMP.
    static func framingError(_ failure: QMPFrameReader.Failure, path: String) -> QMPError {
        switch failure {
        case .unexpectedByte(let b, let offset):
            return QMPError(code: .protocolViolation, message:
                "\(path) sent data that is not QMP (byte \(JSONParser.show(b)) at offset \(offset)): is this a QEMU monitor socket?")
        case .frameTooLarge(let limit):
            return QMPError(code: .protocolViolation, message: "\(path) sent a message larger than \(limit) bytes; refusing it")
        }
    }

    /// The error for a command that could not be written (`Sys.writeAll`'s errno; ETIMEDOUT at the deadline).
    static func sendFailed(_ rc: CInt, command: String?, path: String) -> QMPError {
        rc == ETIMEDOUT
            ? QMPError(code: .timedOut, command: command,
                       message: "could not send within the deadline: QEMU is not reading its monitor (unresponsive)")
            : QMPError(code: .connectionClosed, command: command, message: "cannot send to \(path): \(errnoText(rc))")
    }

    /// The error for a connection QEMU closed.
    static func closedByPeer(path: String) -> QMPError {
        QMPError(code: .connectionClosed, message: "QEMU closed the monitor connection \(path) (the VM exited or another program closed it)")
    }

    /// The error for a connection closed before the greeting.
    static func noGreeting(path: String) -> QMPError {
        QMPError(code: .protocolViolation, message: "\(path) closed the connection without a QMP greeting: is it a QEMU monitor socket?")
    }

    /// The error for a reply whose id matches no command this connection sent (a string id,
    /// an id never issued, a second reply to one command, or an id-less reply with nothing
    /// waiting): QEMU never does that, so the peer is not a QEMU monitor or the stream is
    /// corrupt, and no reply on this connection can be trusted to answer what it seems to.
    static func unmatchedReply(id: String?, path: String) -> QMPError {
        QMPError(code: .protocolViolation, message:
            "\(path) sent a reply \(id.map { "with id \($0)" } ?? "without an id") that matches no command sent: "
            + "not a QEMU monitor, or a corrupt stream; the connection was closed")
    }

    /// The error for a call that got no reply in time.
    static func timedOut(_ command: String, path: String) -> QMPError {
        QMPError(code: .timedOut, command: command,
                 message: "no reply from \(path) before the deadline: QEMU is unresponsive (stopped or wedged) or the monitor is busy")
    }

    /// The error for a greeting that did not come in time.
    static func greetingTimedOut(path: String) -> QMPError {
        QMPError(code: .timedOut, message:
            "no QMP greeting from \(path) before the deadline: the monitor is busy serving another client, or QEMU is unresponsive")
    }

    /// Decodes one frame.
    static func decode(frame: ArraySlice<UInt8>, path: String) -> Result<Message, QMPError> {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: frame)
        } catch {
            return .failure(QMPError(code: .protocolViolation, message: "\(path) sent invalid JSON (\(error)): is this a QEMU monitor socket?"))
        }
        guard case .object(let message) = value else {
            return .failure(QMPError(code: .protocolViolation, message: "\(path) sent a JSON value that is not an object"))
        }
        if let event = message["event"]?.stringValue {
            let timestamp = message["timestamp"]
            return .success(.event(QMPEvent(
                name: event, data: message["data"] ?? .null,
                seconds: timestamp?["seconds"]?.intValue ?? 0,
                microseconds: timestamp?["microseconds"]?.intValue ?? 0)))
        }
        // Our commands carry integer ids only: a reply with any other id answers nothing we sent.
        let id: Int?
        switch message["id"] {
        case nil: id = nil
        case .int(let i)?: id = i
        case let other?:
            guard message["error"] != nil || message["return"] != nil else { id = nil; break }
            return .failure(unmatchedReply(id: "\(other)", path: path))
        }
        if let error = message["error"] {
            return .success(.reply(id: id, .failure(ReplyError(
                errorClass: error["class"]?.stringValue ?? "GenericError", desc: error["desc"]?.stringValue ?? "\(error)"))))
        }
        if let result = message["return"] {
            // QEMU echoes the id of every command it parsed; only an error may lack one.
            guard id != nil else { return .failure(unmatchedReply(id: nil, path: path)) }
            return .success(.reply(id: id, .success(result)))
        }
        if let qmp = message["QMP"] {
            let version = qmp["version"]?["qemu"]
            return .success(.greeting(QMPGreeting(
                version: [version?["major"], version?["minor"], version?["micro"]].map { "\($0?.intValue ?? 0)" }.joined(separator: "."),
                package: qmp["version"]?["package"]?.stringValue ?? "",
                capabilities: qmp["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? [])))
        }
        return .failure(QMPError(code: .protocolViolation, message: "\(path) sent a message that is not QMP: \(value)"))
    }

    /// One command as sent: `{"execute":…,"arguments":…,"id":…}` and CRLF.
    static func encode(command: String, arguments: JSONValue?, id: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48 + command.utf8.count)
        out.append(contentsOf: #"{"execute":"#.utf8)
        JSONWriter.writeString(command, into: &out)
        if let arguments {
            out.append(contentsOf: #","arguments":"#.utf8)
            JSONWriter.write(arguments, into: &out)
        }
        out.append(contentsOf: #","id":"#.utf8)
        out.append(contentsOf: String(id).utf8)
        out.append(contentsOf: "}\r\n".utf8)
        return out
    }
}
