import Foundation
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch

/// The README's CA rotation, step by step, against a running coordinator and agent.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct CertificateRotationTests {
    /// Replaces `path` in one step, as an operator's `install` or `mv` would.
    func install(_ text: String, at path: String) throws {
        let temporary = path + ".new"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// The issuer of the certificate the coordinator serves now, as openssl sees it.
    func servedIssuer(_ cluster: LocalCluster, trusting ca: String) async throws -> String {
        let shown = try await run("/bin/sh", ["-c",
            "openssl s_client -connect \(cluster.coordinator) -CAfile \(ca) -cert \(cluster.admin.cert) -key \(cluster.admin.key) </dev/null 2>/dev/null | openssl x509 -noout -issuer"])
        return shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aCARotationKeepsTheClusterServing() async throws {
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.25")
        try await cluster.withCleanup {
            try await cluster.startCoordinator()
            try cluster.writeAgentConfig("a3", address: "127.0.0.26")
            try cluster.startAgent("a3")
            try await waitUntil("a3 to connect and report", explain: { await cluster.diagnosis() }) {
                (try await cluster.node("a3")?.reportsApplied ?? 0) >= 2
            }
            let agent = cluster.agents["a3"]!
            let connections = agent.log.components(separatedBy: "connected to coordinator").count
            let old = cluster.pki.directory
            let oldAdmin = (cert: try read(cluster.admin.cert), key: try read(cluster.admin.key))
            #expect(try await servedIssuer(cluster, trusting: "\(old)/ca.pem") == "issuer=O = specola, CN = test-ca-pki")

            // 1. A new CA.
            let newDir = cluster.dir.file("pki-new")
            let created = try await run(BuiltProducts.path("specola"), ["pki", "init", "--dir", newDir, "--name", "specola-ca-2"])
            #expect(created.status == 0, "\(created.stderr)")

            // 2. Every process trusts both.
            try install(try read("\(old)/ca.pem") + read("\(newDir)/ca.pem"), at: "\(old)/ca.pem")
            #expect(try await cluster.cli(["status"]).status == 0)

            // 3. Re-issue each certificate from the new CA and install it over the old one, key first.
            let reissued: [(role: String, name: String, san: String?)] = [
                ("coordinator", "c1", cluster.coordinator.host), ("node", "a3", "127.0.0.26"), ("user", "admin", nil),
            ]
            for (role, name, san) in reissued {
                let issued = try await run(BuiltProducts.path("specola"),
                                           ["pki", "issue", "--dir", newDir, "--role", role, "--name", name] + (san.map { ["--san", $0] } ?? []))
                #expect(issued.status == 0, "\(issued.stderr)")
                try install(try read("\(newDir)/\(role)-\(name)-key.pem"), at: "\(old)/\(role)-\(name)-key.pem")
                try install(try read("\(newDir)/\(role)-\(name).pem"), at: "\(old)/\(role)-\(name).pem")
            }
            try await waitUntil("the coordinator to serve its new certificate", timeout: .seconds(20)) {
                try await servedIssuer(cluster, trusting: "\(old)/ca.pem") == "issuer=O = specola, CN = specola-ca-2"
            }
            try await waitUntil("the agent to reload its certificate", timeout: .seconds(20)) {
                agent.log.contains("reloaded this process's certificate")
            }
            #expect(cluster.coordinatorProcess!.log.contains("reloaded this process's certificate"))

            // 4. Drop the old CA.
            try install(try read("\(newDir)/ca.pem"), at: "\(old)/ca.pem")
            let status = try await cluster.cli(["status"])
            #expect(status.status == 0, "\(status.stderr)")
            let reports = try await cluster.node("a3")?.reportsApplied ?? 0
            try await waitUntil("a3 to keep reporting") { (try await cluster.node("a3")?.reportsApplied ?? 0) > reports + 1 }

            // No downtime: the agent's stream was never broken.
            #expect(agent.log.components(separatedBy: "connected to coordinator").count == connections)
            #expect(!agent.log.contains("coordinator link down"), "\(agent.log)")
            // The old CA's certificates are refused from now on.
            let stale = cluster.dir.file("old-admin.pem")
            let staleKey = cluster.dir.file("old-admin-key.pem")
            try oldAdmin.cert.write(toFile: stale, atomically: true, encoding: .utf8)
            try oldAdmin.key.write(toFile: staleKey, atomically: true, encoding: .utf8)
            var env = cluster.cliEnvironment
            env["SPECOLA_CLIENT_CERT"] = stale
            env["SPECOLA_CLIENT_KEY"] = staleKey
            let refused = try await run(BuiltProducts.path("specola"), ["status"], environment: env)
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("was not issued by the CA in \(old)/ca.pem"), "\(refused.stderr)")
        }
    }
}
