import Foundation
import QemuCtlTestSupport
import Testing

/// The Debian cloud guest (`make cloud-guest`), as `CloudGuestTests` of the library finds it.
private enum CachedCloudGuest {
    static let dir: String = {
        let base = ProcessInfo.processInfo.environment["QEMUCTL_CLOUD_GUEST_DIR"] ?? (Fixtures.repoRoot + "/.cache/cloud-guest")
        return base + "/current"
    }()
}

/// `ssh debian@127.0.0.1 -p PORT COMMAND` with `key`, no host key checks; status and output (both streams).
private func ssh(key: String, port: Int, _ command: String) async throws -> (status: Int32, out: String) {
    try await runTool("/usr/bin/ssh", ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                                       "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "-i", key, "-p", String(port),
                                       "debian@127.0.0.1", command])
}

/// The cloud-image workflow through the qemuctl command, on one booted guest: a manifest with
/// `spec.cloudInit` (user-data from a secret file, a fresh ssh key) and `spec.readiness: {guestAgent: true}`,
/// `apply --wait-ready`, ssh through the host forward (the hostname is the VM's name, the user-data ran),
/// `get`'s READY, `wait --for ready` from the record, the user-data kept out of argv, record and journal,
/// a cloud-init change planned as a restart with its reason, and a vCPU hot-add confirmed by the guest agent.
@Suite(.serialized, .timeLimit(.minutes(25)), .offPool) struct CloudGuestApplyTests {
    @Test func applyWaitsUntilTheCloudGuestIsReadyAndTheAgentConfirmsAHotAddedVCPU() async throws {
        let base = CachedCloudGuest.dir + "/disk.qcow2"
        guard FileManager.default.fileExists(atPath: base) else {
            Issue.record("the cloud guest is missing at \(CachedCloudGuest.dir): run `make cloud-guest` (scripts/make-cloud-guest.sh)")
            return
        }
        let w = try Workspace("cga")
        defer { w.cleanUp() }
        // The VM's own disk: a copy-on-write overlay of the shared base, made by the first apply.
        let root = w.dir.file("root.qcow2")
        let baseBefore = try FileManager.default.attributesOfItem(atPath: base)[.modificationDate] as? Date

        let key = w.dir.file("id_ed25519")
        #expect(try await runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cga", "-f", key]).0 == 0)
        let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // User-data from a secret file (0600): a token that must reach the guest and nothing else.
        let token = "cga-secret-\(UInt64.random(in: 1...UInt64.max))"
        let userData = w.dir.file("user-data")
        func writeUserData(_ token: String) throws {
            try "#cloud-config\nwrite_files:\n  - path: /etc/qemuctl-token\n    permissions: \"0644\"\n    content: \"\(token)\\n\"\n"
                .write(toFile: userData, atomically: true, encoding: .utf8)
            chmod(userData, 0o600)
        }
        try writeUserData(token)

        let name = "cga-\(Int.random(in: 100...999))"
        let port = Int.random(in: 30000..<60000)
        let cmdline = try String(contentsOfFile: CachedCloudGuest.dir + "/cmdline", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func manifest(cpus: Int, memory: String = "1GiB") -> String {
            """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: \(name)}
            spec:
              machine: {type: q35, accel: tcg}
              cpu: {model: max, count: \(cpus), maxCount: 2}
              memory: {size: \(memory), max: 2GiB, slots: 2}
              boot:
                kernel: \(CachedCloudGuest.dir)/vmlinuz
                initrd: \(CachedCloudGuest.dir)/initrd.img
                cmdline: \(cmdline)
              disks:
                - name: root
                  file: {path: \(root), format: qcow2}
                  create: {from: {path: \(base), format: qcow2}}
              serial: {log: true}
              rng: true
              guestAgent: true
              cloudInit:
                userData: {file: \(userData)}
                sshAuthorizedKeys: ["\(publicKey)"]
              readiness: {guestAgent: true}
              networks:
                - name: n0
                  user: {restrict: true, hostfwd: ["tcp:127.0.0.1:\(port)-:22"]}
            """
        }
        let vms = try w.manifest(name, manifest(cpus: 1))

        // apply --wait-ready: returns once the guest agent answers, and says after how long.
        let started = ContinuousClock.now
        let apply = try await w.qemuctl("apply", "-f", vms, "--timeout", "30", "--wait-ready", "--ready-timeout", "15m")
        let bootToReady = ContinuousClock.now - started
        #expect(apply.status == 0, "\(apply.out)\(apply.err)")
        #expect(apply.out.contains("cloud-init seed (instance-id iid-"), "\(apply.out)")
        #expect(apply.out.contains("\(name): ready (agent, after "), "\(apply.out)")
        print("cloud guest via qemuctl: apply --wait-ready took \(bootToReady) (boot to guest agent ready, TCG)")
        // The root disk is an overlay whose backing file is the base, declared with its format.
        let info = try await runTool("/usr/bin/qemu-img", ["info", "-U", "--output=json", root])
        #expect(info.0 == 0 && info.1.contains("\"backing-filename-format\": \"qcow2\""), "\(info.1)")
        print(apply.out.split(separator: "\n").filter { $0.contains("ready") || $0.contains("cloud-init") }.joined(separator: "\n"))

        // ssh with the seed's key: the hostname is the VM's name, and the user-data from the secret file ran.
        var login = try await ssh(key: key, port: port, "hostname; cat /etc/qemuctl-token")
        for _ in 0..<40 where login.status != 0 || !login.out.contains(token) {  // sshd or cloud-init's final stage may lag the agent
            try await Task.sleep(for: .seconds(3))
            login = try await ssh(key: key, port: port, "hostname; cat /etc/qemuctl-token")
        }
        print("cloud guest via qemuctl: ssh login with the token \(ContinuousClock.now - started) after apply started")
        #expect(login.status == 0, "\(login.out)")
        #expect(login.out == "\(name)\n\(token)\n", "\(login.out)")

        // describe asks the agent: the guest's OS and its address on the user network (once networkd
        // has its lease: look again for a while).
        var object: [String: Any] = [:]
        for _ in 0..<60 {
            let json = try await w.qemuctl("describe", name, "-o", "json")
            object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any] ?? [:]
            let interfaces = (object["guestAgent"] as? [String: Any])?["interfaces"] as? [[String: Any]] ?? []
            if interfaces.contains(where: { ($0["addresses"] as? [String] ?? []).contains("10.0.2.15/24") }) { break }
            try await Task.sleep(for: .seconds(2))
        }
        let guestInfo = try #require(object["guestAgent"] as? [String: Any], "\(object)")
        #expect(guestInfo["answered"] as? Bool == true, "\(guestInfo)")
        #expect((guestInfo["os"] as? String)?.contains("Debian") == true, "\(guestInfo)")
        let interfaces = guestInfo["interfaces"] as? [[String: Any]] ?? []
        #expect(interfaces.contains { ($0["addresses"] as? [String] ?? []).contains("10.0.2.15/24") }, "\(interfaces)")
        let describeText = try await w.qemuctl("describe", name)
        #expect(describeText.out.contains("Guest (agent):") && describeText.out.contains("OS: Debian"), "\(describeText.out)")
        #expect(describeText.out.contains("ReadinessProbePassed"), "\(describeText.out)")
        #expect(describeText.out.contains("backing"), "the overlay's chain: \(describeText.out)")

        // get: READY yes, and ready: true in JSON; wait --for ready takes the probe from the record.
        let get = try await w.qemuctl("get", name)
        #expect(get.status == 0, "\(get.err)")
        let header = get.out.split(separator: "\n").first.map(String.init) ?? ""
        let row = get.out.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
        #expect(header.split(separator: " ", omittingEmptySubsequences: true).prefix(3) == ["NAME", "STATE", "READY"], "\(get.out)")
        #expect(row.split(separator: " ", omittingEmptySubsequences: true).prefix(3) == [Substring(name), "running", "yes"], "\(get.out)")
        let json = try await w.qemuctl("get", name, "-o", "json")
        #expect(json.out.contains("\"ready\" : true") || json.out.contains("\"ready\": true") || json.out.contains("\"ready\":true"), "\(json.out)")
        // get -o wide asks the agent too: the guest's address on the user network and its OS; the
        // structured formats carry the same as ip and os.
        let wide = try await w.qemuctl("get", name, "-o", "wide")
        #expect(wide.status == 0, "\(wide.err)")
        let wideHeader = wide.out.split(separator: "\n").first.map { $0.split(separator: " ", omittingEmptySubsequences: true) } ?? []
        #expect(wideHeader.suffix(2) == ["IP", "OS"], "\(wide.out)")
        let wideRow = wide.out.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
        #expect(wideRow.contains(" 10.0.2.15 ") && wideRow.contains("Debian"), "\(wide.out)")
        let jsonRow = try #require((try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]])?.first)
        #expect(jsonRow["ip"] as? String == "10.0.2.15", "\(jsonRow)")
        #expect((jsonRow["os"] as? String)?.contains("Debian") == true, "\(jsonRow)")
        let wait = try await w.qemuctl("wait", name, "--for", "ready", "--timeout", "60")
        #expect(wait.status == 0, "\(wait.out)\(wait.err)")
        #expect(wait.out.hasPrefix("\(name): ready"), "\(wait.out)")

        // The user-data (a secret) is in the seed only: not in QEMU's argv, the record or the journal.
        let pid = try #require(w.pid(name))
        let argv = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        #expect(!argv.contains(token))
        #expect(argv.contains("cidata.iso"), "\(argv)")
        let stateFiles = try FileManager.default.subpathsOfDirectory(atPath: w.state).filter { !$0.hasSuffix(".iso") && !$0.hasSuffix(".sock") }
        for file in stateFiles {
            guard let text = try? String(contentsOfFile: w.state + "/" + file, encoding: .utf8) else { continue }
            #expect(!text.contains(token), "\(file) holds the user-data")
        }
        // The record keeps the instance-id the seed was made with: iid- and the VM's uuid.
        let record = try String(contentsOfFile: "\(w.state)/\(name)/record.json", encoding: .utf8)
        #expect(record.contains("\"cloudInitInstanceID\":\"iid-") || record.contains("\"cloudInitInstanceID\" : \"iid-"), "\(record)")
        let seedMode = try FileManager.default.attributesOfItem(atPath: "\(w.state)/\(name)/cidata.iso")[.posixPermissions] as? Int
        #expect(seedMode == 0o600)

        // A cloud-init change is planned as a restart with its reason; the plan shows no user-data.
        try writeUserData("cga-changed-\(UInt64.random(in: 1...UInt64.max))")
        let plan = try await w.qemuctl("plan", "-f", vms)
        #expect(plan.out.contains("spec.cloudInit.userData"), "\(plan.out)")
        #expect(plan.out.contains("cloud-init runs at first boot; a new instance-id re-runs it"), "\(plan.out)")
        #expect(!plan.out.contains("cga-changed-"), "\(plan.out)")
        try writeUserData(token)

        // Raise cpu.count within maxCount and memory within max: hot-plugged, and the guest agent confirms
        // both vCPUs and the new memory blocks online.
        try w.manifest(name, manifest(cpus: 2, memory: "1536MiB"))
        let hot = try await w.qemuctl("apply", "-f", vms, "--timeout", "30")
        #expect(hot.status == 0, "\(hot.out)\(hot.err)")
        #expect(hot.out.contains("~ spec.cpu.count 2 (vCPUs hot-plugged, read back; 2 vCPUs online in the guest (guest agent"), "\(hot.out)")
        #expect(hot.out.contains("~ spec.memory.size 1536MiB (memory hot-plugged, read back; 1536MiB in "), "\(hot.out)")
        #expect(hot.out.contains(" memory blocks online in the guest (guest agent"), "\(hot.out)")
        print(hot.out.split(separator: "\n").filter { $0.contains("spec.cpu.count") || $0.contains("spec.memory.size") }.joined(separator: "\n"))
        let meminfo = try await ssh(key: key, port: port, "awk '/^MemTotal/ {print $2}' /proc/meminfo")
        let totalKiB = Int(meminfo.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(totalKiB > 1_300_000, "MemTotal \(meminfo.out)")
        let cpuinfo = try await ssh(key: key, port: port, "grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online")
        #expect(cpuinfo.out == "2\n0-1\n", "\(cpuinfo.out)")
        // The guest wrote to its overlay only: the shared base was never written.
        #expect(try FileManager.default.attributesOfItem(atPath: base)[.modificationDate] as? Date == baseBefore)
    }
}
