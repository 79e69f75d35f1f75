import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch

/// Who may be a node, and for how long: admission by an operator and the replicated deny list,
/// against a real coordinator and agent.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct NodeAdmissionTests {
    func listNodes(_ cluster: LocalCluster) async throws -> Specola_V1_ListNodesResponse {
        let result = try await cluster.cli(["nodes", "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_ListNodesResponse(jsonString: result.stdout)
    }

    /// A certificate alone does not make a member: the node waits until an operator accepts it,
    /// and then its labels are the operator's, not what its agent declares.
    @Test func aNewNodeWaitsForAcceptAndTakesTheOperatorsLabels() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.21", autoAccept: false)
        try await cluster.withCleanup {
            try await cluster.startCoordinator()
            try cluster.writeAgentConfig("a1", address: "127.0.0.23", rack: "declared")
            try cluster.startAgent("a1")
            try await waitUntil("the agent to be told to wait", explain: { await cluster.diagnosis() }) {
                cluster.agents["a1"]!.log.contains("node a1 waits for an operator: run `specola node accept a1` (or set nodes.autoAccept: true in the coordinator config)")
            }
            let waiting = try await listNodes(cluster)
            #expect(waiting.nodes.isEmpty)
            #expect(waiting.pending.map(\.name) == ["a1"])
            #expect(waiting.pending.first?.declaredLabels == ["rack": "declared"])
            let table = try await cluster.cli(["nodes"])
            #expect(table.stdout.contains("WAITING FOR ACCEPT"))

            let unknown = try await cluster.cli(["node", "accept", "nobody"])
            #expect(unknown.status == 8)
            #expect(unknown.stderr.contains("no node 'nobody' waits for acceptance (waiting: a1)"), "\(unknown.stderr)")

            let accept = try await cluster.cli(["node", "accept", "a1", "--label", "rack=r9"])
            #expect(accept.status == 0, "\(accept.stderr)")
            #expect(accept.stdout.contains("node a1 accepted; labels: rack=r9"))
            try await waitUntil("a1 to connect and report", explain: { await cluster.diagnosis() }) {
                guard let node = try await cluster.node("a1") else { return false }
                return node.reportsApplied >= 2 && node.shownStatus == "ready"
            }
            // Reports keep declaring rack=declared; the operator's labels stand.
            #expect(try await cluster.node("a1")?.facts.capacity.labels == ["rack": "r9"])
            let label = try await cluster.cli(["node", "label", "a1", "gpu=a100", "rack-"])
            #expect(label.status == 0, "\(label.stderr)")
            #expect(label.stdout.contains("node a1 labels: gpu=a100"))
            let reports = try await cluster.node("a1")?.reportsApplied ?? 0
            try await waitUntil("more reports after the label change") { (try await cluster.node("a1")?.reportsApplied ?? 0) > reports + 1 }
            #expect(try await cluster.node("a1")?.facts.capacity.labels == ["gpu": "a100"])
            #expect(try await listNodes(cluster).pending.isEmpty)
        }
    }

    /// Revoking an agent's certificate ends its open stream at once, and it cannot come back.
    @Test func aRevokedCertificateIsCutOffMidStreamAndCannotReconnect() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.22")
        try await cluster.withCleanup {
            try await cluster.startCoordinator()
            try cluster.writeAgentConfig("a2", address: "127.0.0.24")
            try cluster.startAgent("a2")
            try await waitUntil("a2 to connect and report", explain: { await cluster.diagnosis() }) {
                (try await cluster.node("a2")?.reportsApplied ?? 0) >= 2
            }
            let agent = cluster.agents["a2"]!
            let connections = agent.log.components(separatedBy: "connected to coordinator").count

            let certPath = "\(cluster.pki.directory)/node-a2.pem"
            let serialLine = try await run("/usr/bin/openssl", ["x509", "-noout", "-serial", "-in", certPath])
            let serial = String(serialLine.stdout.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst("serial=".count))
            #expect(!serial.isEmpty)

            let bad = try await cluster.cli(["pki", "revoke", "node-a2"])
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("is neither a certificate serial"), "\(bad.stderr)")

            let revoke = try await cluster.cli(["pki", "revoke", serial, "--reason", "stolen disk"])
            #expect(revoke.status == 0, "\(revoke.stderr)")
            let message = "was revoked by user/admin: stolen disk; ask an operator for a new certificate"
            try await waitUntil("the open stream to end with the revocation", explain: { await cluster.diagnosis() }) {
                agent.log.contains(message)
            }
            let reportsAtCut = try await cluster.node("a2")?.reportsApplied ?? 0
            try await Task.sleep(for: .seconds(4))
            #expect(agent.log.components(separatedBy: "connected to coordinator").count == connections, "the agent reconnected")
            #expect(try await cluster.node("a2")?.reportsApplied == reportsAtCut)

            // Any call with the certificate is refused, naming it.
            let tls = TLSFiles(ca: cluster.admin.ca, cert: certPath, key: "\(cluster.pki.directory)/node-a2-key.pem")
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: cluster.coordinator.host, port: cluster.coordinator.port),
                transportSecurity: tls.clientSecurity(serverHost: cluster.coordinator.host))
            let refused = await #expect(throws: RPCError.self) {
                try await withGRPCClient(transport: transport) { client in
                    _ = try await Specola_V1_KV.Client(wrapping: client).put(.with { $0.key = "nodes/a2/x"; $0.value = Data() })
                }
            }
            #expect(refused?.code == .permissionDenied)
            #expect(refused?.message.hasSuffix("(node/a2) \(message)") == true, "\(refused?.message ?? "")")
        }
    }
}
