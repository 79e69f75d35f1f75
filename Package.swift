// swift-tools-version:6.1
import PackageDescription

let settings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let grpc: [Target.Dependency] = [
    .product(name: "GRPCCore", package: "grpc-swift-2"),
    .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
    .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
    .product(name: "SwiftProtobuf", package: "swift-protobuf"),
]

let package = Package(
    name: "specola",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "specola", targets: ["specola"]),
        .executable(name: "specola-agent", targets: ["specola-agent"]),
        .executable(name: "specola-coordinator", targets: ["specola-coordinator"]),
        .executable(name: "specola-bench", targets: ["specola-bench"]),
        .executable(name: "specola-bench-scheduler", targets: ["specola-bench-scheduler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CIPMIMonitoring", path: "Sources/CIPMIMonitoring",
            pkgConfig: "libipmimonitoring", providers: [.apt(["libipmimonitoring-dev"])]),
        .systemLibrary(
            name: "CFreeIPMI", path: "Sources/CFreeIPMI",
            pkgConfig: "libfreeipmi", providers: [.apt(["libfreeipmi-dev"])]),
        .systemLibrary(
            name: "CLibvirt", path: "Sources/CLibvirt",
            pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        // Power-loss testing: an SQLite VFS that keeps unsynced writes in memory (selected by tests only).
        .target(
            name: "CPowerLossVFS", path: "Sources/CPowerLossVFS",
            linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(
            name: "SpecolaProtocol",
            dependencies: grpc + ["SpecolaWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Protocol",
            exclude: ["specola_services.proto"],
            swiftSettings: settings),
        // What the two daemons share and the CLI does not: SQLite files, config files, the command
        // line, logging, systemd.
        .target(
            name: "SpecolaDaemon",
            dependencies: [
                "SpecolaProtocol", "SpecolaProcesses", "CPowerLossVFS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Daemon", swiftSettings: settings),
        // Running external programs and blocking work off the cooperative pool (Foundation only).
        .target(name: "SpecolaProcesses", path: "Sources/Processes", swiftSettings: settings),
        // For `specola dev` and the tests: the busybox image, free loopback ports.
        .target(name: "SpecolaDevSupport", dependencies: ["SpecolaProcesses"], path: "Sources/DevSupport", swiftSettings: settings),
        // The wire messages alone (no gRPC, no NIO), so the pure cluster core can use them.
        .target(
            name: "SpecolaWire", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Sources/Wire", exclude: ["agent.proto", "state.proto", "peer.proto", "api.proto"], swiftSettings: settings),
        // Every decision of the leader that needs no I/O: the replicated state and its books, the
        // failure ladder, the HA planner, alert rules, the scheduling input. No NIO, gRPC, GRDB or
        // Logging here; the compiler keeps it pure.
        .target(
            name: "SpecolaClusterCore", dependencies: ["SpecolaWire", "SpecolaJobs", "SpecolaAlerting"],
            path: "Sources/ClusterCore", swiftSettings: settings),
        .target(name: "SpecolaRaft", path: "Sources/Raft", swiftSettings: settings),
        .target(name: "SpecolaBMC", dependencies: ["CFreeIPMI", "SpecolaWire"], path: "Sources/BMC", swiftSettings: settings),
        // Alert rules, routing, silences and notification texts: pure.
        .target(name: "SpecolaAlerting", path: "Sources/Alerting", swiftSettings: settings),
        // Sending notifications (webhooks, SMTP) and the test receivers.
        .target(
            name: "SpecolaAlertDelivery",
            dependencies: [
                "SpecolaAlerting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/AlertDelivery", swiftSettings: settings),
        .target(
            name: "SpecolaJobs", dependencies: ["SpecolaWire", .product(name: "Yams", package: "Yams")], path: "Sources/Jobs",
            exclude: ["specola-job.schema.json", "Samples"], swiftSettings: settings),
        .target(
            name: "SpecolaAgent",
            dependencies: [
                "SpecolaProtocol", "SpecolaDaemon", "SpecolaProcesses", "SpecolaJobs", "SpecolaBMC", "CIPMIMonitoring", "CFreeIPMI", "CLibvirt",
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ] + grpc,
            path: "Sources/Agent",
            swiftSettings: settings),
        // Sign-in with the site's OIDC provider: discovery, JWKS, token verification (coordinator)
        // and the token grants (CLI).
        .target(
            name: "SpecolaOIDC",
            dependencies: [
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/OIDC", swiftSettings: settings),
        .target(
            name: "SpecolaCoordinator",
            dependencies: [
                "SpecolaProtocol", "SpecolaDaemon", "SpecolaProcesses", "SpecolaDevSupport", "SpecolaOIDC", "SpecolaRaft",
                "SpecolaJobs", "SpecolaBMC", "SpecolaAlerting", "SpecolaAlertDelivery", "SpecolaClusterCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
            ] + grpc,
            path: "Sources/Coordinator",
            swiftSettings: settings),
        .target(
            name: "SpecolaCLI",
            dependencies: [
                "SpecolaProtocol", "SpecolaProcesses", "SpecolaDevSupport", "SpecolaJobs", "SpecolaClusterCore", "SpecolaOIDC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ] + grpc,
            path: "Sources/CLI",
            swiftSettings: settings),
        .executableTarget(
            name: "specola", dependencies: ["SpecolaCLI"], path: "Sources/specola",
            swiftSettings: settings),
        .executableTarget(
            name: "specola-agent", dependencies: ["SpecolaAgent"], path: "Sources/specola-agent",
            swiftSettings: settings),
        .executableTarget(
            name: "specola-coordinator", dependencies: ["SpecolaCoordinator"],
            path: "Sources/specola-coordinator", swiftSettings: settings),
        .testTarget(
            name: "JobsTests", dependencies: ["CooperativePoolWatch", "SeededRandom", "SpecolaJobs", "SpecolaWire", .product(name: "Yams", package: "Yams")],
            path: "Tests/JobsTests", swiftSettings: settings),
        .executableTarget(
            name: "specola-bench", dependencies: ["SpecolaProtocol"] + grpc, path: "Sources/Bench",
            exclude: ["etcd_kv.proto"], swiftSettings: settings),
        .testTarget(
            name: "AlertingTests", dependencies: ["CooperativePoolWatch", "SeededRandom", "SpecolaAlerting", "SpecolaAlertDelivery", "TestSupport"], path: "Tests/AlertingTests",
            swiftSettings: settings),
        .executableTarget(
            name: "specola-bench-scheduler", dependencies: ["SpecolaCoordinator", "SpecolaClusterCore", "SpecolaJobs", "SpecolaProtocol", "SpecolaRaft", "SpecolaDevSupport"] + grpc, path: "Sources/BenchScheduler",
            swiftSettings: settings),
        .testTarget(
            name: "ClusterCoreTests", dependencies: ["CooperativePoolWatch", "SeededRandom", "SpecolaClusterCore"], swiftSettings: settings),
        .testTarget(name: "RaftTests", dependencies: ["CooperativePoolWatch", "SpecolaRaft"], path: "Tests/RaftTests", swiftSettings: settings),
        .testTarget(
            name: "ProtocolTests", dependencies: [
                "CooperativePoolWatch", "SpecolaProtocol", "SpecolaDaemon", "SpecolaProcesses", "CPowerLossVFS",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ], swiftSettings: settings),
        .testTarget(
            name: "AgentTests", dependencies: ["CooperativePoolWatch", "SpecolaAgent", "TestSupport"], swiftSettings: settings),
        .testTarget(
            name: "CoordinatorTests", dependencies: [
                "CooperativePoolWatch", "SeededRandom", "SpecolaCoordinator", "SpecolaOIDC",
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"), "SpecolaClusterCore", "SpecolaJobs", "SpecolaAlerting",
                "SpecolaAlertDelivery", "TestSupport", .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: settings),
        .testTarget(
            name: "ProcessTests",
            dependencies: ["CooperativePoolWatch", "SpecolaAgent", "SpecolaCLI", "SpecolaProtocol", "SpecolaRaft", "SpecolaOIDC", "TestSupport"] + grpc,
            swiftSettings: settings),
        .target(name: "CooperativePoolWatch", path: "Tests/CooperativePoolWatch", swiftSettings: settings),
        .target(name: "SeededRandom", path: "Tests/SeededRandom", swiftSettings: settings),
        .target(
            name: "TestSupport", dependencies: ["SeededRandom", "SpecolaProtocol", "SpecolaDaemon", "SpecolaProcesses", "SpecolaDevSupport", "SpecolaAgent", "SpecolaBMC"] + grpc, path: "Tests/TestSupport",
            swiftSettings: settings),
    ]
)
