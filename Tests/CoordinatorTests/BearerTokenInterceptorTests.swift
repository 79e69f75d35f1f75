import CooperativePoolWatch
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCProtobuf
import Logging
import SpecolaOIDC
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// The interceptor through a real gRPC server and client (in-process transport, so no client
/// certificate): the principal a token names reaches unary handlers and streaming producers.
/// The verifier is a stand-in behind `TokenVerifying`; the real `OIDCVerifier` is exercised
/// against LemonLDAP::NG in ProcessTests/OIDCSignInTests.
@Suite(.watchesCooperativePool) struct BearerTokenInterceptorTests {
    struct KnownTokens: TokenVerifying {
        func verify(_ token: String) async throws(OIDCError) -> VerifiedToken {
            switch token {
            case "token-dwho":
                return VerifiedToken(username: "dwho", groups: ["users", "timelords"], issuer: "https://iam.example.org", expiresAt: .distantFuture)
            case "token-short":
                // Accepted for two seconds from now (a hogged machine takes over half a second to open the stream), as a token near its expiry is.
                return VerifiedToken(username: "dwho", groups: [], issuer: "https://iam.example.org", expiresAt: Date(),
                                     acceptedUntil: Date().addingTimeInterval(2))
            case "token-expired":
                throw OIDCError(.expired, "the token expired at 2026-01-01T00:00:00Z; run `specola login` again")
            default:
                throw OIDCError(.malformed, "the bearer token is not a signed JWT")
            }
        }
    }

    /// A server stream whose producer reports the caller it sees, twice.
    struct StreamingProbe: RegistrableRPCService {
        static let method = MethodDescriptor(fullyQualifiedService: "specola.test.Probe", method: "Watch")

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Self.method, deserializer: ProtobufDeserializer<Specola_V1_WhoAmIRequest>(),
                serializer: ProtobufSerializer<Specola_V1_WhoAmIResponse>()
            ) { _, context in
                StreamingServerResponse { writer in
                    for _ in 0..<2 {
                        let principal = try CallerIdentity.principal(context)
                        try await writer.write(.with { $0.name = principal.name; $0.groups = principal.groups })
                        await Task.yield()
                    }
                    return [:]
                }
            }
        }
    }

    /// A stream that writes until the client or the server ends it (as a watch would), and a unary
    /// call that waits 30 s before answering (as a long poll does).
    struct EndlessProbe: RegistrableRPCService {
        static let watch = MethodDescriptor(fullyQualifiedService: "specola.test.Probe", method: "WatchForever")
        static let poll = MethodDescriptor(fullyQualifiedService: "specola.test.Probe", method: "LongPoll")

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Self.watch, deserializer: ProtobufDeserializer<Specola_V1_WhoAmIRequest>(),
                serializer: ProtobufSerializer<Specola_V1_WhoAmIResponse>()
            ) { _, context in
                StreamingServerResponse { writer in
                    while true {
                        try await writer.write(.with { $0.name = (try? CallerIdentity.principal(context).name) ?? "" })
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            router.registerHandler(
                forMethod: Self.poll, deserializer: ProtobufDeserializer<Specola_V1_WhoAmIRequest>(),
                serializer: ProtobufSerializer<Specola_V1_WhoAmIResponse>()
            ) { _, _ in
                try await Task.sleep(for: .seconds(30))
                return StreamingServerResponse(single: ServerResponse(message: Specola_V1_WhoAmIResponse()))
            }
        }
    }

    /// A unary method that answers with the caller it sees, as `specola whoami` does.
    struct UnaryProbe: RegistrableRPCService {
        static let method = MethodDescriptor(fullyQualifiedService: "specola.test.Probe", method: "WhoAmI")

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Self.method, deserializer: ProtobufDeserializer<Specola_V1_WhoAmIRequest>(),
                serializer: ProtobufSerializer<Specola_V1_WhoAmIResponse>()
            ) { _, context in
                let principal = try CallerIdentity.principal(context)
                return StreamingServerResponse(single: ServerResponse(message: Specola_V1_WhoAmIResponse.with {
                    $0.kind = principal.kind.rawValue
                    $0.name = principal.name
                    $0.groups = principal.groups
                    if case .token(let issuer) = principal.proof {
                        $0.proof = "token"
                        $0.issuer = issuer
                    } else {
                        $0.proof = "certificate"
                    }
                }))
            }
        }
    }

    static func whoAmI(_ client: GRPCClient<InProcessTransport.Client>, metadata: Metadata) async throws -> Specola_V1_WhoAmIResponse {
        try await call(client, UnaryProbe.method, metadata: metadata)
    }

    static func call(_ client: GRPCClient<InProcessTransport.Client>, _ method: MethodDescriptor,
                     metadata: Metadata) async throws -> Specola_V1_WhoAmIResponse {
        try await client.unary(
            request: ClientRequest(message: Specola_V1_WhoAmIRequest(), metadata: metadata), descriptor: method,
            serializer: ProtobufSerializer<Specola_V1_WhoAmIRequest>(), deserializer: ProtobufDeserializer<Specola_V1_WhoAmIResponse>(),
            options: .defaults
        ) { try $0.message }
    }

    func withServer<T: Sendable>(
        verifier: (any TokenVerifying)?, _ body: @escaping @Sendable (GRPCClient<InProcessTransport.Client>) async throws -> T
    ) async throws -> T {
        let transport = InProcessTransport()
        let server = GRPCServer(
            transport: transport.server, services: [UnaryProbe(), StreamingProbe(), EndlessProbe()],
            interceptors: [BearerTokenInterceptor(verifier: verifier, logger: Logger(label: "test"))])
        return try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            return try await withGRPCClient(transport: transport.client) { client in try await body(client) }
        }
    }

    static func bearer(_ token: String) -> Metadata { ["authorization": "Bearer \(token)"] }

    @Test func aTokenPrincipalReachesUnaryHandlers() async throws {
        let answer = try await withServer(verifier: KnownTokens()) { client in
            try await Self.whoAmI(client, metadata: Self.bearer("token-dwho"))
        }
        #expect(answer.kind == "user")
        #expect(answer.name == "dwho")
        #expect(answer.groups == ["users", "timelords"])
        #expect(answer.proof == "token")
        #expect(answer.issuer == "https://iam.example.org")
    }

    @Test func aTokenPrincipalReachesStreamingProducers() async throws {
        let names = try await withServer(verifier: KnownTokens()) { client in
            try await client.serverStreaming(
                request: ClientRequest(message: Specola_V1_WhoAmIRequest(), metadata: Self.bearer("token-dwho")),
                descriptor: StreamingProbe.method, serializer: ProtobufSerializer<Specola_V1_WhoAmIRequest>(),
                deserializer: ProtobufDeserializer<Specola_V1_WhoAmIResponse>(), options: .defaults
            ) { response in
                var names: [String] = []
                for try await message in response.messages { names.append("\(message.name):\(message.groups.joined(separator: ","))") }
                return names
            }
        }
        #expect(names == ["dwho:users,timelords", "dwho:users,timelords"])
    }

    /// A stream or long poll opened with a token ends with UNAUTHENTICATED when the token does.
    @Test func callsOutlivingTheirTokenAreCutWhenItExpires() async throws {
        let start = ContinuousClock.now
        let (received, streamError) = try await withServer(verifier: KnownTokens()) { client in
            try await client.serverStreaming(
                request: ClientRequest(message: Specola_V1_WhoAmIRequest(), metadata: Self.bearer("token-short")),
                descriptor: EndlessProbe.watch, serializer: ProtobufSerializer<Specola_V1_WhoAmIRequest>(),
                deserializer: ProtobufDeserializer<Specola_V1_WhoAmIResponse>(), options: .defaults
            ) { response in
                var received = 0
                do {
                    for try await message in response.messages where message.name == "dwho" { received += 1 }
                    return (received, nil as RPCError?)
                } catch let error as RPCError {
                    return (received, error)
                }
            }
        }
        #expect(received > 0, "the stream ran while the token was accepted")
        #expect(streamError?.code == .unauthenticated && streamError?.message == "token expired, run specola login", "\(String(describing: streamError))")
        #expect(ContinuousClock.now - start < .seconds(25), "cut at expiry, not left running")

        let pollStart = ContinuousClock.now
        await expectRefusal(verifier: KnownTokens(), method: EndlessProbe.poll, metadata: Self.bearer("token-short"), code: .unauthenticated,
                            saying: "token expired, run specola login")
        #expect(ContinuousClock.now - pollStart < .seconds(25), "cut at expiry, not after the 30 s poll")
    }

    @Test func refusals() async throws {
        // Neither a certificate nor a token.
        await expectRefusal(verifier: KnownTokens(), metadata: [:], code: .unauthenticated, saying: "no client certificate and no bearer token")
        await expectRefusal(verifier: KnownTokens(), metadata: Self.bearer("token-expired"), code: .unauthenticated, saying: "bearer token refused: the token expired")
        await expectRefusal(verifier: KnownTokens(), metadata: Self.bearer("garbage"), code: .unauthenticated, saying: "not a signed JWT")
        await expectRefusal(verifier: KnownTokens(), metadata: ["authorization": "Basic ZHdobzpkd2hv"], code: .unauthenticated, saying: "is not `Bearer TOKEN`")
        // A coordinator without oidc: takes no tokens at all.
        await expectRefusal(verifier: nil, metadata: Self.bearer("token-dwho"), code: .unauthenticated, saying: "accepts no bearer tokens")
    }

    func expectRefusal(verifier: (any TokenVerifying)?, method: MethodDescriptor = UnaryProbe.method, metadata: Metadata,
                       code: RPCError.Code, saying text: String) async {
        do {
            let answer = try await withServer(verifier: verifier) { client in
                try await Self.call(client, method, metadata: metadata)
            }
            Issue.record("expected a refusal, got \(answer)")
        } catch let error as RPCError {
            #expect(error.code == code)
            #expect(error.message.contains(text), "\(error.message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
