import SpecolaClusterCore
import Foundation
import GRPCCore
import SpecolaProtocol
import SwiftProtobuf

/// The replicated key-value store. Writes go through Raft on the leader;
/// reads are linearizable through ReadIndex unless the caller asks for `stale`.
struct KVService: Specola_V1_KV.SimpleServiceProtocol {
    let replica: Replica
    let access: AccessGate
    static let maxKeyBytes = 1_024
    static let maxValueBytes = 1 << 20

    /// Viewers read the store, operators write it; a project's step outputs (`jobs/PROJECT/`) are read
    /// and written by its members too, and by no other project's; a node reaches only its own `nodes/NAME/` prefix.
    private func authorize(_ context: ServerContext, _ verb: Verb, key: String, listing: Bool = false) async throws -> Principal {
        let caller = try await access.check(context, verb, .kv(key))
        if caller.kind == .node, let refusal = KVScope.refusal(node: caller.name, key: key, listing: listing) {
            throw access.refused(caller, verb, .kv(key), refusal, request: nil)
        }
        return caller
    }

    /// A write: authorized, then audited unless a node writes its own prefix (agents' traffic is not an operator's act).
    private func audited(_ context: ServerContext, key: String, request: any SwiftProtobuf.Message,
                         _ body: () async throws -> Specola_V1_KvWriteResponse) async throws -> Specola_V1_KvWriteResponse {
        let caller = try await authorize(context, .kvWrite, key: key)
        if caller.kind == .node { return try await body() }
        return try await access.audited(caller, .kvWrite, .kv(key), request: request) { _ in try await body() }
    }

    private func check(key: String, value: Data = Data()) throws {
        guard !key.isEmpty, key.utf8.count <= Self.maxKeyBytes else {
            throw RPCError(code: .invalidArgument, message: "key must be 1 to \(Self.maxKeyBytes) bytes")
        }
        guard value.count <= Self.maxValueBytes else {
            throw RPCError(code: .invalidArgument, message: "value is \(value.count) bytes; the KV store takes at most \(Self.maxValueBytes) (keep large results in the archive and store their path)")
        }
    }

    private func write(_ command: Specola_V1_Command) async throws -> Specola_V1_KvWriteResponse {
        let outcome = try await serving { try await replica.propose(command) }
        guard case .kvWrite(let response) = outcome else {
            throw RPCError(code: .internalError, message: "unexpected outcome \(outcome)")
        }
        return response
    }

    private func stamped(_ edit: (inout Specola_V1_Command) -> Void) -> Specola_V1_Command {
        var command = Specola_V1_Command()
        command.proposedAtUnixMs = WallClock.nowUnixMs()
        edit(&command)
        return command
    }

    func put(request: Specola_V1_KvPutRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse {
        try check(key: request.key, value: request.value)
        return try await audited(context, key: request.key, request: request) {
            try await write(stamped { $0.kvPut = .with { $0.key = request.key; $0.value = request.value } })
        }
    }

    func delete(request: Specola_V1_KvDeleteRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse {
        try check(key: request.key)
        return try await audited(context, key: request.key, request: request) {
            try await write(stamped { $0.kvDelete = .with { $0.key = request.key } })
        }
    }

    func compareAndSwap(request: Specola_V1_KvCasRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse {
        try check(key: request.key, value: request.newValue)
        guard request.expect != nil else {
            throw RPCError(code: .invalidArgument, message: "compare-and-swap needs an expected value or an expected mod revision (0 = key absent)")
        }
        return try await audited(context, key: request.key, request: request) { try await write(stamped {
            $0.kvCas = .with {
                $0.key = request.key
                $0.newValue = request.newValue
                switch request.expect {
                case .expectedValue(let value): $0.expectedValue = value
                case .expectedModRevision(let revision): $0.expectedModRevision = revision
                case nil: break
                }
            }
        }) }
    }

    func get(request: Specola_V1_KvGetRequest, context: ServerContext) async throws -> Specola_V1_KvGetResponse {
        _ = try await authorize(context, .kvRead, key: request.key)
        if !request.stale { try await serving { try await replica.readBarrier() } }
        let (entry, revision) = await replica.kvGet(request.key)
        return .with {
            $0.revision = revision
            if let entry { $0.kv = entry; $0.found = true }
        }
    }

    func list(request: Specola_V1_KvListRequest, context: ServerContext) async throws -> Specola_V1_KvListResponse {
        let caller = try await authorize(context, .kvRead, key: request.prefix, listing: true)
        if !request.stale { try await serving { try await replica.readBarrier() } }
        // A member lists its own projects' step outputs only.
        let readable = access.readableProjects(of: caller)
        let (entries, revision) = await replica.kvList(prefix: request.prefix, limit: Int(request.limit), readable: readable)
        return .with {
            $0.kvs = entries
            $0.revision = revision
        }
    }
}
