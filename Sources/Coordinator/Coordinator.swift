import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import SpecolaProtocol

/// One coordinator replica: the agent link and CLI API on the gRPC port, and
/// metrics on their own port.
public struct Coordinator: Service {
    public let config: CoordinatorConfig
    let logger: Logger

    public init(config: CoordinatorConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func run() async throws {
        let identity = try config.tls.validate()
        guard identity.role == .coordinator else {
            throw TLSFileError(path: config.tls.cert, problem: "is for \(identity), but a coordinator needs a coordinator certificate")
        }
        let store = try StateStore(path: config.dataDir + "/state.sqlite")
        let registry = try Registry(
            store: store,
            thresholds: .init(suspectAfterMs: Int64(config.suspectAfter * 1000), downAfterMs: Int64(config.downAfter * 1000)),
            logger: logger)
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: config.listen.host, port: config.listen.port),
                transportSecurity: config.tls.serverSecurity,
                config: .defaults { $0.rpc.maxRequestPayloadSize = 16 * 1024 * 1024 }),
            services: [
                AgentLinkService(registry: registry, coordinatorName: config.name,
                                 heartbeatIntervalMs: UInt32(config.heartbeatInterval * 1000), logger: logger),
                ClusterAPIService(registry: registry, coordinatorName: config.name),
            ])
        let metrics = MetricsServer(endpoint: config.metricsListen, registry: registry, logger: logger)
        let notifier = SystemdNotifier()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await server.serve()
                } onGracefulShutdown: {
                    server.beginGracefulShutdown()
                }
            }
            group.addTask {
                try await cancelWhenGracefulShutdown { try await metrics.run() }
            }
            group.addTask {
                guard let address = try await server.listeningAddress else { return }
                let known = await registry.allNodes().count
                logger.info("coordinator ready", metadata: [
                    "coordinator.name": "\(config.name)", "grpc.address": "\(address)",
                    "nodes.known": "\(known)",
                ])
                notifier.ready()
                if let interval = notifier.watchdogInterval {
                    while !Task.isCancelled && !Task.isShuttingDownGracefully {
                        notifier.watchdog()
                        try? await Task.sleep(for: interval)
                    }
                } else {
                    try? await gracefulShutdown()
                }
            }
            try await group.next()
            notifier.stopping()
            group.cancelAll()
        }
    }
}
