import Manifest
import QMP

/// A disk's I/O limits live in one of two places in QEMU, and qemuctl reads and writes both the
/// same way:
/// - a disk launched (or hot-plugged) with a throttle sits behind a `throttle` filter node whose
///   `throttle-group` object `tg-NAME` holds the limits: read with `qom-get limits`, changed
///   with `qom-set limits`;
/// - any disk can also have the block backend's own limits (`block_set_io_throttle`, reported by
///   `query-block`): that is what a disk launched without a throttle gets live, and what an
///   operator's hand-made `block_set_io_throttle` changes.
///
/// Both apply at once, so a disk with a group reports its backend limits when those are set (an
/// out-of-band change, shown as drift), and apply clears them when it sets the group.
enum ThrottleGroups {
    /// The `throttle-group` object of disk `name`.
    static func objectPath(_ name: String) -> String { "/objects/tg-\(name)" }

    /// Whether query-block's entry shows the disk behind a throttle filter.
    static func hasGroup(_ block: QMPBlockDevice) -> Bool { block.inserted?.driver == "throttle" }

    /// A group's `limits` (QEMU's `ThrottleLimits`) as block-backend style limits.
    static func limits(_ json: JSONValue) -> QMPIOThrottle {
        func v(_ key: String) -> Int { json[key]?.intValue ?? 0 }
        let maxKeys = ["bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write"]
        let length = maxKeys.first { v($0 + "-max") > 0 }.map { v($0 + "-max-length") } ?? 1
        return QMPIOThrottle(
            bps: v("bps-total"), bpsRead: v("bps-read"), bpsWrite: v("bps-write"),
            iops: v("iops-total"), iopsRead: v("iops-read"), iopsWrite: v("iops-write"),
            bpsMax: v("bps-total-max"), iopsMax: v("iops-total-max"), bpsReadMax: v("bps-read-max"),
            bpsWriteMax: v("bps-write-max"), iopsReadMax: v("iops-read-max"), iopsWriteMax: v("iops-write-max"),
            iopsSize: v("iops-size"), burstLength: max(1, length))
    }

    /// Every key of a group's `limits` for `qom-set` (QEMU keeps keys left out, so all are given):
    /// the manifest's values, zero for unset, its burst length for each burst limit set.
    static func qomLimits(_ t: VirtualMachineSpec.Disk.Throttle?) -> JSONValue {
        let q = Observer.qmpThrottle(t)
        let pairs: [(String, Int)] = [
            ("bps-total", q.bps), ("bps-read", q.bpsRead), ("bps-write", q.bpsWrite),
            ("iops-total", q.iops), ("iops-read", q.iopsRead), ("iops-write", q.iopsWrite),
            ("bps-total-max", q.bpsMax), ("bps-read-max", q.bpsReadMax), ("bps-write-max", q.bpsWriteMax),
            ("iops-total-max", q.iopsMax), ("iops-read-max", q.iopsReadMax), ("iops-write-max", q.iopsWriteMax),
            ("iops-size", q.iopsSize),
        ]
        var object: [String: JSONValue] = [:]
        for (key, value) in pairs {
            object[key] = .int(value)
            if key.hasSuffix("-max") { object[key + "-length"] = .int(value > 0 ? max(1, q.burstLength) : 1) }
        }
        return .object(object)
    }
}
