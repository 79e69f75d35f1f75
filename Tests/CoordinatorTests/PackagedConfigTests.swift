import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaCoordinator

/// The example config in packaging/ must load, so it cannot drift from the code.
@Suite struct PackagedConfigTests {
    @Test func exampleCoordinatorConfigLoads() throws {
        let config = try ConfigFile.load(CoordinatorConfig.self, path: BuiltProducts.repositoryRoot + "/packaging/coordinator.yaml")
        #expect(config.name == "c1")
        #expect(config.peers.map(\.id) == [1, 2, 3])
        #expect(config.raft.tickMs == 30)
        #expect(config.downAfter > config.suspectAfter)
    }
}
