import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaCoordinator

@Suite struct StateStoreTests {
    @Test func stateSurvivesReopeningTheDatabase() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let registry = try Registry(store: StateStore(path: dir.file("state.sqlite")), thresholds: .init(), logger: Logger(label: "t"))
            _ = try await registry.execute(.registerNode(name: "a", address: "x", agentVersion: "v", labels: ["rack": "r1"], atUnixMs: 5))
            _ = try await registry.execute(.applyReport(node: "a", report: .with { $0.seq = 1; $0.full = true; $0.facts.capacity.cpuCores = 8 }, receivedAtUnixMs: 6))
        }
        let reopened = try StateStore(path: dir.file("state.sqlite")).loadState()
        #expect(reopened.nodes["a"]?.lastAppliedSeq == 1)
        #expect(reopened.nodes["a"]?.facts.capacity.cpuCores == 8)
    }

    @Test func aCorruptedDatabaseGivesAClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("state.sqlite", String(repeating: "garbage, not sqlite ", count: 500))
        do {
            _ = try StateStore(path: dir.file("state.sqlite"))
            Issue.record("a corrupted file must not open")
        } catch {
            let text = "\(error)"
            #expect(text.contains(dir.file("state.sqlite")))
            #expect(text.contains("corrupted"))
        }
    }
}
