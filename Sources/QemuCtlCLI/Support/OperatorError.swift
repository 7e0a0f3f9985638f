import ArgumentParser
import QMP

/// Exit statuses of the operator commands (`start`, `stop`, `pause`, `resume`,
/// `reset`, `qmp`, `hmp`). With several VM names, the status is that of the first
/// VM that failed.
///
/// | status | meaning |
/// |---|---|
/// | 0 | done |
/// | 1 | QEMU refused: `GenericError` (and any error class not listed), a failed start or stop |
/// | 2 | nothing tried: usage error, JSON-ARGS not an object, the state directory's lock busy |
/// | 3 | `CommandNotFound` (also an unknown HMP command) |
/// | 4 | `DeviceNotFound` |
/// | 5 | `DeviceNotActive` |
/// | 6 | `KVMMissingCap` |
/// | 7 | no answer before the deadline: the monitor is busy (another client holds NAME.sock) or QEMU is stopped/hung |
/// | 8 | no such VM, not running, or QEMU exited during the command |
enum OperatorExit {
    static let ok: Int32 = 0
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    static let commandNotFound: Int32 = 3
    static let deviceNotFound: Int32 = 4
    static let deviceNotActive: Int32 = 5
    static let kvmMissingCap: Int32 = 6
    static let unresponsive: Int32 = 7
    static let notRunning: Int32 = 8

    /// The status for QEMU's error class.
    static func status(forErrorClass errorClass: String?) -> Int32 {
        switch errorClass {
        case "CommandNotFound": commandNotFound
        case "DeviceNotFound": deviceNotFound
        case "DeviceNotActive": deviceNotActive
        case "KVMMissingCap": kvmMissingCap
        default: refused
        }
    }

    /// The table above, for help texts.
    static let help = """
        Exit status: 0 done; 1 QEMU refused (GenericError or another class); 2 nothing tried \
        (usage, lock busy); 3 CommandNotFound; 4 DeviceNotFound; 5 DeviceNotActive; \
        6 KVMMissingCap; 7 no answer in time (monitor busy: another client holds NAME.sock; or \
        QEMU stopped/hung); 8 no such VM, not running, or QEMU exited. With several names, the \
        status of the first that failed.
        """
}

/// A failed operator command on one VM: what to print and the exit status.
struct OperatorError: Error, CustomStringConvertible {
    /// What happened (printed after `qemuctl: error:`).
    var message: String
    /// The next step, printed as `hint: …`.
    var hint: String?
    /// The exit status (``OperatorExit``).
    var status: Int32
    /// QEMU's error, when QEMU answered with one.
    var qmp: QMPError?

    init(_ message: String, hint: String? = nil, status: Int32, qmp: QMPError? = nil) {
        self.message = message
        self.hint = hint
        self.status = status
        self.qmp = qmp
    }

    var description: String { message }

    /// Prints the error and its hint on standard error.
    func report() { Terminal.fail(message, hint: hint) }
}

/// Runs `body` once per name, reporting each failure; throws the exit status of
/// the first failure at the end.
func forEachVM(_ names: [String], _ body: (String) async throws(OperatorError) -> Void) async throws {
    var first: Int32? = nil
    for name in names {
        do {
            try await body(name)
        } catch {
            error.report()
            if first == nil { first = error.status }
        }
    }
    if let first { throw ExitCode(first) }
}
