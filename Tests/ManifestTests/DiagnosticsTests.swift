import Manifest
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The bad inputs of issue #4, each with the exact position and message it must produce.
@Suite("Diagnostics")
struct DiagnosticsTests {
    @Test func syntaxErrorAtLibYAMLsPosition() {
        let set = load(manifest(spec: "  cpu: {count: 2\n  memory: {size: 1GiB}\n"))
        expectSingleError(set, 7, 9, "invalid YAML: did not find expected ',' or '}'",
                          hint: "while parsing a flow mapping started at line 6, column 8")
        #expect(set.virtualMachines.isEmpty)
    }

    @Test func wrongKindIsReportedAloneBeforeAnythingElse() {
        let set = load("apiVersion: qemuctl/v1\nkind: Pod\nspec: {bogus: 1}\n")
        expectSingleError(set, 2, 7, "unsupported kind 'Pod'", hint: "expected 'kind: VirtualMachine'")
    }

    @Test func wrongAPIVersion() {
        let set = load("apiVersion: qemuctl/v2\nkind: VirtualMachine\n")
        expectSingleError(set, 1, 13, "unsupported apiVersion 'qemuctl/v2'")
    }

    @Test func missingAPIVersion() {
        let set = load("kind: VirtualMachine\nmetadata: {name: a}\n")
        expectSingleError(set, 1, 1,
            "missing 'apiVersion'; every manifest starts with 'apiVersion: qemuctl/v1' and 'kind: VirtualMachine'")
    }

    @Test func typoKeyGetsDidYouMean() {
        let set = load(manifest(spec: "  memroy: {size: 1GiB}\n"))
        expectSingleError(set, 6, 3, "unknown key 'memroy' in 'spec'", hint: "did you mean 'memory'?")
    }

    @Test func typoKeyDeepInsideADisk() {
        let set = load(manifest(spec: """
              disks:
                - name: root
                  file: {path: a.img, format: raw}
                  throtle: {bps: 1MiB}

            """))
        expectSingleError(set, 9, 7, "unknown key 'throtle' in 'spec.disks[0]'", hint: "did you mean 'throttle'?")
    }

    @Test func rawQEMUArgumentsAreRefusedWithTheReason() {
        let set = load(manifest(spec: "  cpu: {count: 2}\n  extraArgs: [\"-device\", \"pvpanic\"]\n"))
        expectSingleError(set, 7, 3, "'spec.extraArgs' is not allowed: raw QEMU arguments cannot be set from a manifest",
                          hint: "no value in a manifest may add a QEMU option: raw arguments could open host files, "
                              + "devices or sockets and run programs, bypassing every check qemuctl makes; "
                              + "use the typed fields ('qemuctl schema' lists them)")
        #expect(set.hasErrors)
        // Not a field anywhere: not in the table, not in the schema, not in the docs.
        #expect(FieldTable.field(at: "spec.extraArgs") == nil)
        #expect(!FieldTable.all.contains { $0.path.lowercased().contains("args") })
        #expect(!ManifestSchema.jsonSchema().contains("extraArgs"))
        #expect(!ManifestSchema.markdownReference().contains("extraArgs"))
    }

    @Test func rawQEMUArgumentsAreRefusedInNestedMappingsToo() {
        let set = load(manifest(spec: "  disks:\n    - name: a\n      file: {path: a.img, format: raw}\n      qemuArgs: [x]\n"))
        expectSingleError(set, 9, 7, "'spec.disks[0].qemuArgs' is not allowed: raw QEMU arguments cannot be set from a manifest")
    }

    @Test func unknownKeyWithoutCloseMatchListsTheAllowedKeys() {
        let set = load(manifest(spec: "  memory: {zzz: 1}\n"))
        expectSingleError(set, 6, 12, "unknown key 'zzz' in 'spec.memory'",
                          hint: "allowed keys in 'spec.memory': size, max, slots, backend, path, share, prealloc, lock")
    }

    @Test func duplicateKeyIsReportedAtTheSecondKey() {
        let set = load(manifest(spec: "  cpu:\n    count: 2\n    count: 3\n"))
        expectSingleError(set, 8, 5, "duplicate key 'count'", hint: "first defined at line 7, column 5")
    }

    @Test func duplicateKeysAreFoundAmongLongKeysWithACommonPrefix() {
        let set = load("""
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata:
              name: vm1
              labels:
                example.com/team-a: x
                example.com/team-b: y
                example.com/team-a: z
            spec: {}

            """)
        expectSingleError(set, 8, 5, "duplicate key 'example.com/team-a'", hint: "first defined at line 6, column 5")
    }

    @Test func duplicateKeysDoNotHideLaterProblems() {
        let set = load(manifest(spec: "  cpu: {count: 2, count: 3}\n  memroy: {}\n"))
        #expect(lines(set) == [
            "t.yaml:6:19: error: duplicate key 'count' (first defined at line 6, column 9)",
            "t.yaml:7:3: error: unknown key 'memroy' in 'spec' (did you mean 'memory'?)",
        ])
    }

    @Test(arguments: ["on", "off", "yes", "no", "On", "YES"])
    func yaml11BooleansAreStringsSoRunStateNamesItsValues(_ word: String) {
        let set = load(manifest(spec: "  runState: \(word)\n"))
        expectSingleError(set, 6, 13, "the string '\(word)' is not a valid 'spec.runState'",
                          hint: "allowed values: running, paused, stopped; YAML 1.2 reads '\(word)' as a plain string")
    }

    @Test func yaml11BooleanForABooleanField() {
        let set = load(manifest(spec: "  guestAgent: yes\n"))
        expectSingleError(set, 6, 15, "'spec.guestAgent' must be true or false, not the string 'yes'",
                          hint: "YAML 1.2 reads 'yes' as a string, not a boolean; write true or false")
    }

    @Test(arguments: [
        ("-1G", "'spec.memory.size' must be a positive size, not '-1G'"),
        ("0MiB", "'spec.memory.size' must be a positive size, not '0MiB'"),
        ("100", "'spec.memory.size' needs a unit: '100'"),
        ("1MB", "'spec.memory.size' has an unknown unit 'MB' in '1MB'"),
        ("17TiB", "'spec.memory.size' is '17TiB', above the maximum of 16TiB"),
        ("99999999999999999999G", "'spec.memory.size' is too large: '99999999999999999999G'"),
        ("512K", "'spec.memory.size' is '512K', below the minimum of 1MiB"),
        ("1.3333333B", "'spec.memory.size' is not a whole number of bytes: '1.3333333B'"),
        ("lots", "'spec.memory.size' is not a size: 'lots'"),
    ])
    func negativeOrAbsurdSizes(_ size: String, _ message: String) {
        let set = load(manifest(spec: "  memory: {size: \(size)}\n"))
        expectSingleError(set, 6, 18, message)
        #expect(set.diagnostics.first?.hint?.contains("MiB") == true)
    }

    @Test(arguments: ["web/1", "a,b", "..", "a..b", "Web", "-web", "web-", "a\\tb", String(repeating: "a", count: 64)])
    func hostileVMNamesAreRefused(_ name: String) {
        let set = load(manifest(name: "\"\(name)\""))
        let errors = set.diagnostics.filter { $0.severity == .error }
        #expect(errors.count == 1, "\(lines(set))")
        #expect(errors.first?.location.line == 4 && errors.first?.location.column == 9)
        #expect(errors.first?.message.hasPrefix("'metadata.name'") == true || errors.first?.message.hasPrefix("invalid 'metadata.name'") == true,
                "\(lines(set))")
        #expect(set.virtualMachines.isEmpty)
    }

    @Test func controlCharacterInANameIsNamedExplicitly() {
        let set = load(manifest(name: "\"web\\u0007\""))
        expectSingleError(set, 4, 9, "'metadata.name' contains a control character or newline: 'web\\x07'")
    }

    @Test func hostileDiskAndNICNames() {
        let set = load(manifest(spec: """
              disks:
                - name: ../root
                  file: {path: a.img, format: raw}
              networks:
                - name: "net,0"
                  user: {}

            """))
        #expect(lines(set).count == 2)
        #expect(set.diagnostics.map(\.location.line) == [7, 10])
    }

    @Test func newlineInAPathIsRefused() {
        let set = load(manifest(spec: "  boot: {kernel: \"vmlinuz\\n-append evil\"}\n"))
        expectSingleError(set, 6, 18, "'spec.boot.kernel' contains a control character or newline: 'vmlinuz\\n-append evil'",
                          hint: "values that reach QEMU may not contain control characters")
    }

    @Test func newlineInACommandLineAndAHostForward() {
        let set = load(manifest(spec: """
              boot: {kernel: /k, cmdline: "quiet\\rx"}
              networks:
                - name: n0
                  user: {hostfwd: ["tcp::2222-:22\\n"]}

            """))
        #expect(set.diagnostics.map(\.location.line) == [6, 9], "\(lines(set))")
        #expect(set.diagnostics.allSatisfy { $0.message.contains("control character") })
    }

    @Test func twoBackendsInOneDisk() {
        let set = load(manifest(spec: """
              disks:
                - name: root
                  file: {path: a.img, format: raw}
                  nbd: {unix: /run/nbd.sock}

            """))
        expectSingleError(set, 9, 7,
            "'spec.disks[0]' has more than one of 'file', 'nbd', 'rbd' or 'iscsi': 'nbd' conflicts with 'file'")
    }

    @Test func noBackendInANIC() {
        let set = load(manifest(spec: "  networks:\n    - name: n0\n      model: e1000\n"))
        expectSingleError(set, 7, 7,
            "'spec.networks[0]' needs exactly one of 'user', 'tap', 'bridge', 'socket', 'stream' or 'vde'")
    }

    @Test func inlinePasswordIsRefusedWithPasswordFromHint() {
        let set = load(manifest(spec: "  display:\n    vnc: {password: hunter2}\n"))
        expectSingleError(set, 7, 11, "inline secret 'password' is not allowed in 'spec.display.vnc'",
                          hint: "use passwordFrom: {file: PATH} or passwordFrom: {env: NAME}; secrets are references, never values")
    }

    @Test func secretReferenceNeedsExactlyOneSource() {
        let set = load(manifest(spec: "  display:\n    vnc: {passwordFrom: {file: /s, env: VNC}}\n"))
        expectSingleError(set, 7, 36,
            "'spec.display.vnc.passwordFrom' has more than one of 'file' or 'env': 'env' conflicts with 'file'")
    }

    @Test func aliasBombIsRefusedQuicklyAndSmall() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            yaml += "a\(i): &a\(i) [\(refs)]\n"
        }
        let clock = ContinuousClock()
        var set: ManifestSet? = nil
        let elapsed = clock.measure { set = load(yaml) }
        #expect(elapsed < .seconds(1))
        let d = set!.diagnostics
        #expect(d.count == 1)
        #expect(d.first?.message == "aliases expand to more than 10000 nodes")
        #expect(d.first?.location.line == 4, "\(d)")  // a3: 11,111 nodes
    }

    @Test func aliasesWithinBoundsAreFine() {
        let set = load(manifest(spec: """
              cpu: &c {count: 2}
              disks:
                - name: a
                  file: {path: a.img, format: raw}
                  throttle: &t {bps: 10MiB}
                - name: b
                  file: {path: b.img, format: raw}
                  throttle: *t

            """))
        #expect(set.diagnostics.isEmpty, "\(lines(set))")
        #expect(set.virtualMachines.first?.spec.disks[1].throttle?.bps == 10 << 20)
    }

    @Test func tenThousandDeepNestingIsRefused() {
        let yaml = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\n"
        let set = load(yaml)
        expectSingleError(set, 1, 65, "nesting deeper than 64 levels")
    }

    @Test func nonCoreTagsAreRefused() {
        let set = load(manifest(spec: "  runState: !!python/object running\n"))
        expectSingleError(set, 6, 13, "tag '!!python/object' is not allowed")
    }

    @Test func binaryGarbage() {
        var bytes: [UInt8] = Array("apiVersion: qemuctl/v1\n".utf8)
        var seed: UInt64 = 42
        for _ in 0..<4096 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            bytes.append(UInt8(truncatingIfNeeded: seed >> 33))
        }
        let set = ManifestLoader().load(bytes: bytes, file: "g.yaml", baseDirectory: "/")
        #expect(set.diagnostics.count == 1)
        #expect(set.diagnostics.first?.code == .syntax)
        #expect(set.diagnostics.first?.location.line == 2, "\(lines(set))")
        #expect(set.virtualMachines.isEmpty)
    }

    @Test func nulByteIsRefused() {
        let bytes: [UInt8] = Array("apiVersion: qemuctl/v1\nkind: Virtual".utf8) + [0] + Array("Machine\n".utf8)
        let set = ManifestLoader().load(bytes: bytes, file: "n.yaml", baseDirectory: "/")
        expectSingleError(set, 2, 14, "not valid UTF-8: control characters are not allowed at byte offset 36 (U+0000)")
    }

    @Test func invalidUTF8IsReportedAtTheCharacter() {
        let bytes: [UInt8] = Array("apiVersion: qemuctl/v1\nkind: VirtualMachine\nmetadata: {name: caf".utf8) + [0xE9] + Array("}\n".utf8)
        let set = ManifestLoader().load(bytes: bytes, file: "u.yaml", baseDirectory: "/")
        expectSingleError(set, 3, 21, "not valid UTF-8: invalid trailing UTF-8 octet at byte offset 64 (0x7d)",
                          hint: "manifests must be UTF-8, or UTF-16 with a byte-order mark")
    }

    @Test func oversizedInputIsRefusedBeforeParsing() {
        let set = load(manifest(), limits: ManifestLimits(maxFileBytes: 16))
        expectSingleError(set, 1, 1, "file is larger than the 16B limit (92B)")
    }

    @Test func VMDefinedInTwoFilesNamesBothPlaces() {
        let set = ManifestLoader().load(
            files: [("a.yaml", Array(manifest(name: "web").utf8)), ("b.yaml", Array(manifest(name: "web").utf8))],
            baseDirectory: "/base")
        #expect(lines(set) == [
            "b.yaml:4:9: error: VM 'web' is defined twice: at a.yaml:4:9 and at b.yaml:4:9 (names must be unique across all manifests)"
        ])
    }

    @Test func namesUniqueWithinAVM() {
        let set = load(manifest(spec: """
              disks:
                - name: root
                  file: {path: a.img, format: raw}
              cdroms:
                - name: root
              networks:
                - {name: n0, user: {}}
                - {name: n0, user: {}}

            """))
        #expect(lines(set) == [
            "t.yaml:10:13: error: drive name 'root' is used twice in this VM (first used at line 7, column 13)",
            "t.yaml:13:14: error: network name 'n0' is used twice in this VM (first used at line 12, column 14)",
        ])
    }

    @Test func everyProblemOfEveryFileIsReportedSorted() {
        let bad1 = manifest(name: "a", spec: "  runState: on\n  memory: {size: 1}\n")
        let bad2 = manifest(name: "b", spec: "  cpu: {count: 0}\n")
        let set = ManifestLoader().load(files: [("z.yaml", Array(bad1.utf8)), ("m.yaml", Array(bad2.utf8))],
                                        baseDirectory: "/")
        #expect(set.diagnostics.map { "\($0.location)" } == ["m.yaml:6:16", "z.yaml:6:13", "z.yaml:7:18"])
        #expect(set.diagnostics[0].message == "'spec.cpu.count' is 0, outside the allowed range 1 to 1024")
    }

    @Test func throttleRulesOfQEMUAreCheckedStatically() {
        let set = load(manifest(spec: """
              disks:
                - name: root
                  file: {path: a.img, format: raw}
                  throttle: {bps: 10MiB, bpsRead: 5MiB, iopsMax: 10}

            """))
        #expect(lines(set) == [
            "t.yaml:9:30: error: 'spec.disks[0].throttle.bpsRead' cannot be combined with 'bps' (limit the total, or reads and writes separately)",
            "t.yaml:9:45: error: 'spec.disks[0].throttle.iopsMax' needs 'iops'",
        ])
    }
}
