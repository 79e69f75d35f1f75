import SpecolaClusterCore
import GRPCCore
import Logging
import SpecolaProtocol

/// The coordinator's end of the agent link: registration, then one stream per
/// agent carrying reports and heartbeats up and acks and instructions down.
/// Only the leader serves it; followers point agents at the leader.
struct AgentLinkService: Specola_V1_AgentLink.SimpleServiceProtocol {
    let replica: Replica
    let coordinatorName: String
    let heartbeatIntervalMs: UInt32
    let selfFenceAfterMs: UInt32
    /// `nodes.autoAccept`: an unknown node joins without `specola node accept`.
    let autoAccept: Bool
    let hub: InstructionHub
    let controller: JobController
    let logger: Logger
    /// Wakes the HA workload controller when an agent reports on a VM or pod.
    var onWorkloadEvents: @Sendable () -> Void = {}
    /// Wakes the storage controller when an agent reports how a storage action ended.
    var onStorageEvents: @Sendable () -> Void = {}

    /// Refuses an agent that speaks for a node other than the one its certificate names.
    private func nodeName(_ context: ServerContext, claimed: String?) throws -> String {
        let identity: Identity
        do {
            identity = try CallerIdentity.require(context, .agentLink)
        } catch {
            logger.warning("refused agent call", metadata: ["peer": "\(context.remotePeer)", "error": "\(error)"])
            throw error
        }
        if let claimed, !claimed.isEmpty, claimed != identity.name {
            logger.warning(
                "refused report: certificate and claimed node differ",
                metadata: ["peer": "\(context.remotePeer)", "cert.identity": "\(identity)", "claimed.node": "\(claimed)"])
            throw RPCError(
                code: .permissionDenied,
                message: "certificate is for \(identity) but the agent claims node '\(claimed)'; an agent may only report for the node named in its certificate — fix nodeName in the agent config or issue a certificate for '\(claimed)'")
        }
        return identity.name
    }

    func register(request: Specola_V1_RegisterRequest, context: ServerContext) async throws -> Specola_V1_RegisterResponse {
        let name = try nodeName(context, claimed: request.nodeName)
        guard await replica.isLeader else {
            guard let hint = await replica.leaderHint else { throw ReplicaError.notLeader(nil).rpcError }
            return .with {
                $0.coordinatorName = coordinatorName
                $0.leaderHint = hint.address
            }
        }
        let outcome = try await serving {
            try await replica.propose(.registerNode(
                name: name, address: request.address, agentVersion: request.agentVersion,
                labels: request.labels, autoAccept: autoAccept, atUnixMs: WallClock.nowUnixMs()))
        }
        if case .awaitingAcceptance = outcome {
            logger.notice("node waits for acceptance", metadata: ["node.name": "\(name)", "node.address": "\(request.address)"])
            throw RPCError(
                code: .failedPrecondition,
                message: "node \(name) waits for an operator: run `specola node accept \(name)` (or set nodes.autoAccept: true in the coordinator config)")
        }
        await replica.noteContact(name)
        guard case .registered(let lastApplied) = outcome else {
            throw RPCError(code: .internalError, message: "registration of \(name) was not applied: \(outcome)")
        }
        logger.info("agent registered", metadata: [
            "node.name": "\(name)", "node.address": "\(request.address)", "seq.applied": "\(lastApplied)",
        ])
        return .with {
            $0.coordinatorName = coordinatorName
            $0.lastAppliedSeq = lastApplied
            $0.heartbeatIntervalMs = heartbeatIntervalMs
            $0.selfFenceAfterMs = selfFenceAfterMs
            $0.echoesLeaseTokens = true
        }
    }

    func connect(
        request: RPCAsyncSequence<Specola_V1_AgentMessage, any Error>,
        response: RPCWriter<Specola_V1_CoordinatorMessage>,
        context: ServerContext
    ) async throws {
        let name = try nodeName(context, claimed: nil)
        try await serving { try await replica.requireLeader() }
        guard await replica.node(name) != nil else {
            throw RPCError(code: .failedPrecondition, message: "node \(name) must call Register before Connect")
        }
        // One writer owns the response stream: acks from the reader and
        // instructions from the hub both go through `outgoing`.
        let (outgoing, continuation) = AsyncStream<Specola_V1_CoordinatorMessage>.makeStream()
        let connection = hub.attach(node: name, outgoing: continuation)
        defer { hub.detach(node: name, id: connection) }
        controller.nudge()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in outgoing { try await response.write(message) }
            }
            group.addTask {
                defer { continuation.finish() }
                for try await message in request {
                    try await handle(message, from: name, replying: continuation)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func handle(
        _ message: Specola_V1_AgentMessage, from name: String,
        replying outgoing: AsyncStream<Specola_V1_CoordinatorMessage>.Continuation
    ) async throws {
        await replica.noteContact(name)
        switch message.kind {
        case .report(var report):
            // Agents bound what they send, but the leader commits it: check every size again.
            let cuts = ReportBounds.clamp(&report)
            if !cuts.isEmpty {
                logger.warning("cut an agent's report to the coordinator's bounds", metadata: [
                    "node.name": "\(name)", "report.seq": "\(report.seq)", "cuts": "\(cuts.joined(separator: "; "))",
                ])
            }
            if let refusal = ReportBounds.refusal(report) {
                throw RPCError(code: .resourceExhausted, message: refusal)
            }
            let outcome = try await serving {
                try await replica.propose(.applyReport(node: name, report: report, receivedAtUnixMs: WallClock.nowUnixMs()))
            }
            switch outcome {
            case let .reportApplied(seq, gap, needsFull):
                if gap {
                    logger.warning("report sequence gap", metadata: ["node.name": "\(name)", "seq": "\(seq)"])
                }
                outgoing.yield(.with { $0.ack.ackedThroughSeq = seq })
                if needsFull {
                    outgoing.yield(.with { $0.requestFullReport = .init() })
                }
                if !report.taskEvents.isEmpty { controller.nudge() }
                if !report.workloadEvents.isEmpty { onWorkloadEvents() }
                if !report.storageEvents.isEmpty { onStorageEvents() }
            case let .duplicateReport(seq):
                outgoing.yield(.with { $0.ack.ackedThroughSeq = seq })
            case let .rejected(reason):
                throw RPCError(code: .failedPrecondition, message: reason)
            default:
                break
            }
        case .heartbeat(let heartbeat):
            // Leadership can move while the stream is open; send the agent to the new leader.
            try await serving { try await replica.requireLeader() }
            // The echoed token renews the agent's self-fence lease from when it sent this heartbeat,
            // which is no later than the contact just noted.
            let applied = await replica.lastAppliedSeq(of: name)
            outgoing.yield(.with {
                $0.ack.ackedThroughSeq = applied
                $0.ack.leaseToken = heartbeat.leaseToken
            })
        case .instructionResult(let result):
            let level: Logger.Level = result.ok ? .debug : .warning
            logger.log(level: level, "instruction result", metadata: [
                "node.name": "\(name)", "instruction.id": "\(result.instructionID)", "ok": "\(result.ok)",
                "message": "\(result.message)", "duplicate": "\(result.duplicate)",
            ])
        case nil:
            break
        }
    }
}
