import Foundation
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaCoordinator

/// The example config in packaging/ must load, so it cannot drift from the code.
@Suite struct PackagedConfigTests {
    @Test func exampleCoordinatorConfigLoads() throws {
        // The example names /etc/specola/bmc-password; point it at a temp file with a password in it.
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("bmc-password", "s3cret\n")
        let text = try String(contentsOfFile: BuiltProducts.repositoryRoot + "/packaging/coordinator.yaml", encoding: .utf8)
            .replacingOccurrences(of: "/etc/specola/bmc-password", with: dir.file("bmc-password"))
        try dir.write("coordinator.yaml", text)
        let config = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
        #expect(config.name == "c1")
        #expect(config.peers.map(\.id) == [1, 2, 3])
        #expect(config.raft.tickMs == 30)
        #expect(config.downAfter > config.suspectAfter)
        #expect(config.fencing.bmc?.password == "s3cret")
        #expect(config.fencing.bmcAddresses["node1"] == HostPort(host: "10.0.1.1", port: 623))
        #expect(config.healthPolicy.selfFenceAfterMs == 20_000)
    }

    @Test func anUnreadableBMCPasswordFileIsAClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("coordinator.yaml", """
            name: c1
            listen: 127.0.0.1:7450
            tls: {ca: a, cert: b, key: c}
            fencing:
              bmc: {user: admin, passwordFile: /nonexistent/bmc-password}
            """)
        #expect(throws: (any Error).self) { try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml")) }
        do {
            _ = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
        } catch {
            #expect("\(error)".contains("coordinator.yaml:5:"), "\(error)")
            #expect("\(error)".contains("cannot read /nonexistent/bmc-password"), "\(error)")
        }
    }
}
