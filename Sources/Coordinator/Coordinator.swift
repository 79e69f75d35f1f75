import SpecolaClusterCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import SpecolaProtocol
import SpecolaRaft
import SpecolaOIDC
import NIOCertificateReloading
import SpecolaDaemon

/// One coordinator replica: Raft, the agent link, the CLI, KV and membership
/// APIs on the gRPC port, and metrics on their own port. SIGTERM hands
/// leadership to another voter before the server stops.
public struct Coordinator: Service {
    public let config: CoordinatorConfig
    let logger: Logger
    /// Concurrent calls one client connection may have open (HTTP/2 streams).
    static let maxConcurrentStreams = 1_024

    public init(config: CoordinatorConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    func makeReplica(reloader: (any CertificateReloader)? = nil) throws -> (Replica, PeerTransport) {
        let storage = try RaftStorage(path: config.dataDir + "/raft.sqlite")
        let transport = PeerTransport(selfID: config.id, tls: config.tls, reloader: reloader, logger: logger)
        var settings = Replica.Settings(id: config.id, name: config.name)
        settings.tick = .milliseconds(config.raft.tickMs)
        settings.electionTicks = config.raft.electionTicks
        settings.snapshotEvery = config.raft.snapshotEvery
        let voters: Set<NodeID> = config.join ? [] : Set(config.peers.isEmpty ? [config.id] : config.peers.map(\.id))
        let replica = try Replica(
            settings: settings, storage: storage, peers: config.peers + [config.selfMember], initialVoters: voters,
            transport: transport,
            thresholds: .init(suspectAfterMs: Int64(config.suspectAfter * 1000), downAfterMs: Int64(config.downAfter * 1000)),
            logger: logger)
        return (replica, transport)
    }

    /// The replica's life, in the order a newcomer reads it: check the certificate, open the Raft
    /// replica, build the controllers and the services, then serve until SIGTERM hands leadership off.
    public func run() async throws {
        try checkCertificateIsACoordinators()
        // Re-issued certificates and keys take effect for new connections without a restart.
        let reloader = try config.tls.makeReloader(logger: logger)
        let (replica, transport) = try makeReplica(reloader: reloader)
        defer { transport.stopAll() }
        let directChannel = try await startDirectChannel(replica: replica, reloader: reloader)
        defer { directChannel?.close() }
        let hub = InstructionHub(logger: logger)
        let controllers = try makeControllers(replica: replica, hub: hub)
        let (access, audit) = makeAccessGate(replica: replica)
        let services = makeServices(replica: replica, hub: hub, controllers: controllers, access: access)
        let interceptors: [any ServerInterceptor] = [
            BearerTokenInterceptor(verifier: try config.oidc.map { try OIDCVerifier(settings: $0.settings, logger: self.logger) }, logger: logger),
            RevocationInterceptor(denyList: replica.denyList),
        ]
        let servers = Servers(
            grpc: makeServer(services: services, interceptors: interceptors, reloader: reloader),
            bearerToken: makeBearerTokenServer(services: services, interceptors: interceptors, reloader: reloader),
            metrics: MetricsServer(endpoint: config.metricsListen, replica: replica, tls: config.tls, logger: logger))
        try await serveUntilStopped(
            servers, replica: replica, controllers: controllers, audit: audit, reloader: reloader)
    }

    /// Listens for peers' direct Raft channels if this replica's member entry has a `raftAddress`.
    func startDirectChannel(replica: Replica, reloader: (any CertificateReloader)?) async throws -> DirectPeerListener? {
        let address = config.selfMember.raftAddress
        guard !address.isEmpty, let endpoint = HostPort(parsing: address, defaultPort: 7451) else { return nil }
        do {
            let listener = try await DirectPeerListener.start(
                endpoint: endpoint, tls: config.tls, reloader: reloader, denyList: replica.denyList, inbox: replica, logger: logger)
            logger.info("direct Raft channel listening", metadata: ["raft.address": "\(endpoint)"])
            return listener
        } catch {
            throw DirectChannelStartError(description:
                "cannot listen for the direct Raft channel on \(endpoint) (raftAddress of \(config.name) in peers): \(error); "
                    + "free that port or change raftAddress")
        }
    }

    /// A coordinator serves only with a coordinator's certificate.
    func checkCertificateIsACoordinators() throws {
        let identity = try config.tls.validate()
        guard identity.role == .coordinator else {
            throw TLSFileError(path: config.tls.cert, problem: "is for \(identity), but a coordinator needs a coordinator certificate")
        }
    }

    /// The loops that act on the replicated state: jobs, HA workloads, alerts, storage, node health.
    struct Controllers: Sendable {
        let jobs: JobController
        let workloads: WorkloadController
        let alerts: AlertController
        let storage: StorageController
        let health: HealthController
    }

    func makeControllers(replica: Replica, hub: InstructionHub) throws -> Controllers {
        let jobController = JobController(
            replica: replica, hub: hub, settings: .init(retention: config.jobs.duration), logger: logger)
        let workloadController = WorkloadController(replica: replica, hub: hub, logger: logger)
        let alertController = try makeAlertController(replica)
        let storageController = StorageController(replica: replica, hub: hub, policy: config.storage, logger: logger)
        let health = HealthController(
            replica: replica,
            settings: .init(policy: config.healthPolicy, bmcAddresses: config.fencing.bmcAddresses,
                            bmcCredentials: config.fencing.bmc != nil, earlyWarning: config.earlyWarning),
            power: config.fencing.bmc.map { IPMIPowerControl(access: $0) },
            logger: logger, alerts: alertController, onTransition: {
                jobController.nudge()
                workloadController.nudge()
                alertController.nudge()
                storageController.nudge()
            })
        return Controllers(jobs: jobController, workloads: workloadController, alerts: alertController, storage: storageController,
                           health: health)
    }

    /// Who may call what, and the audit trail of those calls.
    func makeAccessGate(replica: Replica) -> (AccessGate, AuditRecorder) {
        let audit = AuditRecorder(settings: .init(
            retentionMs: Int64(config.access.auditRetention * 1000), maxRecords: config.access.auditMaxRecords,
            refusalBurst: config.access.refusalBurst), logger: logger)
        if !config.access.policy.enforced {
            logger.warning("access.enforce is false: every user call is allowed; use this only to measure the cost of authorization")
        }
        return (AccessGate(policy: config.access.policy, replica: replica, audit: audit), audit)
    }

    /// Every gRPC service: the agents' link, the CLI's APIs, and the Raft peers'.
    func makeServices(replica: Replica, hub: InstructionHub, controllers: Controllers, access: AccessGate) -> [any RegistrableRPCService] {
        let workloadController = controllers.workloads
        let storageController = controllers.storage
        return [
            AgentLinkService(replica: replica, coordinatorName: config.name,
                             heartbeatIntervalMs: UInt32(config.heartbeatInterval * 1000),
                             selfFenceAfterMs: UInt32(config.fencing.selfFenceAfter * 1000),
                             autoAccept: config.nodes.autoAccept,
                             hub: hub, controller: controllers.jobs, logger: logger,
                             onWorkloadEvents: { workloadController.nudge() },
                             onStorageEvents: { storageController.nudge() }),
            JobsService(replica: replica, controller: controllers.jobs, logger: logger, access: access),
            WorkloadsService(replica: replica, controller: controllers.workloads, policy: config.workloads, logger: logger, access: access),
            ClusterAPIService(replica: replica, coordinatorName: config.name, health: controllers.health, logger: logger,
                              storage: controllers.storage, access: access),
            RaftPeerService(replica: replica, logger: logger),
            KVService(replica: replica, access: access),
            MembershipService(replica: replica, alerts: controllers.alerts, logger: logger, access: access),
            AlertsService(replica: replica, controller: controllers.alerts, logger: logger, access: access),
            AccessService(replica: replica, access: access, logger: logger),
        ]
    }

    /// The listeners: the cluster plane's gRPC port, the optional bearer-token port, and metrics.
    struct Servers: Sendable {
        let grpc: GRPCServer<SharedDeadlineTransport<HTTP2ServerTransport.Custom<CertifiedListener>>>
        let bearerToken: GRPCServer<SharedDeadlineTransport<HTTP2ServerTransport.Posix>>?
        let metrics: MetricsServer
    }

    /// The cluster plane's port: TLS with client certificates.
    func makeServer(services: [any RegistrableRPCService], interceptors: [any ServerInterceptor],
                    reloader: TimedCertificateReloader) -> GRPCServer<SharedDeadlineTransport<HTTP2ServerTransport.Custom<CertifiedListener>>> {
        var settings = HTTP2ServerTransport.Custom<CertifiedListener>.Config.defaults
        settings.rpc.maxRequestPayloadSize = 64 * 1024 * 1024
        // Advertised, so clients queue calls beyond it. Left unset, NIO still enforces 100 streams
        // but tells no one, and the 101st concurrent call tore down the whole connection (GOAWAY)
        // instead of waiting for its turn.
        settings.http2.maxConcurrentStreams = Self.maxConcurrentStreams
        let listener = CertifiedListener(host: config.listen.host, port: config.listen.port, tls: config.tls, reloader: reloader,
                                         logger: logger)
        return GRPCServer(transport: SharedDeadlineTransport(HTTP2ServerTransport.Custom(listenerFactory: listener, config: settings)),
                          services: services, interceptors: interceptors)
    }

    /// Users with a bearer token from the site's OIDC provider: TLS without client certificates,
    /// on a listener of its own, so the cluster plane's port keeps demanding certificates.
    func makeBearerTokenServer(services: [any RegistrableRPCService], interceptors: [any ServerInterceptor],
                               reloader: TimedCertificateReloader) -> GRPCServer<SharedDeadlineTransport<HTTP2ServerTransport.Posix>>? {
        config.oidc.map { oidc in
            let address = oidc.listen ?? HostPort(host: config.listen.host, port: 7451)
            self.logger.info("bearer tokens accepted", metadata: [
                "oidc.issuer": "\(oidc.settings.issuer)", "oidc.audience": "\(oidc.settings.audience)", "oidc.listen": "\(address)",
            ])
            return GRPCServer(
                transport: SharedDeadlineTransport(.http2NIOPosix(
                    address: .ipv4(host: address.host, port: address.port),
                    transportSecurity: config.tls.tokenServerSecurity(reloader: reloader),
                    config: .defaults {
                        $0.rpc.maxRequestPayloadSize = 64 * 1024 * 1024
                        $0.http2.maxConcurrentStreams = Self.maxConcurrentStreams
                    })),
                services: services, interceptors: interceptors)
        }
    }

    /// Runs every loop and server until SIGTERM. Each task says whether it is the gRPC server. Only
    /// the server's end stops the replica: on SIGTERM the other tasks return at once, but Raft must
    /// keep ticking and serving peers until leadership is handed off.
    func serveUntilStopped(_ servers: Servers, replica: Replica, controllers: Controllers, audit: AuditRecorder,
                           reloader: TimedCertificateReloader) async throws {
        let notifier = SystemdNotifier()
        let logger = self.logger
        let config = self.config
        let server = servers.grpc
        let tokenServer = servers.bearerToken
        let metrics = servers.metrics
        let alertController = controllers.alerts
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await server.serve()
                } onGracefulShutdown: {
                    Task {
                        if await replica.isLeader { await alertController.settle(within: .seconds(3)) }
                        await Self.handOffLeadership(replica, logger: logger)
                        tokenServer?.beginGracefulShutdown()
                        server.beginGracefulShutdown()
                    }
                }
                return true
            }
            if let tokenServer {
                group.addTask {
                    try await tokenServer.serve()
                    return false
                }
            }
            group.addTask {
                await replica.runTicker()
                return false
            }
            group.addTask {
                try? await reloader.run()
                return false
            }
            let loops: [@Sendable () async -> Void] = [
                { await controllers.jobs.run() }, { await controllers.health.run() }, { await controllers.alerts.run() },
                { await controllers.workloads.run() }, { await controllers.storage.run() },
            ]
            for loop in loops {
                group.addTask {
                    await loop()
                    return false
                }
            }
            group.addTask {
                await audit.run(replica: replica)
                return false
            }
            group.addTask {
                // Bounds the drain: a stream that never ends (an agent of a leader that had
                // no one to hand off to) must not keep the process alive after SIGTERM.
                do { try await gracefulShutdown() } catch { return false }
                try? await Task.sleep(for: .seconds(5))
                return true
            }
            group.addTask {
                do {
                    try await cancelWhenGracefulShutdown { try await metrics.run() }
                } catch is CancellationError {
                    // The expected end of the metrics server on SIGTERM, not a failure.
                }
                return false
            }
            group.addTask {
                guard let address = await server.transport.base.listeningAddress else { return false }
                logger.info("coordinator ready", metadata: [
                    "coordinator.name": "\(config.name)", "raft.id": "\(config.id)", "grpc.address": "\(address)",
                    "raft.peers": "\(config.peers.map(\.name))",
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
                return false
            }
            while let isServer = try await group.next(), !isServer {}
            notifier.stopping()
            group.cancelAll()
        }
    }

    /// The alert loop with the configured receivers, routes and rules.
    func makeAlertController(_ replica: Replica) throws -> AlertController {
        var settings = AlertController.Settings()
        settings.rules = config.alerting.rules
        settings.rules.storage = StorageAlertSettings(config.storage)
        settings.thresholdRules = config.alerting.thresholdRules
        settings.routing = config.alerting.routing
        let receivers = try config.alerting.makeReceivers()
        logger.info("alerting configured", metadata: [
            "alert.receivers": "\(receivers.map(\.name))", "alert.routes": "\(settings.routing.routes.count)",
            "alert.threshold_rules": "\(settings.thresholdRules.map(\.name))",
        ])
        let tls = config.tls
        return AlertController(replica: replica, receivers: receivers, settings: settings, certificates: {
            MetricsServer.certificates(tls).map {
                CertificateExpiry(name: $0.subject, path: $0.path, notValidAfterUnixMs: Int64($0.notValidAfterUnixSeconds * 1000))
            }
        }, logger: logger)
    }

    /// A leader that is asked to stop first makes another voter leader, so writes pause only briefly.
    static func handOffLeadership(_ replica: Replica, logger: Logger) async {
        guard await replica.isLeader else { return }
        do {
            let leader = try await replica.transferLeadership(within: .seconds(3))
            logger.info("leadership handed off before shutdown", metadata: ["raft.leader": "\(leader)"])
        } catch {
            logger.warning("leadership transfer before shutdown failed", metadata: ["error": "\(error)"])
        }
    }
}
