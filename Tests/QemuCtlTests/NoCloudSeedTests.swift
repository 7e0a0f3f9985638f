import Foundation
@testable import QemuCtl
import QemuCtlTestSupport
import Testing

/// Runs a tool and returns its exit status and standard output.
func runCommand(_ path: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite(.timeLimit(.minutes(1)), .offPool) struct NoCloudSeedTests {
    let key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKqfakekeyone test@one"
    let key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKqfakekeytwo test@two"

    @Test func metaDataHoldsTheInstanceIDAndHostnameQuoted() throws {
        let seed = NoCloudSeed(instanceID: "web-1: {x}", hostname: "web-1", metaDataExtras: ["zone": "a", "cloud-name": "qemuctl"])
        #expect(try seed.metaData() == "instance-id: \"web-1: {x}\"\nlocal-hostname: \"web-1\"\ncloud-name: \"qemuctl\"\nzone: \"a\"\n")
        for bad in ["", "a\nb"] {
            #expect(throws: CloudInitError.self) { try NoCloudSeed(instanceID: bad, hostname: "h").metaData() }
        }
        for bad in ["-web", "web_1", "a..b", "x y", String(repeating: "a", count: 64)] {
            #expect(throws: CloudInitError.self) { try NoCloudSeed(instanceID: "i", hostname: bad).metaData() }
        }
        #expect(throws: CloudInitError.self) { try NoCloudSeed(instanceID: "i", hostname: "h", metaDataExtras: ["instance-id": "x"]).metaData() }
        #expect(throws: CloudInitError.self) { try NoCloudSeed(instanceID: "i", hostname: "h", metaDataExtras: ["a b": "x"]).metaData() }
    }

    @Test func keysAloneMakeACloudConfig() throws {
        let seed = NoCloudSeed(instanceID: "i", hostname: "h", sshAuthorizedKeys: [key1, key2])
        #expect(try seed.mergedUserData() == "#cloud-config\nssh_authorized_keys:\n  - \"\(key1)\"\n  - \"\(key2)\"\n")
        #expect(try NoCloudSeed(instanceID: "i", hostname: "h").mergedUserData() == "#cloud-config\n")
    }

    @Test func keysAreAddedToCloudConfigUserDataAsAnAppendingPart() throws {
        let user = "#cloud-config\nssh_authorized_keys:\n  - \(key2)\nruncmd:\n  - [touch, /run/x]\n"
        let merged = try NoCloudSeed(instanceID: "i", hostname: "h", userData: user, sshAuthorizedKeys: [key1]).mergedUserData()
        #expect(merged.hasPrefix("Content-Type: multipart/mixed; boundary=\"==qemuctl-cloud-init==\"\n"))
        // The user's document byte for byte, then the keys part that appends to its lists.
        #expect(merged.contains("filename=\"user-data\"\n\n" + user + "--==qemuctl-cloud-init==\n"))
        #expect(merged.contains("Merge-Type: list(append)+dict(recurse_array)+str()\n\n#cloud-config\nssh_authorized_keys:\n  - \"\(key1)\"\n"))
        #expect(merged.hasSuffix("--==qemuctl-cloud-init==--\n"))
        // A boundary the user's text contains is not used.
        let tricky = "#cloud-config\n# ==qemuctl-cloud-init==\n"
        let other = try NoCloudSeed(instanceID: "i", hostname: "h", userData: tricky, sshAuthorizedKeys: [key1]).mergedUserData()
        #expect(other.contains("boundary=\"==qemuctl-cloud-init-1==\""))
        // Without keys to add the user's text is unchanged, whatever its kind.
        #expect(try NoCloudSeed(instanceID: "i", hostname: "h", userData: "#!/bin/sh\necho hi\n").mergedUserData() == "#!/bin/sh\necho hi\n")
        #expect(NoCloudSeed.isCloudConfig("#cloud-config \r\nusers: []"))
        #expect(!NoCloudSeed.isCloudConfig("#cloud-configx\n"))
    }

    @Test func keysAreNotAddedToUserDataThatIsNotCloudConfig() throws {
        let seed = NoCloudSeed(instanceID: "i", hostname: "h", userData: "#!/bin/sh\necho hi\n", sshAuthorizedKeys: [key1])
        let error = #expect(throws: CloudInitError.self) { try seed.mergedUserData() }
        #expect(error?.description.contains("not #cloud-config (it starts with '#!/bin/sh')") == true)
        let badKey = NoCloudSeed(instanceID: "i", hostname: "h", sshAuthorizedKeys: ["ssh-ed25519 AAAA\nruncmd: [reboot]"])
        #expect(throws: CloudInitError.self) { try badKey.mergedUserData() }
    }

    @Test func theDescriptionNeverShowsTheUserData() {
        let seed = NoCloudSeed(instanceID: "i", hostname: "h", userData: "#cloud-config\npassword: hunter2\n")
        #expect(!"\(seed)".contains("hunter2"))
        #expect("\(seed)".contains("redacted"))
    }

    @Test func theISOIsLabelledCidataAndHoldsTheFilesReadBack() throws {
        let dir = try TempDir("seed")
        defer { dir.remove() }
        let user = "#cloud-config\nchpasswd: {expire: false}\npassword: s3cr3t-pw\n"
        let network = "version: 2\nethernets:\n  nic0:\n    match: {name: \"en*\"}\n    dhcp4: true\n"
        let seed = NoCloudSeed(instanceID: "vm-7", hostname: "vm", userData: user, sshAuthorizedKeys: [key1], networkConfig: network)
        // A symlink planted at the destination is replaced, never followed.
        let victim = dir.file("victim")
        try "keep".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir.file("cidata.iso"), withDestinationPath: victim)
        try seed.writeISO(to: dir.file("cidata.iso"))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep")
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.file("cidata.iso"))
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // No work directory is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["cidata.iso", "victim"])

        // The volume id, and the files, read back by xorriso without mounting.
        let pvd = try runCommand("/usr/bin/xorriso", ["-indev", dir.file("cidata.iso"), "-pvd_info"])
        #expect(pvd.status == 0, "\(pvd.err)")
        #expect((pvd.out + pvd.err).contains("Volume Id    : cidata"), "\(pvd.out)\(pvd.err)")
        let out = dir.file("out")
        let extract = try runCommand("/usr/bin/osirrox", ["-indev", dir.file("cidata.iso"), "-extract", "/", out])
        #expect(extract.status == 0, "\(extract.err)")
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(names == ["meta-data", "network-config", "user-data"])
        let expected = try seed.files()
        for file in expected {
            let back = try Data(contentsOf: URL(fileURLWithPath: out + "/" + file.name))
            #expect(Array(back) == file.contents, "\(file.name) differs")
        }
        #expect(try String(contentsOfFile: out + "/user-data", encoding: .utf8).contains("password: s3cr3t-pw"))

        // Writing again replaces the volume (a new instance id).
        var second = seed
        second.instanceID = "vm-8"
        try second.writeISO(to: dir.file("cidata.iso"))
        let out2 = dir.file("out2")
        #expect(try runCommand("/usr/bin/osirrox", ["-indev", dir.file("cidata.iso"), "-extract", "/meta-data", out2]).status == 0)
        #expect(try String(contentsOfFile: out2, encoding: .utf8).hasPrefix("instance-id: \"vm-8\"\n"))
    }

    @Test func aMissingXorrisoIsAClearError() throws {
        let dir = try TempDir("seed")
        defer { dir.remove() }
        let error = #expect(throws: CloudInitError.self) {
            try NoCloudSeed(instanceID: "i", hostname: "h").writeISO(to: dir.file("s.iso"), xorriso: dir.file("no-xorriso"))
        }
        #expect(error?.description.contains("cannot run") == true)
    }

    @Test func xorrisoIsGivenPathsNeverTheUserData() throws {
        let dir = try TempDir("seed")
        defer { dir.remove() }
        // A stand-in xorriso that records its argv and makes an empty volume.
        let fake = try dir.script("xorriso", """
        #!/bin/sh
        printf '%s\\n' "$@" > \(dir.file("argv"))
        while [ $# -gt 0 ]; do [ "$1" = -output ] && : > "$2"; shift; done
        """)
        let seed = NoCloudSeed(instanceID: "i", hostname: "h", userData: "#cloud-config\npassword: s3cr3t-pw\n", sshAuthorizedKeys: [key1])
        try seed.writeISO(to: dir.file("s.iso"), xorriso: fake)
        let argv = try String(contentsOfFile: dir.file("argv"), encoding: .utf8)
        #expect(argv.contains("-volid\ncidata\n"), "\(argv)")
        #expect(!argv.contains("s3cr3t"), "\(argv)")
        #expect(!argv.contains("AAAAC3"), "\(argv)")
        #expect(FileManager.default.fileExists(atPath: dir.file("s.iso")))
    }

    @Test func aWriterThatDiedLeavesNothingThatBlocksTheNextSeed() throws {
        let dir = try TempDir("seed")
        defer { dir.remove() }
        // A dead writer's work directory (a pid that does not run) is swept; a running one's is left.
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = dir.file(".cidata.qemuctl.tmp.\(dead).00000000deadbeef")
        let live = dir.file(".cidata.qemuctl.tmp.1.00000000cafef00d")  // pid 1 always runs
        for d in [stale, live] {
            try FileManager.default.createDirectory(atPath: d + "/content", withIntermediateDirectories: true)
            try "#cloud-config\n".write(toFile: d + "/content/user-data", atomically: false, encoding: .utf8)
        }
        try NoCloudSeed(instanceID: "i", hostname: "h").writeISO(to: dir.file("cidata.iso"))
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(FileManager.default.fileExists(atPath: dir.file("cidata.iso")))
        // The work directory of this writer is gone too: only the volume and the live one remain.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == [".cidata.qemuctl.tmp.1.00000000cafef00d", "cidata.iso"], "\(left)")
    }
}
