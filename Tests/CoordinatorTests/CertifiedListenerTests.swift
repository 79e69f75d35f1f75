import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import SpecolaProtocol
import Synchronization
import TestSupport
import Testing
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// The cluster plane's listener over real TLS on loopback: each call sees the certificate of its
/// own connection (read once at the handshake), and a closed connection leaves nothing behind.
@Suite(.serialized, .watchesCooperativePool) struct CertifiedListenerTests {
    /// Answers Deliver with nothing and records whose certificate each call came with.
    final class WhoCalls: Specola_V1_RaftPeer.SimpleServiceProtocol {
        let callers = Mutex<[String]>([])
        func deliver(request: Specola_V1_RaftBatch, context: ServerContext) async throws -> Specola_V1_RaftDeliverAck {
            let name = ConnectionCertificates.of(context)?.identity.map(\.description) ?? "none"
            callers.withLock { $0.append(name) }
            return Specola_V1_RaftDeliverAck()
        }
        func pipe(request: RPCAsyncSequence<Specola_V1_RaftBatch, any Error>, context: ServerContext) async throws
            -> Specola_V1_RaftDeliverAck { Specola_V1_RaftDeliverAck() }
    }

    static let host = "127.0.0.1"

    /// Serves `service` on a certified listener at a free loopback port and runs `body` with that port.
    static func withListener(
        _ service: WhoCalls, handshakeTimeout: TimeAmount = TLSHandshakeDeadline.defaultTimeout,
        logger: Logger = Logger(label: "test.listener"), _ body: (TestPKI, Int) async throws -> Void
    ) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let pki = try TestPKI(in: dir)
        let transport = HTTP2ServerTransport.Custom(
            listenerFactory: CertifiedListener(host: host, port: 0, tls: try pki.issue(.coordinator, "c1", sans: [host]), reloader: nil,
                                               handshakeTimeout: handshakeTimeout, logger: logger),
            config: .defaults)
        let server = GRPCServer(transport: transport, services: [service])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = await transport.listeningAddress?.ipv4?.port else {
                Issue.record("the listener did not bind")
                return
            }
            try await body(pki, port)
        }
    }

    static func client(_ pki: TestPKI, _ role: CertificateRole, _ name: String, port: Int) throws -> HTTP2ClientTransport.Posix {
        try HTTP2ClientTransport.Posix(
            target: .ipv4(address: host, port: port), transportSecurity: try pki.issue(role, name).clientSecurity(serverHost: host))
    }

    @Test func eachCallSeesItsOwnConnectionsCertificateAndClosedConnectionsAreForgotten() async throws {
        let service = WhoCalls()
        let openBefore = ConnectionCertificates.openCount
        try await Self.withListener(service) { pki, port in
            for (role, name) in [(CertificateRole.user, "alice"), (.node, "n1"), (.user, "alice")] {
                try await withGRPCClient(transport: try Self.client(pki, role, name, port: port)) { client in
                    let peer = Specola_V1_RaftPeer.Client(wrapping: client)
                    for _ in 0..<3 { _ = try await peer.deliver(Specola_V1_RaftBatch()) }
                    #expect(ConnectionCertificates.openCount == openBefore + 1, "one open connection, one certificate")
                }
            }
            #expect(service.callers.withLock { $0 } == Array(repeating: "user/alice", count: 3) + Array(repeating: "node/n1", count: 3)
                + Array(repeating: "user/alice", count: 3))
            try await waitUntil("closed connections to leave no certificate behind", timeout: .seconds(10), every: .milliseconds(20)) {
                ConnectionCertificates.openCount == openBefore
            }
        }
    }

    @Test func aConnectionThatNeverStartsTLSIsClosedAndCallsStillWork() async throws {
        let records = RecordedLogs()
        let logger = Logger(label: "test.listener") { _ in RecordingLogHandler(records: records, withMetadata: true) }
        // 2 s: under a CPU hog a real handshake can take longer than 500 ms on the listener's side.
        try await Self.withListener(WhoCalls(), handshakeTimeout: .seconds(2), logger: logger) { pki, port in
            try await withGRPCClient(transport: try Self.client(pki, .user, "alice", port: port)) { client in
                let peer = Specola_V1_RaftPeer.Client(wrapping: client)
                _ = try await peer.deliver(Specola_V1_RaftBatch())
                // A plain TCP socket, accepted after the client's connection, that never starts TLS.
                let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: Self.host, port: port).get()
                try await waitUntil("the listener to close the silent connection", timeout: .seconds(10)) { !silent.isActive }
                #expect(records.messages.contains { $0.contains("no TLS handshake within 2000 ms") }, "\(records.messages)")
                // The client's connection, past its own deadline by now, still carries calls.
                _ = try await peer.deliver(Specola_V1_RaftBatch())
            }
            #expect(records.messages.filter { $0.contains("no TLS handshake") }.count == 1, "\(records.messages)")
        }
    }
}
