import CooperativePoolWatch
import Foundation
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaCoordinator
import SpecolaDaemon

/// `oidc:` in the coordinator config: defaults, and the mistakes it stops at start-up.
@Suite(.watchesCooperativePool) struct OIDCConfigTests {
    func load(_ oidc: String) throws -> CoordinatorConfig {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("coordinator.yaml", """
            name: c1
            listen: 10.0.0.11:7450
            tls: {ca: a, cert: b, key: c}
            \(oidc)
            """)
        return try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
    }

    @Test func defaults() throws {
        #expect(try load("").oidc == nil, "without oidc: only certificates")
        let oidc = try #require(try load("oidc: {issuer: https://iam.example.org/, audience: specola}").oidc)
        #expect(oidc.listen == nil, "the coordinator puts it on listen's host, port 7451")
        #expect(oidc.settings.usernameClaim == nil)
        #expect(oidc.settings.groupsClaim == "groups")
        #expect(oidc.settings.clockSkew == .seconds(60))
        #expect(oidc.settings.keyRefreshInterval == .seconds(30))
        let set = try #require(try load("oidc: {listen: 10.0.0.11:8443, issuer: https://iam.example.org/, audience: specola, usernameClaim: sub, groupsClaim: wlcg.groups, clockSkew: 5}").oidc)
        #expect(set.listen == HostPort(host: "10.0.0.11", port: 8443))
        #expect(set.settings.usernameClaim == "sub")
        #expect(set.settings.groupsClaim == "wlcg.groups")
        #expect(set.settings.clockSkew == .seconds(5))
    }

    @Test func mistakesStopTheStart() {
        let cases: [(String, String)] = [
            ("oidc: {issuer: http://iam.example.org/, audience: specola}", "must be https"),
            ("oidc: {issuer: iam.example.org, audience: specola}", "is not an issuer URL"),
            ("oidc: {issuer: https://iam.example.org/, audience: specola, clockSkew: 3600}", "between 0 and 300 seconds"),
            ("oidc: {issuer: https://iam.example.org/, audience: ''}", "must name the audience"),
            ("oidc: {issuer: https://iam.example.org/}", "audience"),
            ("oidc: {issuer: https://iam.example.org/, audience: specola, groups: x}", "unknown field"),
        ]
        for (text, expected) in cases {
            do {
                _ = try load(text)
                Issue.record("\(text) must be refused")
            } catch {
                #expect("\(error)".contains(expected), "\(text): \(error)")
            }
        }
        // Plain http only for a provider on loopback (tests).
        #expect((try? load("oidc: {issuer: http://127.0.2.51:9600, audience: specola}"))?.oidc != nil)
    }
}
