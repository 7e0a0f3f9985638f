import QMP

// MARK: - Observation

/// What one observation asks QEMU besides its run state and block devices (always read).
///
/// Each query costs QEMU a trip through its main loop, and with many VMs on a busy host that
/// trip is what an observation waits for: ask only for what can have changed.
public struct ObservationReads: Sendable, Hashable {
    /// `query-cpus-fast`: the vCPUs present.
    public var cpus: Bool
    /// `query-memory-size-summary` and `query-memory-devices`: RAM and the hot-plugged DIMMs.
    public var memory: Bool
    /// `query-pci`: the PCI devices, which of them sit in hot-plug root ports, the free ports.
    public var pci: Bool

    /// Creates reads.
    public init(cpus: Bool = false, memory: Bool = false, pci: Bool = false) {
        self.cpus = cpus
        self.memory = memory
        self.pci = pci
    }
}

/// What a running QEMU reported over QMP, typed: run state, block devices with media and the
/// I/O limits in force, and what ``ObservationReads`` asked for.
public struct Observation: Sendable, Equatable {
    /// One block device (`query-block`).
    public struct Block: Sendable, Equatable {
        /// The guest device as QEMU reports it: an id or a QOM path (`/machine/peripheral/disk-a/virtio-backend`).
        public var qdev: String
        /// The inserted image's file name; nil for an empty drive.
        public var media: String?
        /// The I/O limits in force: those set on the block backend, else those of its throttle group; nil when unlimited.
        public var throttle: Throttle?

        /// Creates a block device.
        public init(qdev: String, media: String? = nil, throttle: Throttle? = nil) {
            self.qdev = qdev
            self.media = media
            self.throttle = throttle
        }
    }

    /// QEMU's run state (`running`, `paused`, `prelaunch`, `shutdown`, …), as `query-status` says it.
    public var status: String
    /// Block devices with a guest device, in QEMU's order.
    public var blocks: [Block]
    /// vCPUs present; nil when not read.
    public var vcpus: Int?
    /// RAM in bytes, boot plus hot-plugged; nil when not read.
    public var memorySize: UInt64?
    /// Sizes of the hot-plugged DIMMs; nil when not read.
    public var dimmSizes: [UInt64]?
    /// The PCI devices; nil when not read.
    public var pci: PCIDevices?

    /// Creates an observation.
    public init(status: String, blocks: [Block] = [], vcpus: Int? = nil, memorySize: UInt64? = nil,
                dimmSizes: [UInt64]? = nil, pci: PCIDevices? = nil) {
        self.status = status
        self.blocks = blocks
        self.vcpus = vcpus
        self.memorySize = memorySize
        self.dimmSizes = dimmSizes
        self.pci = pci
    }
}

// MARK: - MonitorObservation

/// Observes many QEMUs at once, each over a short-lived connection to its monitor
/// (``QMPExchange``: one thread, every conversation with its deadline).
///
/// The opening queries (run state, block devices) are written as soon as a connection is open,
/// before its peer is checked (they only read); at the greeting the caller checks the peer and
/// says what else to read; throttle groups' limits are read last, for disks that have one.
public enum MonitorObservation: Sendable {
    /// The queries every observation opens with.
    static let opening: [QMPExchange.Command] = [("query-status", nil), ("query-block", nil)]

    /// Connections opened ahead of a ``run(_:timeout:maxOpen:preconnected:whileConnecting:)``,
    /// with the opening queries written, so that the QEMUs greet and answer meanwhile.
    public final class Preconnection: Sendable {
        let connections: QMPExchange.Preconnected

        /// Connects to each monitor of `paths` now and writes the opening queries; nothing in a VM changes.
        public init(paths: [String]) {
            connections = QMPExchange.Preconnected(paths: paths, opening: MonitorObservation.opening)
        }

        /// How many connections are held (opened and not taken).
        public var count: Int { connections.count }

        /// Whether this is the first claim: for a holder handing the connections to one user.
        public func claim() -> Bool { connections.claim() }
    }

    /// The process at the other end of a monitor connection, as the kernel reports it
    /// (`SO_PEERCRED`: the process that listens on the socket).
    public struct MonitorPeer: Sendable, Hashable {
        /// Its process id.
        public var pid: Int32
        /// Its user id.
        public var uid: UInt32
    }

    /// One monitor to observe.
    public struct Target {
        /// The monitor's socket path.
        public var path: String
        /// Called at the greeting with the peer (`SO_PEERCRED`; nil when the kernel did not say):
        /// what to read, or nil to hang up at once (the peer is not the QEMU the caller expects).
        public var greeted: (MonitorPeer?) -> ObservationReads?
        /// Asked when a connection is refused or the socket is missing: whether to try again
        /// within the deadline (a QEMU that is still starting).
        public var retryRefused: () -> Bool

        /// Creates a target.
        public init(path: String, retryRefused: @escaping () -> Bool = { false }, greeted: @escaping (MonitorPeer?) -> ObservationReads?) {
            self.path = path
            self.greeted = greeted
            self.retryRefused = retryRefused
        }
    }

    /// How one observation ended.
    public enum Outcome: Sendable {
        /// QEMU answered everything asked.
        case observed(Observation)
        /// The caller hung up at the greeting.
        case hungUp
        /// It stopped early: before the greeting (`greeted` false) or in a query; `timedOut`
        /// when a deadline passed (as opposed to a refused or closed connection).
        case failed(greeted: Bool, timedOut: Bool, message: String)
    }

    /// Observes every target, at most `maxOpen` connections at once, each within `timeout`.
    /// - Parameters:
    ///   - preconnected: Connections opened earlier, taken by path.
    ///   - whileConnecting: Runs once the first connections are open, before any is read.
    /// - Returns: One outcome per target, in order.
    public static func run(_ targets: [Target], timeout: Duration, maxOpen: Int = .max, preconnected: Preconnection? = nil,
                           whileConnecting: () -> Void = {}) -> [Outcome] {
        let talks = targets.map(Talk.init)
        let errors = QMPExchange.run(talks.map { $0.conversation() }, timeout: timeout, maxOpen: maxOpen,
                                     preconnected: preconnected?.connections, whileConnecting: whileConnecting)
        return zip(talks, errors).map { $0.outcome($1) }
    }

    /// One conversation in progress.
    private final class Talk {
        let target: Target
        var greeted = false
        var hungUp = false
        var reads = ObservationReads()
        var observation: Observation? = nil
        var groupDisks: [Int] = []
        var backend: [QMPIOThrottle] = []
        var readError: QMPError? = nil

        init(_ target: Target) { self.target = target }

        func conversation() -> QMPExchange.Conversation {
            var c = QMPExchange.Conversation.checkingPeer(path: target.path) { [self] _, peer in
                greeted = true
                guard let wanted = target.greeted(peer.map { MonitorPeer(pid: $0.pid, uid: $0.uid) }) else {
                    hungUp = true
                    return nil
                }
                reads = wanted
                var commands: [QMPExchange.Command] = []  // after the opening's status and block queries
                if reads.cpus { commands.append(("query-cpus-fast", nil)) }
                if reads.memory { commands += [("query-memory-size-summary", nil), ("query-memory-devices", nil)] }
                if reads.pci { commands.append(("query-pci", nil)) }
                return commands
            }
            c.opening = MonitorObservation.opening
            c.retryRefused = target.retryRefused
            c.next = { [self] replies in
                do throws(QMPError) {
                    guard var o = observation else {
                        var it = replies.makeIterator()
                        let status = try QMPRunStatus(reply: try it.next()!.get()).status
                        let blocks = QMPBlockDevice.list(reply: try it.next()!.get()).filter { $0.qdev != nil }
                        var o = Observation(status: status)
                        if reads.cpus { o.vcpus = try it.next()!.get().arrayValue?.count ?? 0 }
                        if reads.memory {
                            o.memorySize = MemoryDIMMs.total(summary: try it.next()!.get())
                            o.dimmSizes = MemoryDIMMs.sizes(queryMemoryDevices: try it.next()!.get())
                        }
                        if reads.pci { o.pci = PCIDevices(queryPCI: try it.next()!.get()) }
                        o.blocks = blocks.map { Observation.Block(qdev: $0.qdev ?? "", media: $0.inserted?.file) }
                        backend = blocks.map { $0.inserted?.throttle ?? QMPIOThrottle() }
                        for i in blocks.indices where !backend[i].isUnlimited {
                            o.blocks[i].throttle = ThrottleLimits.throttle(backend[i])
                        }
                        // A disk whose limits live in its throttle group (and none set by hand on its backend).
                        groupDisks = blocks.indices.filter { blocks[$0].hasThrottleGroup && backend[$0].isUnlimited }
                            .filter { DeviceID.find(in: blocks[$0].qdev ?? "", kind: .disk) != nil }
                        observation = o
                        if groupDisks.isEmpty { return nil }
                        return groupDisks.map { i in
                            let disk = DeviceID.find(in: blocks[i].qdev ?? "", kind: .disk)!.name
                            return ("qom-get", ["path": .string(ThrottleLimits.objectPath(DiskIDs.throttleGroup(disk: disk))), "property": "limits"])
                        }
                    }
                    for (i, reply) in zip(groupDisks, replies) {
                        o.blocks[i].throttle = ThrottleLimits.throttle(ThrottleLimits.fromGroup(try reply.get()))
                    }
                    observation = o
                } catch {
                    readError = error
                }
                return nil
            }
            return c
        }

        func outcome(_ error: QMPError?) -> Outcome {
            if hungUp { return .hungUp }
            if let error = error ?? readError {
                return .failed(greeted: greeted, timedOut: error.code == .timedOut, message: error.message)
            }
            guard let observation else { return .failed(greeted: greeted, timedOut: false, message: "not running") }
            return .observed(observation)
        }
    }
}

/// A target's callbacks run on the observing thread only.
@available(*, unavailable)
extension MonitorObservation.Target: Sendable {}
