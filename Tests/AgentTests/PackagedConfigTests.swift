import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch
import SpecolaDaemon

/// The example config in packaging/ must load, so it cannot drift from the code.
@Suite(.watchesCooperativePool) struct PackagedAgentConfigTests {
    @Test func exampleAgentConfigLoads() throws {
        let config = try ConfigFile.load(AgentConfig.self, path: BuiltProducts.repositoryRoot + "/packaging/agent.yaml")
        #expect(!config.coordinators.isEmpty)
        #expect(config.heartbeatInterval > 0)
        #expect(config.tasks.mountPrefixes == ["/srv/archive"] && !config.tasks.exec.enabled && config.tasks.containerUser == "65534:65534")
    }
}
