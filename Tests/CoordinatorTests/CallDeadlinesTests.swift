import CooperativePoolWatch
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCProtobuf
import SpecolaProtocol
import Synchronization
import Testing
import TestSupport
@testable import SpecolaCoordinator

/// Deadlines enforced by one shared timer instead of grpc's timer per call: a call is cancelled
/// once its deadline passes, a call that ended is not, and grpc itself never sees the deadline.
@Suite(.watchesCooperativePool) struct CallDeadlinesTests {
    typealias Handle = ServerContext.RPCCancellationHandle

    @Test func timeoutValues() {
        #expect(CallDeadlines.duration(ofTimeout: "100m") == .milliseconds(100))
        #expect(CallDeadlines.duration(ofTimeout: "5S") == .seconds(5))
        #expect(CallDeadlines.duration(ofTimeout: "2M") == .seconds(120))
        #expect(CallDeadlines.duration(ofTimeout: "1H") == .seconds(3600))
        #expect(CallDeadlines.duration(ofTimeout: "12345678u") == .microseconds(12_345_678))
        #expect(CallDeadlines.duration(ofTimeout: "7n") == .nanoseconds(7))
        for malformed in ["", "m", "5", "123456789m", "+5m", "-5m", "5x", "5 m"] {
            #expect(CallDeadlines.duration(ofTimeout: malformed) == nil, "\(malformed)")
        }
    }

    @Test func aPassedDeadlineCancelsItsCallAndAnEndedCallIsLeftAlone() async throws {
        let deadlines = CallDeadlines(slack: .milliseconds(5))
        let (far, ended, later) = (Handle(), Handle(), Handle())
        let (farCall, endedCall, laterCall) = (deadlines.newCall(), deadlines.newCall(), deadlines.newCall())
        deadlines.start(farCall, after: .seconds(60), cancelling: far)
        deadlines.start(endedCall, after: .milliseconds(100), cancelling: ended)
        deadlines.start(laterCall, after: .milliseconds(200), cancelling: later)
        deadlines.end(endedCall)
        try await waitUntil("the 200 ms deadline cancels its call", timeout: .seconds(10), every: .milliseconds(5)) { later.isCancelled }
        // Had the ended call still been watched, the same pass would have cancelled it (its deadline is earlier).
        #expect(!ended.isCancelled)
        #expect(!far.isCancelled)
        #expect(deadlines.watched == 1)
        deadlines.end(farCall)
        #expect(deadlines.watched == 0)
    }

    @Test func anEarlierDeadlineSetsTheTimerAnew() async throws {
        let deadlines = CallDeadlines()
        let (far, near) = (Handle(), Handle())
        deadlines.start(deadlines.newCall(), after: .seconds(60), cancelling: far)
        deadlines.start(deadlines.newCall(), after: .milliseconds(50), cancelling: near)
        try await waitUntil("the 50 ms deadline cancels its call, not after the 60 s one", timeout: .seconds(10), every: .milliseconds(5)) { near.isCancelled }
        #expect(!far.isCancelled)
    }

    /// Answers with what the handler saw: whether `grpc-timeout` reached it, and whether the call
    /// was cancelled within 10 s (only when asked to wait).
    struct DeadlineProbe: RegistrableRPCService {
        static let method = MethodDescriptor(fullyQualifiedService: "specola.test.Probe", method: "Deadline")

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Self.method, deserializer: ProtobufDeserializer<Specola_V1_WhoAmIRequest>(),
                serializer: ProtobufSerializer<Specola_V1_WhoAmIResponse>()
            ) { request, context in
                let sawTimeout = request.metadata[stringValues: CallDeadlines.header].first(where: { _ in true }) != nil
                var cancelled = false
                if request.metadata[stringValues: "wait"].first(where: { _ in true }) != nil {
                    let clock = ContinuousClock()
                    let giveUp = clock.now + .seconds(10)
                    while !context.cancellation.isCancelled && clock.now < giveUp {
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    cancelled = context.cancellation.isCancelled
                }
                return StreamingServerResponse(single: ServerResponse(message: .with {
                    $0.name = "timeout-seen=\(sawTimeout) cancelled=\(cancelled)"
                }))
            }
        }
    }

    @Test func aServerCallIsCancelledAtItsDeadlineWithoutGrpcSeeingIt() async throws {
        let deadlines = CallDeadlines()
        let transport = InProcessTransport()
        let server = GRPCServer(transport: SharedDeadlineTransport(transport.server, deadlines: deadlines), services: [DeadlineProbe()])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            try await withGRPCClient(transport: transport.client) { client in
                // The deadline is sent as metadata, so the client does not cancel the call itself.
                func call(_ metadata: Metadata) async throws -> String {
                    try await client.unary(
                        request: ClientRequest(message: Specola_V1_WhoAmIRequest(), metadata: metadata), descriptor: DeadlineProbe.method,
                        serializer: ProtobufSerializer<Specola_V1_WhoAmIRequest>(),
                        deserializer: ProtobufDeserializer<Specola_V1_WhoAmIResponse>(), options: .defaults
                    ) { try $0.message.name }
                }
                #expect(try await call([CallDeadlines.header: "200m", "wait": "yes"]) == "timeout-seen=false cancelled=true")
                #expect(try await call([CallDeadlines.header: "30S"]) == "timeout-seen=false cancelled=false")
                #expect(try await call(["other": "value"]) == "timeout-seen=false cancelled=false")
                try await waitUntil("finished calls leave no deadline behind", timeout: .seconds(10), every: .milliseconds(5)) { deadlines.watched == 0 }
            }
        }
    }
}
