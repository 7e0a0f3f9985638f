import ArgumentParser
import Dispatch
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
import Synchronization

extension QemuCtlCommand {
    /// `qemuctl events [NAME…]`: follow QMP events as they happen.
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow the QMP events of managed VMs as they happen, one line each.",
            discussion: """
                Each line: time (QEMU's timestamp, UTC), VM, event, data. VMs launched while \
                events runs are picked up (VM_APPEARED) and VMs whose QEMU exits are reported \
                (VM_GONE); VMs already running when it starts are announced as VM_FOLLOWED \
                with their run state. -o json (or --json) prints one JSON object per line: \
                {"time", "timestamp", "vm", "event", "data", "source"}, where source is qemu \
                for QEMU's events and qemuctl or journal for the lines qemuctl adds; -o yaml \
                prints the same object as one YAML document (starting with ---) per event.

                events holds only each VM's follower monitor (STATE/NAME/events.sock), never \
                NAME.sock, so it blocks no other command and no client of yours. A VM launched \
                before follower monitors existed is followed on NAME.sock instead, with a \
                warning. One events process per VM at a time: a second waits until the first \
                lets go of the follower monitor.

                --since-start first replays what qemuctl recorded since each VM's QEMU started: \
                VM_STARTED (from the launch record) and every journal line since that launch \
                (apply's changes, qemuctl pause/resume/reset/stop, …) as JOURNAL. QEMU keeps no \
                event history, so events that happened while nobody followed are not replayed.

                Ends on Ctrl-C (SIGINT), SIGTERM, or when standard output is closed, with exit \
                status 0.

                EXAMPLES:
                  # every VM, also ones launched later
                  qemuctl events
                  qemuctl events web-1 --since-start -o json
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "VM names (default: every VM of the state directory, including ones launched later).",
                  completion: .vmNames, transform: VMNameArgument.parse)
        var names: [String] = []

        @Option(name: .shortAndLong, help: "text, json (one object per line) or yaml (one document per event).")
        var output: TextOutputFormat = .text

        @Flag(help: "The same as -o json.")
        var json = false

        @Flag(help: "First replay each VM's recorded lifecycle since its QEMU started (launch record and journal).")
        var sinceStart = false

        func run() async throws {
            // A closed pipe is noticed by write() failing with EPIPE, not by a signal.
            signal(SIGPIPE, SIG_IGN)
            let format = json ? .json : output
            let follower = EventFollower(store: global.store, names: names, json: format == .json, sinceStart: sinceStart,
                                         deadline: global.deadline, yaml: format == .yaml)
            var sources: [any DispatchSourceSignal] = []
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { follower.requestStop() }
                source.resume()
                sources.append(source)
            }
            await follower.run()
            sources.forEach { $0.cancel() }
        }
    }
}

/// Follows the events of the VMs of a state directory: one long-lived connection
/// per VM on its follower monitor, a rescan of the directory every 200 ms for VMs
/// that appear, and a printer shared by all.
final class EventFollower: Sendable {
    let store: StateStore
    let names: [String]
    let json: Bool
    /// Whether each event is printed as a YAML document (`-o yaml`) rather than a line.
    let yaml: Bool
    let sinceStart: Bool
    let deadline: Duration
    /// When set, receives each event (VM, event, data) instead of it being printed: how
    /// `qemuctl controller` follows the same monitors.
    let sink: (@Sendable (String, String, JSONValue) -> Void)?
    /// How often the state directory is scanned for VMs that appeared.
    let rescanInterval: Duration

    private struct State {
        var stop = false
        var stdoutClosed = false
        /// The QEMU pid each VM is followed at (or was last followed at), by name.
        var followed: [String: Int32] = [:]
        /// The QEMU each VM ran when `events` started (-1: a socket without a known pid): following it
        /// later, once a busy monitor is free, is still VM_FOLLOWED, never VM_APPEARED.
        var runningAtStart: [String: Int32] = [:]
        /// VMs whose history `--since-start` has replayed.
        var replayed: Set<String> = []
        var tasks: [String: Task<Void, Never>] = [:]
        var clients: [String: QMPClient] = [:]
        var warned: Set<String> = []
        var nameWidth = 4
    }
    private let state = Mutex(State())
    /// Serialises output lines.
    private let output = Mutex(())
    /// How many lines are being written: a `write(2)` to a full pipe nobody reads blocks
    /// until the reader drains it, perhaps never.
    private let writing = Atomic<Int>(0)

    init(store: StateStore, names: [String], json: Bool, sinceStart: Bool, deadline: Duration,
         sink: (@Sendable (String, String, JSONValue) -> Void)? = nil, rescanInterval: Duration = .milliseconds(200),
         yaml: Bool = false) {
        self.yaml = yaml
        self.sink = sink
        self.rescanInterval = rescanInterval
        self.store = store
        self.names = names
        self.json = json
        self.sinceStart = sinceStart
        self.deadline = deadline
    }

    /// Asks ``run()`` to return (from a signal handler's queue).
    ///
    /// ``run()`` returns once every follower has ended, and a follower blocked writing to
    /// a full standard output (a pipe nobody reads) never ends: if one still writes 500 ms
    /// later, the process exits at once with status 0, as a stop does;
    /// the line being written is lost, nothing else is pending.
    func requestStop() {
        state.withLock { $0.stop = true }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(500)) { [self] in
            if writing.load(ordering: .acquiring) > 0 { Posix.exitImmediately(0) }
        }
    }

    private var shouldStop: Bool {
        if Terminal.stdoutClosed { state.withLock { $0.stdoutClosed = true } }
        return state.withLock { $0.stop || $0.stdoutClosed }
    }

    /// Follows until asked to stop or standard output closes; then closes every connection.
    func run() async {
        for name in names where !(Posix.fileExists(store.recordPath(name)) || Posix.fileExists(store.layout(name).socketPath)) {
            Terminal.warn("no VM named \(name) in \(store.directory) yet; waiting for it to appear")
        }
        var first = true
        while !shouldStop {
            scan(initial: first)
            first = false
            try? await Task.sleep(for: rescanInterval)
        }
        let (tasks, clients) = state.withLock { s in (Array(s.tasks.values), Array(s.clients.values)) }
        clients.forEach { $0.close() }
        tasks.forEach { $0.cancel() }
        for t in tasks { await t.value }
    }

    /// Starts following each candidate VM that runs and is not followed yet.
    private func scan(initial: Bool) {
        let candidates = names.isEmpty ? VMNames.list(in: store) : names
        let width = max(4, candidates.map(\.count).max() ?? 0)
        state.withLock { $0.nameWidth = max($0.nameWidth, width) }
        for name in candidates {
            let layout = store.layout(name)
            let recorded = Posix.fileExists(store.recordPath(name))
            let pid = store.runningPID(name)
            // A managed VM runs when its pid file (or its adoption record) names a live
            // QEMU; a VM qemuctl did not launch (the seed library's) when its socket is there.
            guard pid != nil || (!recorded && Posix.fileExists(layout.socketPath)) else { continue }
            if initial { state.withLock { s in s.runningAtStart[name] = pid ?? -1 } }
            let start: Bool = state.withLock { s in
                guard s.tasks[name] == nil, !s.stop else { return false }
                if let pid, s.followed[name] == pid { return false }  // its exit was reported; wait for a new QEMU
                s.followed[name] = pid ?? -1
                return true
            }
            guard start else { continue }
            let task = Task { await self.follow(name, layout: layout, pid: pid) }
            state.withLock { s in
                if s.tasks[name] == nil { s.tasks[name] = task }
            }
        }
    }

    /// Follows one VM until its connection ends.
    private func follow(_ name: String, layout: RuntimeLayout, pid: Int32?) async {
        defer { state.withLock { s in s.tasks[name] = nil; s.clients[name] = nil } }
        // Whether the QEMU was launched with a follower monitor is in its command line, not in whether
        // the socket exists yet: a QEMU seconds old may not have created it, and following it on its
        // main monitor instead would hold that monitor for as long as events runs.
        let commandLine = pid.flatMap { Posix.commandLine(of: $0) }
        if pid != nil && commandLine == nil {
            // Exited, or not readable yet: the next scan looks again.
            state.withLock { s in s.followed[name] = nil }
            return
        }
        let hasFollower = commandLine?.contains(where: { $0.contains(layout.followerSocketPath) }) == true
        let socket = hasFollower ? layout.followerSocketPath : layout.socketPath
        if !hasFollower, state.withLock({ $0.warned.insert("fallback:\(name)").inserted }) {
            Terminal.warn("VM \(name) has no follower monitor (launched before qemuctl had them, or not by qemuctl); "
                          + "following it on \(layout.socketPath), which other clients of that socket wait for while events runs")
            Terminal.hint("relaunch it (`qemuctl stop \(name) && qemuctl start \(name)`) to give it \(name)/events.sock")
        }
        let client: QMPClient
        do {
            client = try await QMPClient.connect(to: socket, timeout: deadline)
        } catch {
            // Not followed after all: let the next scan try again (QEMU may be starting or exiting).
            state.withLock { s in s.followed[name] = nil }
            if error.code == .timedOut, state.withLock({ $0.warned.insert("busy:\(name)").inserted }) {
                // Say what the kernel shows, not a guess at who the other client is.
                switch MonitorProbe.diagnose(socketPath: socket, pid: pid) {
                case .busy:
                    Terminal.warn("the monitor \(socket) of VM \(name) is busy: another client holds it (QEMU serves one at a time); retrying")
                case .stopped(let stopped):
                    Terminal.warn("QEMU of VM \(name) (pid \(stopped)) is stopped (SIGSTOP or a debugger) and answers nobody; retrying")
                case .unresponsive:
                    Terminal.warn("the monitor \(socket) of VM \(name) did not answer within the deadline (QEMU hung?); retrying")
                }
            }
            try? await Task.sleep(for: .milliseconds(300))
            return
        }
        let stopNow: Bool = state.withLock { s in
            if s.stop { return true }
            s.clients[name] = client
            return false
        }
        if stopNow { client.close(); return }
        defer { client.close() }
        state.withLock { _ = $0.warned.remove("busy:\(name)") }
        // Subscribe before asking anything, so no event falls between the two.
        let events = client.events()
        let status = try? await client.queryStatus(timeout: deadline)
        let peer = client.peerPID ?? pid
        // Ran when events started (the same QEMU), though perhaps followed only once its monitor was free.
        let wasRunning = state.withLock { s in s.runningAtStart[name].map { $0 == -1 || $0 == pid } ?? false }
        if wasRunning && sinceStart && state.withLock({ $0.replayed.insert(name).inserted }) { replay(name) }
        var data: [String: JSONValue] = ["monitor": .string(hasFollower ? "events.sock" : "\(name).sock")]
        if let peer { data["pid"] = .int(Int(peer)) }
        if let status { data["status"] = .string(status.status) }
        emit(vm: name, event: wasRunning ? "VM_FOLLOWED" : "VM_APPEARED", data: .object(data), source: "qemuctl")
        var reason = "monitor closed"
        do {
            for try await e in events {
                emit(vm: name, event: e.name, data: e.data,
                     time: Double(e.seconds) + Double(e.microseconds) / 1e6, source: "qemu")
            }
        } catch {
            reason = "\(error)"
        }
        if state.withLock({ $0.stop }) || Task.isCancelled { return }
        // The connection ended: QEMU exited (or closed the monitor).
        var gone: [String: JSONValue] = ["reason": .string(reason)]
        if let peer {
            // Polled every millisecond: the controller relaunches a VM as soon as this says it exited.
            for _ in 0..<1000 where Posix.processExists(peer) { try? await Task.sleep(for: .milliseconds(1)) }
            gone["pid"] = .int(Int(peer))
            gone["reason"] = .string(Posix.processExists(peer) ? "monitor closed, QEMU still running" : "QEMU exited")
        }
        emit(vm: name, event: "VM_GONE", data: .object(gone), source: "qemuctl")
    }

    /// `--since-start`: the launch record's start and the journal since the last launch.
    private func replay(_ name: String) {
        guard let record = try? store.loadRecord(StoredRecord.self, name: name) else { return }
        var data: [String: JSONValue] = [:]
        if let pid = record.pid { data["pid"] = .int(Int(pid)) }
        if let accel = record.accelerator { data["accelerator"] = .string(accel) }
        emit(vm: name, event: "VM_STARTED", data: .object(data), time: record.startedAt, source: "journal")
        guard let text = try? String(contentsOfFile: store.journalPath(name), encoding: .utf8) else { return }
        let lines = text.split(separator: "\n")
        let since = lines.lastIndex { $0.contains(" launch uuid=") }.map { lines.index(after: $0) } ?? lines.startIndex
        for line in lines[since...] {
            guard let space = line.firstIndex(of: " ") else { continue }
            let stamp = Posix.parseUTCTimestamp(String(line[..<space]))
            if let stamp, let started = record.startedAt, stamp + 1 < started { continue }
            emit(vm: name, event: "JOURNAL", data: ["message": .string(String(line[line.index(after: space)...]))],
                 time: stamp, source: "journal")
        }
    }

    /// Prints one line (text or JSON); notes when standard output has gone away.
    private func emit(vm: String, event: String, data: JSONValue, time: Double? = nil, source: String) {
        if let sink { return sink(vm, event, data) }
        let t = time ?? Date().timeIntervalSince1970
        let stamp = Self.timestamp(t)
        let line: String
        if json || yaml {
            let object: JSONValue = [
                "time": .string(stamp), "timestamp": .double(t), "vm": .string(vm), "event": .string(event),
                "data": data, "source": .string(source),
            ]
            line = yaml ? "---\n" + StructuredOutput.yaml(object).dropLast() : object.description
        } else {
            let width = state.withLock { $0.nameWidth }
            let padded = Terminal.padded(vm, width)
            let dataText = data.isNull || data == .object([:]) ? "" : data.description
            let eventText = dataText.isEmpty ? event : Terminal.padded(event, 14)
            line = "\(Terminal.paint(stamp, .dim))  \(padded)  \(Terminal.paint(eventText, Self.colour(event)))"
                + (dataText.isEmpty ? "" : "  " + dataText)
        }
        writing.add(1, ordering: .acquiringAndReleasing)
        let ok = output.withLock { _ in Terminal.writeLine(line) }
        writing.subtract(1, ordering: .acquiringAndReleasing)
        if !ok { state.withLock { $0.stdoutClosed = true } }
    }

    private static func colour(_ event: String) -> Terminal.Colour {
        switch event {
        case "RESUME", "VM_APPEARED", "VM_FOLLOWED", "VM_STARTED": .green
        case "STOP", "SUSPEND", "RESET": .yellow
        case "SHUTDOWN", "POWERDOWN", "VM_GONE", "GUEST_PANICKED": .red
        case "JOURNAL": .dim
        default: .cyan
        }
    }

    /// `2026-11-26T00:41:02.123Z` (``Posix/utcTimestamp(_:milliseconds:)``).
    static func timestamp(_ t: Double) -> String { Posix.utcTimestamp(t, milliseconds: true) }
}
