import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import SpecolaRaft
import TestSupport
import Testing
import CooperativePoolWatch

/// What a certificate lets its holder do, tried against real processes over real TLS:
/// only coordinators serve, a node reaches only its own KV prefix, Raft hears only members.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct IdentityBoundaryTests {
    /// A node's certificate, issued by our CA and naming the address, still cannot pose as a coordinator:
    /// the CLI and the agent hang up and say why.
    @Test func clientsRefuseAServerWithANodeCertificate() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.16")
        try await cluster.withCleanup {
            let host = "127.0.0.17"
            let rogueTLS = try cluster.pki.issue(.node, "rogue", sans: [host])
            let rogue = GRPCServer(
                transport: try HTTP2ServerTransport.Posix(
                    address: .ipv4(host: host, port: 0), transportSecurity: rogueTLS.serverSecurity),
                services: [])
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await rogue.serve() }
                defer { rogue.beginGracefulShutdown() }
                guard let address = try await rogue.listeningAddress?.ipv4 else {
                    Issue.record("the rogue server does not listen")
                    return
                }
                let endpoint = HostPort(host: host, port: address.port)

                var env = cluster.cliEnvironment
                env["SPECOLA_ADDR"] = endpoint.description
                let cli = try await run(BuiltProducts.path("specola"), ["status"], environment: env)
                #expect(cli.status == 5)
                #expect(cli.stderr.contains("refused the server at \(host): it presents node/rogue, not a coordinator certificate"),
                        "stderr: \(cli.stderr)")

                try cluster.writeAgentConfig("a1", address: "127.0.0.18", coordinatorAddress: endpoint)
                try cluster.startAgent("a1")
                try await waitUntil("the agent to refuse the rogue server", explain: { await cluster.diagnosis() }) {
                    let log = cluster.agents["a1"]!.log
                    return log.contains("refused the coordinator's certificate")
                        && log.contains("it presents node/rogue, not a coordinator certificate")
                }
                #expect(!cluster.agents["a1"]!.log.contains("connected to coordinator"))
            }
        }
    }

    /// Step outputs feed later tasks' environment, so a node must not write them (the coordinator
    /// does, from the task's event); a node's own prefix stays usable.
    @Test func aNodeCertificateReachesOnlyItsOwnKVPrefix() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.19")
        try await cluster.withCleanup {
            try await cluster.startCoordinator()
            let node1 = try cluster.pki.issue(.node, "node1")
            let kv = { @Sendable (body: @escaping @Sendable (Specola_V1_KV.Client<HTTP2ClientTransport.Posix>) async throws -> Void) in
                try await withClient(node1, cluster.coordinator) { try await body(Specola_V1_KV.Client(wrapping: $0)) }
            }
            let refused = await #expect(throws: RPCError.self) {
                try await kv { _ = try await $0.put(.with { $0.key = "jobs/other/outputs/step/0/x"; $0.value = Data("evil".utf8) }) }
            }
            #expect(refused?.code == .permissionDenied)
            #expect(refused?.message == "node/node1 may only use KV keys under 'nodes/node1/'; key 'jobs/other/outputs/step/0/x' is outside it")

            let otherNode = await #expect(throws: RPCError.self) {
                try await kv { _ = try await $0.delete(.with { $0.key = "nodes/node2/state" }) }
            }
            #expect(otherNode?.code == .permissionDenied)
            let listing = await #expect(throws: RPCError.self) {
                try await kv { _ = try await $0.list(.with { $0.prefix = "" }) }
            }
            #expect(listing?.code == .permissionDenied)
            #expect(listing?.message.contains("list prefix '' is outside it") == true)

            try await kv { _ = try await $0.put(.with { $0.key = "nodes/node1/state"; $0.value = Data("ok".utf8) }) }
            let got = try await withClient(cluster.admin, cluster.coordinator) {
                try await Specola_V1_KV.Client(wrapping: $0).get(.with { $0.key = "jobs/other/outputs/step/0/x" })
            }
            #expect(!got.found)
        }
    }

    /// A replica certificate of our CA for a replica id the group does not have is refused,
    /// so it cannot depose the leader with a higher term.
    @Test func raftRefusesASenderIdThatIsNotAMember() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.20")
        try await cluster.withCleanup {
            try await cluster.startCoordinator()
            let stranger = try cluster.pki.issue(.coordinator, "c9")
            let takeover = Message(from: 9, to: 1, term: 1_000, payload: .heartbeat(commit: 0, context: []))
            let refused = await #expect(throws: RPCError.self) {
                try await withClient(stranger, cluster.coordinator) {
                    _ = try await Specola_V1_RaftPeer.Client(wrapping: $0).deliver(.with {
                        $0.fromID = 9
                        $0.messages = [Data(takeover.wireBytes())]
                    })
                }
            }
            #expect(refused?.code == .permissionDenied)
            #expect(refused?.message.hasPrefix("coordinator/c9 may not send as replica 9: replica id 9 is not a member of this group (members: 1 (c1))") == true,
                    "\(refused?.message ?? "")")
            // Still the leader: the heartbeat at term 1000 was never stepped.
            let put = try await cluster.cli(["kv", "put", "still/leader", "yes"])
            #expect(put.status == 0, "\(put.stderr)")
            #expect(cluster.coordinatorProcess!.log.contains("refused Raft traffic"))
        }
    }
}
