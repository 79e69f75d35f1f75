import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// Mutual TLS and identity checks against a real coordinator process.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct SecurityTests {
    func client<T: Sendable>(_ tls: TLSFiles, _ target: HostPort,
                             _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
        try await withClient(tls, target, body)
    }

    @Test func anAgentCannotSpeakForAnotherNode() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.13")
        try await cluster.withCleanup() {
            try await cluster.startCoordinator()
            let nodeA = try cluster.pki.issue(.node, "a")
            do {
                _ = try await client(nodeA, cluster.coordinator) { client in
                    try await Specola_V1_AgentLink.Client(wrapping: client).register(.with { $0.nodeName = "b" })
                }
                Issue.record("register as another node must fail")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
                #expect(error.message.contains("node/a"))
                #expect(error.message.contains("'b'"))
            }
            try await waitUntil("the refusal in the coordinator log") {
                cluster.coordinatorProcess!.log.contains("refused report: certificate and claimed node differ")
            }
            // A node certificate may not use the operator API either.
            do {
                _ = try await client(nodeA, cluster.coordinator) { client in
                    try await Specola_V1_ClusterAPI.Client(wrapping: client).listNodes(.init())
                }
                Issue.record("a node certificate must not list nodes")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
            // Its own name is accepted.
            let response = try await client(nodeA, cluster.coordinator) { client in
                try await Specola_V1_AgentLink.Client(wrapping: client).register(.with { $0.nodeName = "a" })
            }
            #expect(response.coordinatorName == "c1")
            await cluster.shutdown()
        }
    }

    @Test func clientsWithoutACertificateFromThisCAAreRefused() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.14")
        try await cluster.startCoordinator()
        let address = cluster.coordinator.description
        let ca = cluster.admin.ca

        // TLS 1.2 makes the server's verdict part of the handshake, so openssl's exit code is deterministic.
        let bare = try await run("/usr/bin/openssl", ["s_client", "-tls1_2", "-connect", address, "-CAfile", ca])
        #expect(bare.status != 0)
        #expect(bare.stdout.contains("Verify return code: 0"))  // the server's certificate is fine...
        #expect(bare.stderr.contains("alert handshake failure"))  // ...but it demands ours

        // TLS 1.3 sends the refusal after the handshake; keep stdin open to read it.
        let bare13 = try await run("/bin/sh", ["-c", "sleep 1 | openssl s_client -connect \(address) -CAfile \(ca)"])
        #expect(bare13.stderr.contains("alert certificate required"))

        let foreignDir = try TempDir()
        defer { foreignDir.remove() }
        // Named exactly like ours: only its key tells it apart.
        let foreign = try TestPKI(in: foreignDir)
        #expect(try String(contentsOfFile: foreign.directory + "/ca.pem", encoding: .utf8) != String(contentsOfFile: ca, encoding: .utf8))
        let foreignSubject = try await run("/usr/bin/openssl", ["x509", "-noout", "-subject", "-in", foreign.directory + "/ca.pem"]).stdout
        let ourSubject = try await run("/usr/bin/openssl", ["x509", "-noout", "-subject", "-in", ca]).stdout
        #expect(foreignSubject == ourSubject && !ourSubject.isEmpty)
        let stranger = try foreign.issue(.user, "admin")
        let refused = try await run("/usr/bin/openssl", ["s_client", "-tls1_2", "-connect", address, "-CAfile", ca, "-cert", stranger.cert, "-key", stranger.key])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("sslv3 alert certificate unknown"), "\(refused.stderr)")

        let accepted = try await run("/usr/bin/openssl", ["s_client", "-tls1_2", "-connect", address, "-CAfile", ca, "-cert", cluster.admin.cert, "-key", cluster.admin.key])
        #expect(accepted.status == 0)
        #expect(accepted.stdout.contains("Verify return code: 0"))
        #expect(!accepted.stderr.contains("alert"))

        // From Swift: the foreign certificate fails, with the cluster CA as trust.
        let mixed = TLSFiles(ca: ca, cert: stranger.cert, key: stranger.key)
        do {
            _ = try await client(mixed, cluster.coordinator) { client in
                try await Specola_V1_ClusterAPI.Client(wrapping: client).status(.init())
            }
            Issue.record("a certificate of a foreign CA must be refused")
        } catch let error as RPCError {
            // The server's alert, not "nothing listening".
            #expect(error.code == .unavailable)
            #expect(String(describing: error.cause).contains("SSLV3_ALERT_CERTIFICATE_UNKNOWN"), "\(error)")
        }
        // From Swift, with TLS but no client certificate at all.
        let anonymous = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: cluster.coordinator.host, port: cluster.coordinator.port),
            transportSecurity: .tls { $0.trustRoots = .certificates([.file(path: ca, format: .pem)]) })
        do {
            _ = try await withGRPCClient(transport: anonymous) { client in
                try await Specola_V1_ClusterAPI.Client(wrapping: client).status(.init())
            }
            Issue.record("a client without a certificate must be refused")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
            #expect(String(describing: error.cause).contains("TLSV1_ALERT_CERTIFICATE_REQUIRED"), "\(error)")
        }
        // The CLI says what went wrong.
        var env = cluster.cliEnvironment
        env["SPECOLA_CLIENT_CERT"] = stranger.cert
        env["SPECOLA_CLIENT_KEY"] = stranger.key
        let cli = try await run(BuiltProducts.path("specola"), ["status"], environment: env)
        #expect(cli.status != 0)
        #expect(cli.stderr.contains("was not issued by the CA"))
        await cluster.shutdown()
    }

    @Test func garbageOnTheWireDoesNotHurtTheCoordinator() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.15")
        try await cluster.startCoordinator()
        for size in [1, 64, 70_000] {
            var bytes = [UInt8](repeating: 0, count: size)
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
            try sendRaw(bytes, to: cluster.coordinator)
        }
        // Garbage inside an authenticated TLS session reaches HTTP/2, not just the TLS layer.
        let ca = cluster.admin.ca, cert = cluster.admin.cert, key = cluster.admin.key
        let inside = try await run("/bin/sh", ["-c",
            "head -c 70000 /dev/urandom | openssl s_client -connect \(cluster.coordinator) -CAfile \(ca) -cert \(cert) -key \(key)"])
        #expect(inside.stdout.contains("Verify return code: 0 (ok)"), "\(inside.stdout)")
        #expect(!inside.stderr.contains("alert"), "\(inside.stderr)")
        // And a garbage message inside a well-formed gRPC call reaches the service's decoder.
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: cluster.coordinator.host, port: cluster.coordinator.port),
            transportSecurity: cluster.admin.clientSecurity(serverHost: cluster.coordinator.host))
        do {
            _ = try await withGRPCClient(transport: transport) { client in
                try await client.unary(
                    // Field 1 with wire type 7, which protobuf does not have, then noise.
                    request: ClientRequest(message: [0x0F] + (0..<511).map { _ in UInt8.random(in: 0...255) }),
                    descriptor: MethodDescriptor(fullyQualifiedService: "specola.v1.KV", method: "Put"),
                    serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
            }
            Issue.record("a garbage KV put must be refused")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "Can't deserialize to message of type Specola_V1_KvPutRequest.")
        }
        #expect(cluster.coordinatorProcess!.isRunning)
        let status = try await cluster.cli(["status"])
        #expect(status.status == 0)
        await cluster.shutdown()
    }

    /// Bytes as they are, to put what protobuf would never produce on the wire.
    struct RawBytes: MessageSerializer, MessageDeserializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
        func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
            serializedMessageBytes.withUnsafeBytes { Array($0) }
        }
    }

    func sendRaw(_ bytes: [UInt8], to target: HostPort) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(target.port).bigEndian
        inet_pton(AF_INET, target.host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TimedOut(what: "connect to \(target)") }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 256)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = recv(fd, &buffer, buffer.count, 0)
    }
}
