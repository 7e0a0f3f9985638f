import Foundation
import Manifest
import Testing
@testable import Reconcile

// MARK: - Fingerprints

@Suite("State fingerprint")
struct FingerprintTests {
    static let web = PlanCase.web

    @Test func sha256KnownAnswers() {
        func hex(_ s: String) -> String {
            var h = SHA256()
            h.update(Array(s.utf8))
            return h.finalize().map { String(format: "%02x", $0) }.joined()
        }
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex(String(repeating: "a", count: 1000)).hasPrefix("41edece42d63e8d9bf515a9ba6932e1c"))
    }

    @Test func stableAndOrderIndependent() {
        let a = running(Self.web)
        let b = running(vm("db"))
        #expect(StateFingerprint(of: [a, b]) == StateFingerprint(of: [b, a]))
        #expect(StateFingerprint(of: [a, b]) == StateFingerprint(of: [running(Self.web), running(vm("db"))]))
        #expect(StateFingerprint(of: [a]).rawValue.hasPrefix("sha256:"))
        #expect(StateFingerprint(of: [a]).rawValue.count == 7 + 64)
    }

    @Test func deviceListOrderDoesNotMatter() {
        let launched = vm("web") { $0.disks.append(disk("data")) }
        let a = running(launched)
        let b = running(launched) { $0.disks!.reverse() }
        #expect(StateFingerprint(of: [a]) == StateFingerprint(of: [b]))
    }

    @Test func labelOrderDoesNotMatter() {
        // Dictionaries iterate in a per-process random order; build two with different histories.
        var l1: [String: String] = [:]
        for i in 0..<50 { l1["k\(i)"] = "v" }
        var l2: [String: String] = [:]
        for i in (0..<50).reversed() { l2["k\(i)"] = "v" }
        #expect(StateFingerprint(of: [running(vm("web", labels: l1))]) == StateFingerprint(of: [running(vm("web", labels: l2))]))
    }

    /// Each change of the actual state gives a different fingerprint, so a saved plan is refused.
    static let changedStates: [(String, ObservedVM)] = [
        ("throttle changed by hand", running(web) { $0.disks![0].throttle!.bps = 50 * mib }),
        ("paused by hand", running(web) { $0.runStatus = .paused }),
        ("link down", running(web) { $0.nics![0].link = .down }),
        ("media inserted", running(web) { $0.cdroms![0].media = "/isos/a.iso" }),
        ("a port used", running(web, ports: 3)),
        ("gone", gone(web)),
        ("restart pending", running(web, restartPending: true)),
        ("password set again", running(web, secrets: ["spec.display.vnc.passwordFrom": SecretMarker("gen-2")])),
        ("relaunched with another uuid", {
            var o = running(web)
            o.record!.uuid = "00000000-0000-0000-0000-000000000000"
            return o
        }()),
    ]

    @Test(arguments: changedStates.map(\.0))
    func changesWhenTheActualStateChanges(_ label: String) {
        let changed = Self.changedStates.first { $0.0 == label }!.1
        let before = plan(desired: [Self.web], actual: [running(Self.web)], options: PlanOptions())
        let after = plan(desired: [Self.web], actual: [changed], options: PlanOptions())
        #expect(before.actualFingerprint != after.actualFingerprint)
        #expect(after.actualFingerprint == StateFingerprint(of: [changed]))
    }

    @Test func aPlanMadeWithoutAFingerprintIsNeverCurrent() {
        let actual = [running(Self.web)]
        let with = plan(desired: [Self.web], actual: actual, options: PlanOptions())
        let without = plan(desired: [Self.web], actual: actual, options: PlanOptions(fingerprint: false))
        #expect(with.isCurrent(for: actual))
        #expect(without.actualFingerprint == .none)
        #expect(!without.isCurrent(for: actual))
        // Only the fingerprint differs: the same actions and changes.
        #expect(without.vms == with.vms)
    }

    @Test func aVMAppearingChangesIt() {
        #expect(StateFingerprint(of: [running(Self.web)]) != StateFingerprint(of: [running(Self.web), running(vm("x"))]))
        #expect(StateFingerprint(of: []) != StateFingerprint(of: [running(Self.web)]))
    }
}

// MARK: - Plan as JSON, and secrets

@Suite("Plan as data")
struct PlanDataTests {
    static func json(_ plan: Plan) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(plan), as: UTF8.self)
    }

    @Test func roundTripsThroughJSON() throws {
        let p = RenderTests.mixedPlan
        let data = try JSONEncoder().encode(p)
        let back = try JSONDecoder().decode(Plan.self, from: data)
        #expect(back == p)
        #expect(back.summary == p.summary)
        #expect(back.formatVersion == Plan.currentFormatVersion)
    }

    @Test func jsonUsesStableWords() throws {
        let text = try Self.json(RenderTests.mixedPlan)
        #expect(text.contains("\"action\":\"restart\""))
        #expect(text.contains("\"restart\":\"never\""))
        #expect(text.contains("\"actualFingerprint\":\"sha256:"))
        #expect(text.contains("\"changeClass\":\"live\""))
        #expect(text.contains("\"path\":\"spec.disks[root].throttle.bps\""))
    }

    /// A canary in every place a secret could leak from: the markers of the record and of
    /// the manifest. Neither the rendered text nor the JSON plan may contain it.
    @Test func secretsNeverAppearInOutputOrPlan() throws {
        let canary = "CANARY-5f3a9c"
        let path = "spec.display.vnc.passwordFrom"
        let spicePath = "spec.display.spice.passwordFrom"
        let launched = vm("web") {
            $0.display.spice = .init()
            $0.display.spice!.passwordFrom = .env("SPICE_PW")
        }
        let desired = vm("web") {
            $0.display.vnc!.passwordFrom = .file("/secrets/vnc-new")
            $0.display.spice = .init()
            $0.display.spice!.passwordFrom = .env("SPICE_PW")
        }
        let observed = running(
            launched, secrets: [path: SecretMarker("old-\(canary)"), spicePath: SecretMarker("old-\(canary)")])
        for restart in PlanOptions.RestartPolicy.allCases {
            let options = PlanOptions(
                restart: restart,
                secretMarkers: ["web": [path: SecretMarker("new-\(canary)"), spicePath: SecretMarker("new-\(canary)")]])
            for p in [
                plan(desired: [desired], actual: [observed], options: options),
                plan(desired: [desired], actual: [], options: options),
            ] {
                #expect(!p.vms.isEmpty)
                let text = PlanRenderer(showUnchanged: true).render(p)
                #expect(!text.contains(canary))
                #expect(!text.contains("/secrets/vnc"), "secret references are not printed either")
                #expect(!text.contains("SPICE_PW"))
                #expect(!(try Self.json(p)).contains(canary))
                for c in p.vms.flatMap(\.changes) where c.path.hasSuffix("passwordFrom") {
                    #expect(c.sensitive)
                    #expect([c.old, c.new].allSatisfy { $0 == nil || $0 == "(sensitive)" })
                }
            }
        }
        #expect("\(SecretMarker(canary))" == "(sensitive)")
        let changed = plan(desired: [desired], actual: [observed], options: PlanOptions(
            secretMarkers: ["web": [path: SecretMarker("new-\(canary)"), spicePath: SecretMarker("new-\(canary)")]]))
        #expect(changed["web"]!.changes.map(\.path) == [path, spicePath])
    }
}

// MARK: - Stale plans and secret paths

@Suite("Applying a saved plan")
struct SavedPlanTests {
    @Test func aPlanIsCurrentUntilTheStateChanges() throws {
        let actual = [running(PlanCase.web) { $0.disks![0].throttle!.bps = 50 * mib }]
        let saved = plan(desired: [PlanCase.web], actual: actual, options: PlanOptions())
        let reloaded = try JSONDecoder().decode(Plan.self, from: JSONEncoder().encode(saved))
        #expect(reloaded.isCurrent(for: actual))
        #expect(reloaded.isCurrent(for: actual.reversed()))
        // Someone repaired the throttle by hand in the meantime: the plan is stale.
        #expect(!reloaded.isCurrent(for: [running(PlanCase.web)]))
        var future = reloaded
        future.formatVersion += 1
        #expect(!future.isCurrent(for: actual))
    }

    @Test func secretReferencesUseThePlannersPaths() {
        var s = baseSpec()
        s.display.spice = .init()
        s.display.spice!.passwordFrom = .env("SPICE_PW")
        s.disks.append(.init(name: "ceph", backend: .rbd(.init(pool: "p", image: "i", keyFrom: .file("/k")))))
        #expect(s.secretReferences.map(\.path) == [
            "spec.disks[ceph].rbd.keyFrom", "spec.display.vnc.passwordFrom", "spec.display.spice.passwordFrom",
        ])
        let flat = FlatSpec(labels: [:], spec: s, secrets: [:]).leavesByPath
        for (path, _) in s.secretReferences { #expect(flat[path]?.secret != nil, "\(path)") }
    }
}
