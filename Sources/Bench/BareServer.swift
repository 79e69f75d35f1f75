import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import SpecolaWire

/// Specola's KV service with nothing behind it: every call is answered at once, without Raft,
/// storage, interceptors or access checks, over the coordinators' mTLS and grpc-swift transport.
/// Its stale-get latency and CPU, beside a coordinator's, split the RPC stack's own cost from
/// what Specola adds on the way to the replica.
struct BareKV: Specola_V1_KV.SimpleServiceProtocol {
    func put(request: Specola_V1_KvPutRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse { .init() }
    func get(request: Specola_V1_KvGetRequest, context: ServerContext) async throws -> Specola_V1_KvGetResponse { .init() }
    func delete(request: Specola_V1_KvDeleteRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse { .init() }
    func compareAndSwap(request: Specola_V1_KvCasRequest, context: ServerContext) async throws -> Specola_V1_KvWriteResponse {
        .init()
    }
    func list(request: Specola_V1_KvListRequest, context: ServerContext) async throws -> Specola_V1_KvListResponse { .init() }
}

/// Serves `BareKV` on `host` (a free port) with `tls`; prints `LISTENING HOST:PORT`, then serves until killed.
func serveBare(host: String, tls: TLSFiles) async throws {
    let port = try freePort(host: host)
    var config = HTTP2ServerTransport.Posix.Config.defaults
    config.http2.maxConcurrentStreams = 1_024  // as the coordinator advertises (Coordinator.maxConcurrentStreams)
    let server = GRPCServer(
        transport: HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port), transportSecurity: tls.serverSecurity, config: config),
        services: [BareKV()])
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        guard try await server.listeningAddress != nil else { throw BenchError("the bare server did not start on \(host):\(port)") }
        FileHandle.standardOutput.write(Data("LISTENING \(host):\(port)\n".utf8))
    }
}
