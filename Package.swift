// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "qemuctl",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qemuctl", targets: ["QemuCtlCLI"]),
        .library(name: "QMP", targets: ["QMP"]),
        .library(name: "QemuCtl", targets: ["QemuCtl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: - C
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        .target(name: "CSocketShims"),

        // MARK: - Layers
        .target(name: "QMP", dependencies: ["CSocketShims"]),
        .target(
            name: "QemuCtl",
            dependencies: ["QMP", "CSocketShims"]
        ),
        .target(name: "Manifest", dependencies: ["CYAML"]),
        .target(
            name: "Reconcile",
            dependencies: ["Manifest", "QemuCtl"]
        ),
        // Export to and import from KubeVirt: manifests only, no QEMU (its JSON parsing is QMP's).
        .target(name: "KubeVirt", dependencies: ["Manifest", "Reconcile", "QMP"]),
        .executableTarget(
            name: "QemuCtlCLI",
            dependencies: [
                "Reconcile", "Manifest", "QemuCtl", "QMP", "KubeVirt",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Benchmarks
        .target(name: "CYAMLRaw", path: "bench/CYAMLRaw", linkerSettings: [.linkedLibrary("yaml")]),
        .executableTarget(name: "yaml-bench", dependencies: ["Manifest", "CYAMLRaw"], path: "bench/yaml"),
        .target(name: "CBenchRaw", path: "bench/CBenchRaw"),
        .executableTarget(name: "qmp-rtt", dependencies: ["QMP", "QemuCtl", "CBenchRaw"], path: "bench/qmp-rtt"),
        .executableTarget(name: "launch", dependencies: ["QMP", "QemuCtl", "CBenchRaw"], path: "bench/launch"),
        .target(name: "BenchSupport", dependencies: ["CBenchRaw"], path: "bench/BenchSupport"),
        .executableTarget(name: "apply-bench", dependencies: ["BenchSupport", "CBenchRaw"], path: "bench/apply"),
        .executableTarget(name: "scale-bench", dependencies: ["BenchSupport", "CBenchRaw"], path: "bench/scale"),
        .executableTarget(name: "controller-bench", dependencies: ["BenchSupport", "CBenchRaw"], path: "bench/controller"),

        // MARK: - Fuzzing (make fuzz builds these with libFuzzer; a normal build runs a corpus once)
        .target(name: "FuzzSupport"),
        .executableTarget(name: "fuzz-manifest", dependencies: ["Manifest", "FuzzSupport"]),
        .executableTarget(name: "fuzz-qmp-frames", dependencies: ["QMP", "FuzzSupport"]),

        // MARK: - Tests
        .target(name: "QemuCtlTestSupport", dependencies: ["QMP", "QemuCtl", "CSocketShims"], path: "Tests/QemuCtlTestSupport"),
        .testTarget(name: "QMPTests", dependencies: ["QMP", "QemuCtlTestSupport"]),
        .testTarget(name: "QemuCtlTests", dependencies: ["QemuCtl", "QMP", "QemuCtlTestSupport"]),
        .testTarget(name: "ManifestTests", dependencies: ["Manifest", "QemuCtlTestSupport"]),
        .testTarget(name: "ReconcileTests", dependencies: ["Reconcile", "KubeVirt", "QemuCtlTestSupport"]),
        .testTarget(name: "QemuCtlCLITests", dependencies: ["QemuCtlTestSupport", "QMP"]),
    ]
)

// Strictness for every Swift target (the system library and C targets are skipped).
for target in package.targets where [.regular, .executable, .test].contains(target.type) {
    guard !["CSocketShims", "CBenchRaw", "CYAMLRaw"].contains(target.name) else { continue }
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    settings.append(.enableUpcomingFeature("NonisolatedNonsendingByDefault"))
    // Public declarations say whether they are Sendable (the `ExplicitSendable` diagnostic group, off by
    // default). A warning-control setting, not an unsafe flag: packages that depend on this one by
    // version can build it (SwiftPM ignores warning settings of remote dependencies).
    settings.append(.treatWarning("ExplicitSendable", as: .warning))
    target.swiftSettings = settings
}
