#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QMP
import QemuCtl
import Reconcile

/// Short-lived connections to a VM's control socket (`STATE/NAME.sock`).
///
/// QEMU serves one client at a time on each monitor socket, so every command but
/// `events` connects, does its work and closes: a user's own QMP client on the same
/// socket waits at most one command. When someone else holds the socket, the
/// connection gets no greeting; after the deadline the error says so
/// ("monitor busy (another client holds NAME.sock)") instead of hanging.
/// See docs/design/monitors.md.
struct MonitorAccess {
    /// The state directory.
    var store: StateStore
    /// The deadline for connecting and for each command.
    var deadline: Duration

    /// The runtime layout of `name`, after checking that the name can be a VM of the
    /// state directory and that something is there.
    func layout(_ name: String) throws(OperatorError) -> RuntimeLayout {
        guard VMNameArgument.isValid(name) else {
            throw OperatorError("'\(name)' is not a VM name", status: OperatorExit.usage)
        }
        let layout = store.layout(name)
        let recorded = Posix.fileExists(store.recordPath(name))
        guard recorded || Posix.fileExists(layout.socketPath) else {
            throw OperatorError("no VM named \(name) in \(store.directory)",
                                hint: "`qemuctl get` lists the VMs there; --state-dir (or QEMUCTL_STATE_DIR) selects another state directory",
                                status: OperatorExit.notRunning)
        }
        return layout
    }

    /// Connects to the control socket of `name`, runs `body` and closes the connection.
    func with<R>(_ name: String, _ body: (QMPClient) async throws(QMPError) -> R) async throws(OperatorError) -> R {
        let client = try await connect(name)
        defer { client.close() }
        do {
            return try await body(client)
        } catch {
            throw failure(error, name: name)
        }
    }

    /// Opens a connection to the control socket of `name`.
    func connect(_ name: String) async throws(OperatorError) -> QMPClient {
        let layout = try layout(name)
        guard Posix.fileExists(layout.socketPath) else { throw notRunning(name) }
        Verbosity.say("\(name): connecting to QEMU's monitor at \(layout.socketPath)")
        let client: QMPClient
        do {
            client = try await QMPClient.connect(to: layout.socketPath, timeout: deadline)
        } catch {
            throw failure(error, name: name)
        }
        // Commands (a password with `qmp NAME set_password`, a stop) go only to the QEMU the record names.
        if let why = store.disproof(ofPeer: client.peerPID ?? -1, uid: client.peerUID, name: name) {
            client.close()
            throw OperatorError("refusing to use the monitor of VM \(name): \(why)",
                                hint: "the process on \(layout.socketPath) is not the QEMU qemuctl launched or adopted",
                                status: OperatorExit.refused)
        }
        Verbosity.say("\(name): connected to QEMU pid \(client.peerPID.map(String.init) ?? "?"), the recorded one")
        return client
    }

    /// The error for a VM that does not run.
    func notRunning(_ name: String) -> OperatorError {
        let managed = Posix.fileExists(store.recordPath(name))
        return OperatorError("VM \(name) is not running", hint: managed ? "start it with: qemuctl start \(name)" : nil,
                             status: OperatorExit.notRunning)
    }

    /// Turns a QMP error on the control socket of `name` into what the user reads.
    func failure(_ error: QMPError, name: String) -> OperatorError {
        let layout = store.layout(name)
        let seconds = Self.seconds(deadline)
        switch error.code {
        case .connectFailed:
            return notRunning(name)
        case .timedOut:
            // No answer to a command (but the greeting came); `qmp_capabilities` is still
            // part of connecting, so it gets the diagnosis below.
            if let command = error.command, command != "qmp_capabilities" {
                return OperatorError("QEMU of VM \(name) did not answer '\(command)' within \(seconds)",
                                     hint: "retry with a longer --timeout; `qemuctl stop --force \(name)` ends a hung QEMU",
                                     status: OperatorExit.unresponsive, qmp: error)
            }
            return unanswered(name: name, layout: layout, seconds: seconds, error: error)
        case .connectionClosed:
            return OperatorError("QEMU of VM \(name) closed the monitor\(error.command.map { " during '\($0)'" } ?? "") (it exited?)",
                                 status: OperatorExit.notRunning, qmp: error)
        case .commandFailed:
            let cls = error.errorClass ?? "GenericError"
            var hint: String? = nil
            if cls == "CommandNotFound" {
                hint = "`qemuctl qmp \(name) query-commands` lists the commands this QEMU knows"
            } else if cls == "DeviceNotFound" {
                hint = "`qemuctl hmp \(name) info qtree` and `qemuctl qmp \(name) query-block` show the device ids"
            }
            return OperatorError("QMP command '\(error.command ?? "?")' failed (\(cls)): \(error.message)", hint: hint,
                                 status: OperatorExit.status(forErrorClass: cls), qmp: error)
        default:
            return OperatorError("\(error)", status: OperatorExit.refused, qmp: error)
        }
    }

    /// No greeting before the deadline: says whether the monitor is busy, QEMU
    /// stopped, or simply silent.
    private func unanswered(name: String, layout: RuntimeLayout, seconds: String, error: QMPError) -> OperatorError {
        let pid = store.runningPID(name)
        switch MonitorProbe.diagnose(socketPath: layout.socketPath, pid: pid) {
        case .busy:
            return OperatorError(
                "monitor busy (another client holds \(layout.socketPath)): no answer within \(seconds)",
                hint: "QEMU serves one monitor client at a time: close the other client (a QMP shell, socat, a script) "
                    + "or retry with a longer --timeout (`qemuctl events` holds \(name).sock only for a VM without \(name)/events.sock)",
                status: OperatorExit.unresponsive, qmp: error)
        case .stopped(let pid):
            return OperatorError("QEMU of VM \(name) (pid \(pid)) is stopped (SIGSTOP or a debugger) and answers nobody",
                                 hint: "continue it with: kill -CONT \(pid)", status: OperatorExit.unresponsive, qmp: error)
        case .unresponsive:
            return OperatorError("QEMU of VM \(name)\(pid.map { " (pid \($0))" } ?? "") did not answer on \(layout.socketPath) within \(seconds)",
                                 hint: "retry with a longer --timeout; `qemuctl stop --force \(name)` ends a hung QEMU",
                                 status: OperatorExit.unresponsive, qmp: error)
        }
    }

    /// "5 s", "500 ms".
    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}
