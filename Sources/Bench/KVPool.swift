import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import Synchronization

/// Which Raft group the generator drives.
enum System: String, Sendable {
    case specola, etcd
}

/// One HTTP/2 connection per replica, shared by every worker, plus the replica
/// that writes go to now. The same code path drives both systems; only the stub differs.
final class KVPool: Sendable {
    let system: System
    let endpoints: [HostPort]
    let lanes: [Lane]
    private let current = Mutex<Int>(0)

    /// `tls` is required for Specola (mTLS with a user certificate); etcd speaks the
    /// same mTLS with it, or plaintext h2c without it.
    init(system: System, endpoints: [HostPort], tls: TLSFiles?) throws {
        self.system = system
        self.endpoints = endpoints
        @Sendable func security(_ endpoint: HostPort) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
            switch (system, tls) {
            case (.specola, nil): throw BenchError("specola needs --pki")
            case (.specola, let tls?): return tls.clientSecurity(serverHost: endpoint.host)
            case (.etcd, let tls?):
                // etcd is no coordinator: plain mutual TLS against the same CA.
                return .mTLS(certificateChain: [.file(path: tls.cert, format: .pem)], privateKey: .file(path: tls.key, format: .pem)) {
                    $0.trustRoots = .certificates([.file(path: tls.ca, format: .pem)])
                }
            case (.etcd, nil): return .plaintext
            }
        }
        // etcd's grpc-go sends a BDP PING with every request it receives, and
        // swift-nio-http2 drops a connection after 200 PINGs in 30 s. So etcd calls
        // move to a fresh, already connected connection every 150 calls.
        let rotateAfter = system == .etcd ? 150 : nil
        lanes = try endpoints.map { endpoint in
            try Lane(rotateAfter: rotateAfter) {
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: endpoint.host, port: endpoint.port),
                    transportSecurity: try security(endpoint),
                    config: .defaults {
                        // A killed replica should be retried quickly, not after seconds of backoff.
                        $0.backoff.initial = .milliseconds(20)
                        $0.backoff.max = .milliseconds(200)
                        $0.connection.maxIdleTime = nil
                    })
                return GRPCClient(transport: transport)
            }
        }
    }

    /// Runs `body`, then closes every connection.
    func with<T: Sendable>(_ body: @Sendable (KVPool) async throws -> T) async throws -> T {
        defer { for lane in lanes { lane.shutdown() } }
        return try await body(self)
    }

    /// Sends writes to `endpoint` until an error says otherwise.
    func prefer(_ endpoint: HostPort) {
        if let index = endpoints.firstIndex(of: endpoint) { current.withLock { $0 = index } }
    }

    var target: HostPort { endpoints[current.withLock { $0 }] }

    /// One put. On failure it re-targets: to the leader a Specola follower names,
    /// else to the next replica, and rethrows.
    func put(key: String, value: Data, options: CallOptions) async throws {
        let index = current.withLock { $0 }
        do {
            switch system {
            case .specola:
                let kv = Specola_V1_KV.Client(wrapping: lanes[index].client())
                _ = try await kv.put(.with { $0.key = key; $0.value = value }, options: options)
            case .etcd:
                let kv = Etcdserverpb_KV.Client(wrapping: lanes[index].client())
                _ = try await kv.put(.with { $0.key = Data(key.utf8); $0.value = value }, options: options)
            }
        } catch let error as RPCError {
            let hinted = error.metadata[stringValues: "specola-leader"].compactMap { HostPort(parsing: $0) }.first
            let next = hinted.flatMap { endpoints.firstIndex(of: $0) } ?? (index + 1) % endpoints.count
            current.withLock { if $0 == index { $0 = next } }
            throw error
        }
    }

    /// A read that skips Raft: Specola's stale get, etcd's serializable range. A diagnostic:
    /// the cost of each system's RPC path alone.
    func staleGet(key: String, options: CallOptions) async throws {
        let index = current.withLock { $0 }
        switch system {
        case .specola:
            _ = try await Specola_V1_KV.Client(wrapping: lanes[index].client()).get(
                .with { $0.key = key; $0.stale = true }, options: options)
        case .etcd:
            _ = try await Etcdserverpb_KV.Client(wrapping: lanes[index].client()).range(
                .with { $0.key = Data(key.utf8); $0.serializable = true }, options: options)
        }
    }

    /// Specola only: a replica's view of the group.
    func status(of endpoint: HostPort) async throws -> Specola_V1_StatusResponse {
        guard let index = endpoints.firstIndex(of: endpoint) else { throw BenchError("\(endpoint) is not an endpoint") }
        var options = CallOptions.defaults
        options.timeout = .seconds(1)
        return try await Specola_V1_ClusterAPI.Client(wrapping: lanes[index].client()).status(.init(), options: options)
    }
}

/// The connection to one replica. With `rotateAfter`, calls move to a new
/// connection (dialled one step ahead) after that many; the old one closes
/// a little later, once its calls are done.
final class Lane: Sendable {
    typealias Client = GRPCClient<HTTP2ClientTransport.Posix>
    private let make: @Sendable () throws -> Client
    private let rotateAfter: Int?
    private let state: Mutex<(current: Client, next: Client?, calls: Int)>

    init(rotateAfter: Int?, make: @escaping @Sendable () throws -> Client) throws {
        self.make = make
        self.rotateAfter = rotateAfter
        let first = try Self.started(make())
        let next = try rotateAfter.map { _ in try Self.started(make()) }
        state = Mutex((first, next, 0))
    }

    private static func started(_ client: Client) -> Client {
        Task { try? await client.runConnections() }
        return client
    }

    func client() -> Client {
        state.withLock { state in
            state.calls += 1
            if let limit = rotateAfter, state.calls > limit, let next = state.next,
                let fresh = try? Self.started(make())
            {
                // Calls already handed the old connection finish before it closes.
                let old = state.current
                Task {
                    try? await Task.sleep(for: .seconds(2))
                    old.beginGracefulShutdown()
                }
                state = (next, fresh, 1)
            }
            return state.current
        }
    }

    func shutdown() {
        state.withLock { state in
            state.current.beginGracefulShutdown()
            state.next?.beginGracefulShutdown()
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
