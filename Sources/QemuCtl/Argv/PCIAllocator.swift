/// The board family, which decides the PCI root bus and the fixed slots.
enum BoardFamily: Equatable {
    /// Q35: PCIe root `pcie.0`; slot 0 host bridge, 0x1f ICH9 (LPC, AHCI, SMBus); AHCI ports `ide.0…5`.
    case q35
    /// i440FX: PCI root `pci.0`; slot 0 host bridge, 1 PIIX3 (ISA, IDE, USB, ACPI); IDE `ide.0/1` × 2 units.
    case i440fx
    /// Anything else: QEMU places devices itself.
    case other

    init(machineType: String) {
        if machineType == "q35" || machineType.hasPrefix("pc-q35") { self = .q35 }
        else if machineType == "pc" || machineType.hasPrefix("pc-i440fx") || machineType.hasPrefix("pc-") { self = .i440fx }
        else { self = .other }
    }

    var rootBus: String? {
        switch self {
        case .q35: "pcie.0"
        case .i440fx: "pci.0"
        case .other: nil
        }
    }

    /// Slots devices may use on the root bus (slot 0x1f is a valid slot on i440fx; on q35 it is the LPC bridge).
    var usableSlots: ClosedRange<Int>? {
        switch self {
        case .q35: 0x01...0x1e
        case .i440fx: 0x02...0x1f
        case .other: nil
        }
    }

    /// IDE buses and units per bus.
    var ideLayout: (buses: Int, units: Int)? {
        switch self {
        case .q35: (6, 1)
        case .i440fx: (2, 2)
        case .other: nil
        }
    }
}

/// Assigns root-bus PCI slots: fixed requests first, then each other request its hinted slot (the one it had
/// at an earlier launch) while that is free, then the rest in request order from the bottom, and hot-plug
/// ports from the top, so adding a port does not move other devices. Never hands out a fixed slot of the
/// board or a slot past 0x1f; reports exhaustion instead of wrapping.
struct PCIAllocator {
    struct Request {
        var id: String
        var fixed: Int?
        var path: String
        var fromTop: Bool = false
    }

    let family: BoardFamily
    let reserved: Set<Int>
    /// Slots by request id from an earlier launch; a hint that is not usable or already taken is ignored.
    var hints: [String: Int] = [:]

    /// Returns `id → slot`, or problems.
    func allocate(_ requests: [Request]) -> (slots: [String: Int], problems: [ConfigProblem]) {
        guard let usable = family.usableSlots, let bus = family.rootBus else {
            // QEMU places devices itself on other boards: a fixed slot would be silently ignored.
            return ([:], requests.filter { $0.fixed != nil }.map {
                .init(path: $0.path + ".pciSlot", message: "a fixed PCI slot needs a q35 or i440FX (pc) machine; on this one QEMU places devices itself")
            })
        }
        var used = reserved
        var slots: [String: Int] = [:]
        var problems: [ConfigProblem] = []
        for r in requests {
            guard let f = r.fixed else { continue }
            if !usable.contains(f) || reserved.contains(f) {
                problems.append(.init(path: r.path + ".pciSlot", message: "slot 0x\(hex2(f)) is not free for devices on \(bus) (usable: 0x\(hex2(usable.lowerBound))–0x\(hex2(usable.upperBound)), minus slots the board or defaults use)"))
            } else if !used.insert(f).inserted {
                problems.append(.init(path: r.path + ".pciSlot", message: "slot 0x\(hex2(f)) on \(bus) is already taken"))
            } else {
                slots[r.id] = f
            }
        }
        var rest: [Request] = []
        for r in requests where r.fixed == nil {
            if let h = hints[r.id], usable.contains(h), used.insert(h).inserted {
                slots[r.id] = h
            } else {
                rest.append(r)
            }
        }
        let free = usable.filter { !used.contains($0) }
        var low = free.startIndex, high = free.endIndex
        let needed = rest.count
        for r in rest {
            guard low < high else {
                problems.append(.init(path: r.path, message: "no free PCI slot on \(bus): \(needed) devices need one, \(free.count) are free (0x\(hex2(usable.lowerBound))–0x\(hex2(usable.upperBound)) minus fixed slots); use fewer devices or machine.hotplugPorts"))
                break
            }
            if r.fromTop { high = free.index(before: high); slots[r.id] = free[high] }
            else { slots[r.id] = free[low]; low = free.index(after: low) }
        }
        return (slots, problems)
    }
}
