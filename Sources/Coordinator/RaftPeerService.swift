import Foundation
import SpecolaClusterCore
import GRPCCore
import Logging
import SpecolaProtocol
import SpecolaRaft

/// Receives Raft traffic from the other replicas. Callers need a coordinator
/// certificate; a frame that does not decode is refused and logged, never applied.
package struct RaftPeerService: Specola_V1_RaftPeer.SimpleServiceProtocol {
    let replica: Replica
    let logger: Logger

    package init(replica: Replica, logger: Logger) {
        self.replica = replica
        self.logger = logger
    }

    package func deliver(request: Specola_V1_RaftBatch, context: ServerContext) async throws -> Specola_V1_RaftDeliverAck {
        let caller = try CallerIdentity.require(context, .raftPeer)
        guard request.chunkTotal == 0 else {
            throw RPCError(code: .invalidArgument, message: "a message in pieces travels only on Pipe, whose stream keeps them in order")
        }
        try await handle(request, caller: caller, context: context)
        return .init()
    }

    package func pipe(request: RPCAsyncSequence<Specola_V1_RaftBatch, any Error>, context: ServerContext) async throws -> Specola_V1_RaftDeliverAck {
        let caller = try CallerIdentity.require(context, .raftPeer)
        var pieces = ChunkAssembler()
        for try await batch in request {
            guard batch.chunkTotal > 0 else {
                try await handle(batch, caller: caller, context: context)
                continue
            }
            guard let whole = try pieces.add(batch.chunk, total: batch.chunkTotal) else { continue }
            var joined = Specola_V1_RaftBatch()
            joined.fromID = batch.fromID
            joined.messages = [whole]
            try await handle(joined, caller: caller, context: context)
        }
        return .init()
    }

    private func handle(_ request: Specola_V1_RaftBatch, caller: Identity, context: ServerContext) async throws {
        var messages: [Message] = []
        messages.reserveCapacity(request.messages.count)
        for frame in request.messages {
            do {
                let message = try Message(wire: [UInt8](frame))
                guard message.from == request.fromID else {
                    throw RPCError(code: .invalidArgument, message: "message from \(message.from) inside a batch from \(request.fromID)")
                }
                messages.append(message)
            } catch {
                logger.warning("refused a garbage Raft frame", metadata: [
                    "peer": "\(context.remotePeer)", "cert.identity": "\(caller)", "frame.bytes": "\(frame.count)", "error": "\(error)",
                ])
                throw RPCError(code: .invalidArgument, message: "Raft frame does not decode: \(error)")
            }
        }
        // One actor call both checks the sender and steps the messages (this is the hot path).
        if let reason = await replica.receive(messages, from: request.fromID, certifiedAs: caller.name) {
            logger.warning("refused Raft traffic: the sender is not the member its certificate names", metadata: [
                "cert.identity": "\(caller)", "claimed.id": "\(request.fromID)", "reason": "\(reason)",
            ])
            throw RPCError(code: .permissionDenied, message: "\(caller) may not send as replica \(request.fromID): \(reason)")
        }
    }
}

/// Joins the pieces of one message too large for a batch (a snapshot), as they arrive in order.
struct ChunkAssembler {
    /// A message larger than this is refused rather than buffered.
    static let maxMessageBytes = 1 << 31
    private var buffer = Data()
    private var total = 0

    /// Adds the next piece of a message of `total` bytes; returns the message once it is whole.
    mutating func add(_ piece: Data, total announced: UInt64) throws -> Data? {
        guard announced <= UInt64(Self.maxMessageBytes) else {
            throw RPCError(code: .resourceExhausted, message: "a Raft message of \(announced) bytes exceeds the \(Self.maxMessageBytes)-byte limit")
        }
        if buffer.isEmpty {
            total = Int(announced)
            buffer.reserveCapacity(total)
        } else if total != Int(announced) {
            throw RPCError(code: .invalidArgument, message: "a piece announces \(announced) bytes in a message of \(total)")
        }
        guard !piece.isEmpty, buffer.count + piece.count <= total else {
            throw RPCError(code: .invalidArgument, message: "a piece of \(piece.count) bytes does not fit a message of \(total) with \(buffer.count) received")
        }
        buffer.append(piece)
        guard buffer.count == total else { return nil }
        defer { buffer = Data(); total = 0 }
        return buffer
    }
}

extension ReplicaError {
    /// Metadata key carrying the leader's address, so clients can follow it.
    static let leaderMetadataKey = "specola-leader"
    /// Metadata key on refusals of requests this replica did not execute, so a client may
    /// send them to another replica without risking a second execution.
    static let notExecutedMetadataKey = "specola-not-executed"
    /// gRPC's own retry hint: how long a client should wait before trying again.
    static let retryPushbackMetadataKey = "grpc-retry-pushback-ms"
    static let overloadRetryAfterMs = 200

    var rpcError: RPCError {
        switch self {
        case .notLeader(let hint):
            var metadata: Metadata = [Self.notExecutedMetadataKey: "1"]
            if let hint { metadata.addString(hint.address, forKey: Self.leaderMetadataKey) }
            return RPCError(code: .unavailable, message: description, metadata: metadata)
        case .superseded:
            // Certain: its entry was replaced, so it never ran and never will.
            return RPCError(code: .aborted, message: description, metadata: [Self.notExecutedMetadataKey: "1"])
        case .dropped:
            return RPCError(code: .aborted, message: description)
        case .timedOut:
            return RPCError(code: .deadlineExceeded, message: description)
        case .outcomeUnknown, .appliedResultUnknown:
            return RPCError(code: .unknown, message: description)
        case .overloaded:
            return RPCError(code: .resourceExhausted, message: description, metadata: [
                Self.notExecutedMetadataKey: "1", Self.retryPushbackMetadataKey: "\(Self.overloadRetryAfterMs)",
            ])
        case .storageFailed, .stopped:
            return RPCError(code: .unavailable, message: description, metadata: [Self.notExecutedMetadataKey: "1"])
        }
    }
}

/// Runs `body`, turning replica errors into gRPC statuses clients understand.
func serving<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ReplicaError {
        throw error.rpcError
    }
}
