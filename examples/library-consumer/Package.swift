// swift-tools-version: 6.1
// A program that uses qemuctl's library from another package, the way any SwiftPM
// package would: by URL and version. (The test suite builds it against a tagged clone.)
import PackageDescription

let package = Package(
    name: "vmstatus",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/qemuctl/qemuctl.git", from: "0.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "vmstatus",
            dependencies: [
                .product(name: "QemuCtl", package: "qemuctl"),
                .product(name: "QMP", package: "qemuctl"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
