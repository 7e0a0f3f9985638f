import Manifest
import Testing

/// `spec.cloudInit` and `spec.readiness`: what they decode to, and each bad input's position and message.
@Suite("cloudInit and readiness")
struct CloudInitReadinessTests {
    @Test func cloudInitDecodesEverySourceKind() throws {
        let set = load(manifest(spec: """
              cloudInit:
                userData: {inline: "#cloud-config\\npackages: [htop]\\n"}
                sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nza me@host"]
                networkConfig: {file: net.yaml}
                metaData: {zone: eu-1, cloud_name: lab}
                instanceID: web-2
            """))
        #expect(set.diagnostics.filter { $0.severity == .error }.isEmpty, "\(lines(set))")
        let c = try #require(set.virtualMachines.first?.spec.cloudInit)
        #expect(c.userData == .inline("#cloud-config\npackages: [htop]\n"))
        #expect(c.networkConfig == .secret(.file("/base/net.yaml")))
        #expect(c.sshAuthorizedKeys == ["ssh-ed25519 AAAAC3Nza me@host"])
        #expect(c.metaData == ["zone": "eu-1", "cloud_name": "lab"])
        #expect(c.effectiveInstanceID(uuid: "u") == "web-2")
        var plain = VirtualMachineSpec.CloudInit()
        plain.userData = .secret(.env("USER_DATA"))
        #expect(plain.effectiveInstanceID(uuid: "1234") == "iid-1234")
    }

    @Test func userDataTakesExactlyOneSource() {
        let set = load(manifest(spec: "  cloudInit:\n    userData: {inline: x, env: Y}\n"))
        #expect(set.diagnostics.contains { $0.severity == .error && $0.location.line == 7 }, "\(lines(set))")
    }

    @Test func reservedMetaDataKeysAndTheSeedDriveName() {
        let bad = load(manifest(spec: "  cloudInit:\n    metaData: {instance-id: x}\n"))
        expectSingleError(bad, 7, 15, "'instance-id' cannot be a key of 'spec.cloudInit.metaData'",
                          hint: "set 'spec.cloudInit.instanceID' instead")
        let clash = load(manifest(spec: "  cdroms: [{name: cidata}]\n  cloudInit: {sshAuthorizedKeys: [\"ssh-ed25519 AAAA k\"]}\n"))
        expectSingleError(clash, 7, 14, "a VM with 'spec.cloudInit' cannot have a CD-ROM named 'cidata'",
                          hint: "the cloud-init seed's CD-ROM is named cidata: rename the CD-ROM")
        let notAKey = load(manifest(spec: "  cloudInit: {sshAuthorizedKeys: [\"ssh-ed25519 AAAA k\", justoneword]}\n"))
        expectSingleError(notAKey, 6, 57, "'spec.cloudInit.sshAuthorizedKeys[1]' is not a public key line",
                          hint: "write the content of a .pub file: TYPE BASE64 [COMMENT]")
    }

    @Test func readinessProbesAndWhatEachNeeds() throws {
        let agent = load(manifest(spec: "  guestAgent: true\n  readiness: {guestAgent: true}\n"))
        #expect(agent.virtualMachines.first?.spec.readiness == .guestAgent, "\(lines(agent))")
        let noAgent = load(manifest(spec: "  readiness: {guestAgent: true}\n"))
        expectSingleError(noAgent, 6, 15, "'spec.readiness.guestAgent' needs 'spec.guestAgent: true'",
                          hint: "add 'guestAgent: true' to spec (and qemu-guest-agent to the guest)")

        let forwarded = """
              networks:
                - name: n0
                  user: {hostfwd: ["tcp:127.0.0.1:2222-:22", "udp::5353-:53"]}

            """
        let tcp = load(manifest(spec: forwarded + "  readiness: {tcpPort: 22}\n"))
        #expect(tcp.virtualMachines.first?.spec.readiness == .tcpPort(22), "\(lines(tcp))")
        let udpOnly = load(manifest(spec: forwarded + "  readiness: {tcpPort: 53}\n"))
        expectSingleError(udpOnly, 9, 24, "'spec.readiness.tcpPort: 53' is not the guest port of a tcp hostfwd",
                          hint: "add 'hostfwd: [tcp:127.0.0.1:HOSTPORT-:53]' to a user network (forwarded guest ports: 22)")

        let serial = load(manifest(spec: "  serial: {log: true}\n  readiness: {serialMatch: \"login: $\"}\n"))
        #expect(serial.virtualMachines.first?.spec.readiness == .serialMatch("login: $"), "\(lines(serial))")
        let noLog = load(manifest(spec: "  readiness: {serialMatch: \"login:\"}\n"))
        expectSingleError(noLog, 6, 15, "'spec.readiness.serialMatch' needs 'spec.serial.log: true'", hint: "the probe reads the serial log")
        let badRegex = load(manifest(spec: "  serial: {log: true}\n  readiness: {serialMatch: \"(\"}\n"))
        #expect(lines(badRegex).contains { $0.hasPrefix("t.yaml:7:28: error: 'spec.readiness.serialMatch' is not a valid regular expression") },
                "\(lines(badRegex))")
        let two = load(manifest(spec: "  guestAgent: true\n  serial: {log: true}\n  readiness: {guestAgent: true, serialMatch: x}\n"))
        #expect(two.diagnostics.contains { $0.severity == .error }, "\(lines(two))")
        let off = load(manifest(spec: "  guestAgent: true\n  readiness: {guestAgent: false}\n"))
        expectSingleError(off, 7, 27, "'spec.readiness.guestAgent: false' names no probe",
                          hint: "write 'guestAgent: true', or use tcpPort or serialMatch")
    }
}
