import Foundation
import SpecolaProtocol
import Testing
import X509
import CooperativePoolWatch

/// The client's check of the server it dialled, on certificates issued by `PKI`.
@Suite(.runsOffThePool, .watchesCooperativePool) struct CoordinatorServerCheckTests {
    let dir: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("specola-check-\(UUID().uuidString)").path
        try PKI.initCA(directory: dir)
    }

    func certificate(_ path: String) throws -> Certificate {
        try Certificate(pemEncoded: String(contentsOfFile: path, encoding: .utf8))
    }

    func verify(_ certPath: String, ca: String? = nil, host: String = "127.0.0.5") async throws -> Result<String, ServerRefusal> {
        let check = CoordinatorServerCheck(caPath: ca ?? "\(dir)/ca.pem", serverHost: host)
        return await check.verify(presented: [try certificate(certPath)]).map { $0.0.description }
    }

    @Test func aCoordinatorNamingTheHostIsAccepted() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try PKI.issue(directory: dir, role: .coordinator, name: "c1", sans: ["127.0.0.5"])
        #expect(try await verify(paths.certPath).get() == "coordinator/c1")
    }

    @Test(arguments: [CertificateRole.node, .user])
    func anotherRoleIsRefusedByName(role: CertificateRole) async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try PKI.issue(directory: dir, role: role, name: "x", sans: ["127.0.0.5"])
        let result = try await verify(paths.certPath)
        guard case .failure(let refusal) = result else { Issue.record("\(role) accepted as a server"); return }
        #expect(refusal.description == "refused the server at 127.0.0.5: it presents \(role.rawValue)/x, not a coordinator certificate; only coordinators serve, so check --addr or the agent's coordinators list")
    }

    @Test func aCoordinatorForAnotherHostIsRefused() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try PKI.issue(directory: dir, role: .coordinator, name: "c1", sans: ["127.0.0.6"])
        guard case .failure(let refusal) = try await verify(paths.certPath) else { Issue.record("wrong host accepted"); return }
        #expect(refusal.reason.contains("does not verify against the CA"))
    }

    /// Same CA name, same subject, same role: only the key differs, and that is what must count.
    @Test func aForeignCANamedLikeOursIsRefused() async throws {
        let foreignDir = dir + "-foreign"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: foreignDir)
        }
        try PKI.initCA(directory: foreignDir)
        let ours = try certificate("\(dir)/ca.pem")
        let theirs = try certificate("\(foreignDir)/ca.pem")
        #expect(ours.subject == theirs.subject)
        let forged = try PKI.issue(directory: foreignDir, role: .coordinator, name: "c1", sans: ["127.0.0.5"])
        guard case .failure(let refusal) = try await verify(forged.certPath) else { Issue.record("foreign CA accepted"); return }
        #expect(refusal.reason.contains("does not verify against the CA in \(dir)/ca.pem"), "\(refusal.reason)")
    }

    /// During a rotation the CA file holds the old and the new CA; both issue valid servers.
    @Test func aCABundleTrustsEveryCAInIt() async throws {
        let newDir = dir + "-new"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: newDir)
        }
        try PKI.initCA(directory: newDir, commonName: "specola-ca-2")
        let bundle = "\(dir)/bundle.pem"
        let text = try String(contentsOfFile: "\(dir)/ca.pem", encoding: .utf8) + String(contentsOfFile: "\(newDir)/ca.pem", encoding: .utf8)
        try text.write(toFile: bundle, atomically: true, encoding: .utf8)
        #expect(try CertificateBundle.load(path: bundle).count == 2)
        let old = try PKI.issue(directory: dir, role: .coordinator, name: "c1", sans: ["127.0.0.5"])
        let new = try PKI.issue(directory: newDir, role: .coordinator, name: "c2", sans: ["127.0.0.5"])
        #expect(try await verify(old.certPath, ca: bundle).get() == "coordinator/c1")
        #expect(try await verify(new.certPath, ca: bundle).get() == "coordinator/c2")
        // The TLS files of a process accept a leaf from either CA in the bundle.
        #expect(try TLSFiles(ca: bundle, cert: new.certPath, key: new.keyPath).validate().description == "coordinator/c2")
    }
}
