import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SpecolaProtocol
import Synchronization
import NIOCertificateReloading

/// The agent's connection to the coordinator: registers, replays the outbox,
/// streams new reports and heartbeats, applies acks, and reconnects with
/// backoff and jitter whenever the link breaks.
public final class CoordinatorLink: Sendable {
    let config: AgentConfig
    let outbox: Outbox
    let logger: Logger
    /// The node's own certificate as it is reloaded; nil reads the files once per connection.
    let reloader: (any CertificateReloader)?
    let onFullReportRequested: @Sendable () -> Void
    let instructions: InstructionExecutor?
    /// Wakes the sender when the outbox has something new.
    private let wake = Mutex<AsyncStream<Void>.Continuation?>(nil)
    /// Sequence number through which the coordinator has acknowledged.
    private let acked = Atomic<UInt64>(0)
    private let connectedTo = Mutex<HostPort?>(nil)
    /// Instruction results waiting for the sender.
    private let results = Mutex<[Specola_V1_InstructionResult]>([])
    /// When a leader last answered, and the self-fence lease it announced; kept across agent restarts.
    let lease: SelfFenceLeaseKeeper
    /// Heartbeats carry their send time as an offset from this instant, set a day before its first
    /// use so that every send time of this process lies after it.
    private static let leaseEpoch = ContinuousClock.now - .seconds(86_400)

    public init(
        config: AgentConfig, outbox: Outbox, instructions: InstructionExecutor?, reloader: (any CertificateReloader)? = nil,
        logger: Logger, onFullReportRequested: @escaping @Sendable () -> Void
    ) {
        self.config = config
        self.reloader = reloader
        self.outbox = outbox
        self.instructions = instructions
        self.logger = logger
        self.onFullReportRequested = onFullReportRequested
        _ = Self.leaseEpoch
        lease = SelfFenceLeaseKeeper(dataDir: config.dataDir, logger: logger)
    }

    /// Tells the sender that the outbox has a new report.
    public func nudge() {
        _ = wake.withLock { $0?.yield() }
    }

    public var isConnected: Bool { connectedTo.withLock { $0 != nil } }

    /// How long no leader has answered, when the coordinator set a self-fence lease and it has run out.
    public var leaseExpiredFor: Duration? { lease.expiredFor() }

    static func leaseToken(sentAt sent: ContinuousClock.Instant) -> UInt64 {
        let offset = max(.zero, sent - leaseEpoch)
        return UInt64(offset.components.seconds) * 1_000_000_000 + UInt64(offset.components.attoseconds / 1_000_000_000) + 1
    }

    /// When the heartbeat with this token was sent; nil for a token this process never issued.
    static func sendInstant(ofLeaseToken token: UInt64, now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant? {
        guard token != 0, token <= leaseToken(sentAt: now) else { return nil }
        return leaseEpoch + .nanoseconds(Int64(token - 1))
    }

    /// Runs until cancelled, reconnecting forever.
    public func run() async {
        var attempt = 0
        var index = 0
        var lastProblem = ""
        var redirect: HostPort?
        while !Task.isCancelled {
            let endpoint = redirect ?? config.coordinators[index % config.coordinators.count]
            redirect = nil
            let connected = Atomic<Bool>(false)
            do {
                try await session(with: endpoint) { connected.store(true, ordering: .relaxed) }
            } catch let error as LinkError {
                if case .redirected(let leader) = error {
                    logger.info("following the coordinator leader", metadata: ["coordinator.address": "\(leader)"])
                    redirect = leader
                    attempt = 0
                    continue
                }
            } catch let error as RPCError where error.code == .unavailable && Self.leaderHint(in: error) != nil {
                redirect = Self.leaderHint(in: error)
                logger.info("following the coordinator leader", metadata: ["coordinator.address": "\(redirect!)"])
                attempt = 0
                try? await Task.sleep(for: .milliseconds(20))
                continue
            } catch {
                if connected.load(ordering: .relaxed) {
                    attempt = 0
                    lastProblem = ""
                }
                if Task.isCancelled { break }
                let problem = "\(error)"
                // One line per distinct problem, not one per retry.
                if problem != lastProblem {
                    logger.warning("coordinator link down; retrying with backoff", metadata: [
                        "coordinator.address": "\(endpoint)", "error": "\(problem)",
                    ])
                    lastProblem = problem
                }
            }
            connectedTo.withLock { $0 = nil }
            attempt += 1
            index += 1
            let delay = Self.backoff(attempt: attempt)
            try? await Task.sleep(for: .milliseconds(delay))
        }
    }

    /// Exponential backoff from 200 ms to 5 s, with ±50% jitter so agents do not reconnect in lockstep.
    static func backoff(attempt: Int) -> Int {
        let base = min(5_000, 200 * (1 << min(attempt, 5)))
        return Int(Double(base) * Double.random(in: 0.5...1.5))
    }

    private func session(with endpoint: HostPort, onConnected: @escaping @Sendable () -> Void) async throws {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: endpoint.host, port: endpoint.port),
            transportSecurity: config.tls.clientSecurity(serverHost: endpoint.host, reloader: reloader) { [logger] refusal in
                logger.error("refused the coordinator's certificate", metadata: [
                    "coordinator.address": "\(endpoint)", "reason": "\(refusal.reason)",
                ])
            },
            config: .defaults { $0.connection.maxIdleTime = nil })
        try await withGRPCClient(transport: transport) { client in
            let link = Specola_V1_AgentLink.Client(wrapping: client)
            let registerSent = ContinuousClock.now
            let registered = try await link.register(.with {
                $0.nodeName = config.nodeName
                $0.agentVersion = SpecolaVersion.current
                $0.bootID = AgentIdentity.bootID
                $0.labels = config.labels
                $0.address = config.address
            }, options: Self.callOptions(timeout: .seconds(10)))
            if !registered.leaderHint.isEmpty {
                guard let leader = HostPort(parsing: registered.leaderHint, defaultPort: 7450) else {
                    throw LinkError.noLeader
                }
                throw LinkError.redirected(leader)
            } else if registered.coordinatorName.isEmpty {
                throw LinkError.noLeader
            }
            try outbox.acknowledge(through: registered.lastAppliedSeq)
            acked.store(registered.lastAppliedSeq, ordering: .relaxed)
            lease.renew(sentAt: registerSent, length: .milliseconds(Int64(registered.selfFenceAfterMs)))
            let echoesLeaseTokens = registered.echoesLeaseTokens
            connectedTo.withLock { $0 = endpoint }
            onConnected()
            logger.info("connected to coordinator", metadata: [
                "coordinator.address": "\(endpoint)", "coordinator.name": "\(registered.coordinatorName)",
                "seq.applied": "\(registered.lastAppliedSeq)", "outbox.pending": "\((try? outbox.pendingCount()) ?? -1)",
            ])
            if registered.lastAppliedSeq == 0 { onFullReportRequested() }
            let heartbeat = registered.heartbeatIntervalMs > 0
                ? Duration.milliseconds(Int64(registered.heartbeatIntervalMs)) : .seconds(config.heartbeatInterval)
            try await link.connect { writer in
                try await self.sendLoop(writer: writer, from: registered.lastAppliedSeq, heartbeat: heartbeat)
            } onResponse: { response in
                for try await message in response.messages {
                    try await self.handle(message, echoesLeaseTokens: echoesLeaseTokens)
                }
                throw LinkError.closedByCoordinator
            }
        }
    }

    /// One loop owns the writer: it sends heartbeats on a timer and outbox reports when nudged.
    private func sendLoop(writer: RPCWriter<Specola_V1_AgentMessage>, from appliedSeq: UInt64, heartbeat: Duration) async throws {
        let (wakeups, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake.withLock { $0 = continuation }
        defer { wake.withLock { $0 = nil } }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: heartbeat)
                continuation.yield()
            }
        }
        defer { ticker.cancel() }
        var sentThrough = appliedSeq
        var lastHeartbeat = ContinuousClock.now - heartbeat
        continuation.yield()
        for await _ in wakeups {
            // Resend from the last ack if the coordinator fell behind what we sent (it lost some).
            sentThrough = max(sentThrough, acked.load(ordering: .relaxed))
            while true {
                let batch = try outbox.pending(after: sentThrough)
                if batch.isEmpty { break }
                for report in batch {
                    try await writer.write(.with { $0.report = report })
                    sentThrough = report.seq
                }
            }
            for result in results.withLock({ pending in defer { pending.removeAll() }; return pending }) {
                try await writer.write(.with { $0.instructionResult = result })
            }
            if ContinuousClock.now - lastHeartbeat >= heartbeat * 0.9 {
                let latest = sentThrough
                let token = Self.leaseToken(sentAt: .now)
                try await writer.write(.with {
                    $0.heartbeat = .with {
                        $0.sentAtUnixMs = UInt64(Date().timeIntervalSince1970 * 1000)
                        $0.latestSeq = latest
                        $0.leaseToken = token
                    }
                })
                lastHeartbeat = .now
            }
        }
    }

    /// `echoesLeaseTokens`: only answers to heartbeats renew the lease, from when each was sent; a
    /// coordinator from before lease tokens renews it with every message, when it arrives.
    private func handle(_ message: Specola_V1_CoordinatorMessage, echoesLeaseTokens: Bool) async throws {
        if !echoesLeaseTokens {
            lease.renew(sentAt: .now)
        } else if case .ack(let ack) = message.kind, let sent = Self.sendInstant(ofLeaseToken: ack.leaseToken) {
            lease.renew(sentAt: sent)
        }
        switch message.kind {
        case .ack(let ack):
            try outbox.acknowledge(through: ack.ackedThroughSeq)
            acked.store(ack.ackedThroughSeq, ordering: .relaxed)
        case .requestFullReport:
            onFullReportRequested()
        case .instruction(let instruction):
            logger.debug("instruction received", metadata: ["instruction.id": "\(instruction.id)"])
            let result: Specola_V1_InstructionResult
            if let instructions {
                result = try await instructions.execute(instruction)
            } else {
                result = .with {
                    $0.instructionID = instruction.id
                    $0.message = "this agent runs no instructions"
                }
            }
            results.withLock { $0.append(result) }
            nudge()
        case nil:
            break
        }
    }

    static func callOptions(timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        return options
    }
}

enum LinkError: Error, CustomStringConvertible {
    case closedByCoordinator
    case redirected(HostPort)
    case noLeader

    var description: String {
        switch self {
        case .closedByCoordinator: return "the coordinator closed the stream"
        case .redirected(let leader): return "redirected to the leader at \(leader)"
        case .noLeader: return "the coordinator knows no leader yet (election in progress)"
        }
    }
}

extension CoordinatorLink {
    /// The leader address a follower put in its refusal, if any.
    static func leaderHint(in error: RPCError) -> HostPort? {
        for value in error.metadata[stringValues: "specola-leader"] {
            if let endpoint = HostPort(parsing: value, defaultPort: 7450) { return endpoint }
        }
        return nil
    }
}

/// Per-process identity facts sent at registration.
enum AgentIdentity {
    static let bootID = UUID().uuidString.lowercased()
}
