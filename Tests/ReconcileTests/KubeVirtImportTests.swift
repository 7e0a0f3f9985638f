import Foundation
import Manifest
import QemuCtlTestSupport
import Testing
@testable import KubeVirt
@testable import Reconcile

/// A KubeVirt VM as a cluster would hold it, with fields qemuctl has no equivalent for.
private let clusterVM = """
    apiVersion: kubevirt.io/v1
    kind: VirtualMachine
    metadata:
      name: fedora
      namespace: lab
      labels: {app: fedora}
      uid: 0b7d7c6c-0000-4000-8000-000000000000
    spec:
      runStrategy: RerunOnFailure
      template:
        metadata:
          labels: {app: fedora, kubevirt.io/size: small}
        spec:
          evictionStrategy: LiveMigrate
          nodeSelector: {disk: ssd}
          domain:
            cpu: {cores: 2, model: host-model}
            memory: {guest: 3Gi}
            firmware:
              bootloader:
                efi: {}
            devices:
              disks:
                - name: root
                  disk: {bus: virtio}
                - name: seed
                  disk: {bus: virtio}
              interfaces:
                - name: default
                  masquerade: {}
                  macAddress: "02:00:00:AA:BB:CC"
          networks:
            - name: default
              pod: {}
          volumes:
            - name: root
              containerDisk: {image: quay.io/containerdisks/fedora:40}
            - name: seed
              cloudInitNoCloud: {userData: "#cloud-config"}
    """

@Suite("KubeVirt import", .offPool)
struct KubeVirtImportTests {
    @Test func everyExampleComesBackAsAValidManifestWithItsMappedFields() throws {
        var loader = ManifestLoader()
        loader.keepsSourceText = true
        let cwd = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(Fixtures.repoRoot)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        let set = loader.load(paths: ["examples"])
        let originals = try set.get()
        let maps = ManifestSourceMap.byVirtualMachine(in: set)
        let exported = originals.map { KubeVirtExport.export($0, sourceMap: maps[$0.name]).document.yaml() }.joined(separator: "---\n")
        let (results, errors) = KubeVirtImport.read(Array(exported.utf8), file: "cluster.yaml")
        #expect(errors.isEmpty, "\(errors)")
        let manifests = results.map { $0.document.yaml() }.joined(separator: "---\n")
        let back = try ManifestLoader().load(bytes: Array(manifests.utf8), file: "back.yaml", baseDirectory: "/srv").get()
        #expect(back.map(\.name) == originals.map(\.name))
        for (a, b) in zip(originals, back) {
            #expect(a.labels == b.labels, "\(a.name)")
            #expect(a.spec.runState == b.spec.runState, "\(a.name)")
            #expect(a.spec.cpu.count == b.spec.cpu.count && a.spec.cpu.maxCount == b.spec.cpu.maxCount, "\(a.name)")
            #expect(a.spec.memory.size == b.spec.memory.size && a.spec.memory.max == b.spec.memory.max, "\(a.name)")
            #expect(a.spec.firmware.type == b.spec.firmware.type, "\(a.name)")
            #expect(a.spec.disks.map(\.name) == b.spec.disks.map(\.name), "\(a.name)")
            #expect(a.spec.disks.map(\.readOnly) == b.spec.disks.map(\.readOnly), "\(a.name)")
            #expect(a.spec.disks.map(\.bootIndex) == b.spec.disks.map(\.bootIndex), "\(a.name)")
            // A disk made from a base exports as a claim (the base does not move, reported): no size comes back.
            #expect(a.spec.disks.map { $0.createFrom == nil ? $0.createSize : nil } == b.spec.disks.map(\.createSize), "\(a.name)")
            #expect(a.spec.networks.map(\.mac) == b.spec.networks.map(\.mac), "\(a.name)")
            #expect(a.spec.networks.map(\.model) == b.spec.networks.map(\.model), "\(a.name)")
            #expect(a.spec.usbTablet == b.spec.usbTablet && a.spec.rng == b.spec.rng && a.spec.balloon == b.spec.balloon, "\(a.name)")
            #expect(a.spec.serial.log == b.spec.serial.log && a.spec.rtc.driftFix == b.spec.rtc.driftFix, "\(a.name)")
            #expect(b.spec.disks.allSatisfy { if case .file(let p, .qcow2) = $0.backend { p == "/srv/images/\(b.name)-\($0.name).qcow2" } else { false } })
        }
    }

    @Test func fieldsWithoutAQemuctlEquivalentAreNamedWithTheirPositions() throws {
        let (results, errors) = KubeVirtImport.read(Array(clusterVM.utf8), file: "fedora.yaml")
        #expect(errors.isEmpty)
        let result = try #require(results.first)
        let lines = clusterVM.components(separatedBy: "\n")
        func line(_ containing: String) -> Int { (lines.firstIndex { $0.contains(containing) } ?? -10) + 1 }
        let dropped = Dictionary(result.dropped.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(dropped["metadata.namespace"]?.location.line == line("namespace: lab"))
        #expect(dropped["spec.template.spec.evictionStrategy"]?.location == SourceLocation(file: "fedora.yaml", line: line("evictionStrategy"), column: 7))
        #expect(dropped["spec.template.spec.nodeSelector.disk"]?.location.line == line("nodeSelector"))
        #expect(dropped["spec.template.spec.domain.cpu.model"]?.reason.contains("host-model") == true)
        #expect(dropped["spec.template.spec.domain.firmware.bootloader.efi.secureBoot"]?.location.line == line("efi: {}"))
        #expect(dropped["spec.template.spec.volumes[0]"]?.reason.contains("no qemuctl equivalent") == true)
        #expect(dropped["spec.template.spec.volumes[1]"]?.reason.contains("cloud-init") == true)
        #expect(dropped["spec.template.metadata.labels.kubevirt.io/size"] == nil, "KubeVirt's own labels are not the user's")
        #expect(dropped["metadata.uid"] == nil, "server-set fields say nothing about the VM")
        #expect(result.dropped.count == 7, "\(result.dropped.map(\.description))")
        let vm = try ManifestLoader().load(bytes: Array(result.document.yaml().utf8), file: "f.yaml", baseDirectory: "/srv").get()[0]
        #expect(vm.name == "fedora" && vm.labels == ["app": "fedora"])
        #expect(vm.spec.cpu.count == 2 && vm.spec.cpu.cores == 2 && vm.spec.memory.size == 3 << 30)
        #expect(vm.spec.firmware.type == .efi && vm.spec.runState == .running)
        #expect(vm.spec.disks.map(\.name) == ["root"], "the cloud-init seed is not a disk of the manifest")
        #expect(vm.spec.networks.first?.mac == "02:00:00:aa:bb:cc")
        if case .user = vm.spec.networks.first?.backend {} else { Issue.record("the pod network should be user networking") }
    }

    @Test func emptyContainersAskForNothingButEmptyDevicesDo() throws {
        let yaml = """
            apiVersion: kubevirt.io/v1
            kind: VirtualMachine
            metadata: {name: tiny, labels: {}}
            spec:
              runStrategy: Halted
              template:
                metadata: {}
                spec:
                  domain: {devices: {rng: {}, disks: []}, features: {}}
                  hostAliases: {}
            """
        let (results, errors) = KubeVirtImport.read(Array(yaml.utf8), file: "t.yaml")
        #expect(errors.isEmpty)
        let result = try #require(results.first)
        #expect(result.dropped.map(\.path) == ["spec.template.spec.hostAliases"], "\(result.dropped.map(\.description))")
        let vm = try ManifestLoader().load(bytes: Array(result.document.yaml().utf8), file: "t", baseDirectory: "/").get()[0]
        #expect(vm.spec.rng && vm.spec.runState == .stopped)
    }

    @Test func notAVirtualMachineIsAnError() {
        let (results, errors) = KubeVirtImport.read(Array("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n".utf8), file: "p.yaml")
        #expect(results.isEmpty)
        #expect(errors.map(\.description) == ["p.yaml:2:1: error: not a KubeVirt VirtualMachine (apiVersion kubevirt.io/v1, kind VirtualMachine)"])
    }

    /// A pinned pciAddress goes to KubeVirt as a guest PCI address and comes back the same.
    @Test func pinnedPCIAddressesRoundTrip() throws {
        let yaml = """
            apiVersion: qemuctl/v1
            kind: VirtualMachine
            metadata: {name: pinned}
            spec:
              disks: [{name: root, file: {path: /r.qcow2, format: qcow2}, pciAddress: "0x0a"}]
              networks: [{name: lan, user: {}, pciAddress: "0x06"}]
            """
        let vm = try #require(try ManifestLoader().load(bytes: Array(yaml.utf8), file: "p.yaml", baseDirectory: "/").get().first)
        let exported = KubeVirtExport.export(vm, sourceMap: nil).document.yaml()
        #expect(exported.contains("pciAddress: 0000:00:0a.0") || exported.contains("pciAddress: \"0000:00:0a.0\""), "\(exported)")
        #expect(exported.contains("0000:00:06.0"), "\(exported)")
        let (results, errors) = KubeVirtImport.read(Array(exported.utf8), file: "cluster.yaml")
        #expect(errors.isEmpty, "\(errors)")
        let text = try #require(results.first).document.yaml()
        let back = try #require(try ManifestLoader().load(bytes: Array(text.utf8), file: "b.yaml", baseDirectory: "/srv").get().first)
        #expect(back.spec.disks.map(\.pciSlot) == [0x0a] && back.spec.networks.map(\.pciSlot) == [6], "\(text)")
        #expect(KubeVirtImport.pciAddress(ofKubeVirt: "0000:00:1F.0") == "0x1f")
        #expect(KubeVirtImport.pciAddress(ofKubeVirt: "0000:81:01.0") == nil)  // another bus: not placeable
        #expect(KubeVirtImport.pciAddress(ofKubeVirt: "0000:00:06.1") == nil)  // a function
        #expect(KubeVirtImport.pciAddress(ofKubeVirt: "0000:00:00.0") == nil)  // the host bridge
    }

    @Test func quantitiesInBinaryAndDecimalUnits() {
        #expect(KubeVirtImport.bytes(ofQuantity: "2Gi") == 2 << 30)
        #expect(KubeVirtImport.bytes(ofQuantity: "1G") == 1_000_000_000)
        #expect(KubeVirtImport.bytes(ofQuantity: "1536Mi") == 1536 << 20)
        #expect(KubeVirtImport.bytes(ofQuantity: "1073741824") == 1 << 30)
        #expect(KubeVirtImport.bytes(ofQuantity: "1.5Gi") == nil)
    }
}
