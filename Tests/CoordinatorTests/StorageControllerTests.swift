import Foundation
import Logging
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// The storage loop's shell on an in-memory log: what a pass commits, what the hub sends, and
/// operators' requests. The cluster is `StorageFixture`'s (shared with the planner's tests),
/// reported through the log as agents would.
@Suite(.watchesCooperativePool) struct StorageControllerTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let gv0 = ["gv0": [["n1", "n2", "n3"]]]

    /// A log holding `cluster`'s nodes, each just reported.
    static func log(_ cluster: StorageFixture) async throws -> InMemoryClusterLog {
        let log = InMemoryClusterLog(thresholds: .init(suspectAfterMs: 600_000, downAfterMs: 1_200_000))
        let now = WallClock.nowUnixMs()
        for node in cluster.nodes.values.sorted(by: { $0.name < $1.name }) {
            _ = try await log.propose(.registerNode(name: node.name, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: now))
            let report = Specola_V1_Report.with { $0.seq = 1; $0.full = true; $0.collectedAtUnixMs = now; $0.facts = node.facts }
            _ = try await log.propose(.applyReport(node: node.name, report: report, receivedAtUnixMs: now))
        }
        return log
    }

    static func controller(_ log: InMemoryClusterLog, hub: InstructionHub) -> StorageController {
        StorageController(replica: log, hub: hub, policy: StoragePolicy(), logger: logger)
    }

    static func storageProposals(_ log: InMemoryClusterLog) async -> [Specola_V1_StorageCommand] {
        await log.proposals.compactMap { command in
            if case .storage(let storage) = command.kind { storage } else { nil }
        }
    }

    /// A stream the hub sends one node's instructions to, and a way to read what it sent.
    struct AgentStream {
        let stream: AsyncStream<Specola_V1_CoordinatorMessage>
        let continuation: AsyncStream<Specola_V1_CoordinatorMessage>.Continuation

        init(_ node: String, on hub: InstructionHub) {
            (stream, continuation) = AsyncStream.makeStream()
            _ = hub.attach(node: node, outgoing: continuation)
        }

        func sent() async -> [Specola_V1_Instruction] {
            continuation.finish()
            var instructions: [Specola_V1_Instruction] = []
            for await message in stream { instructions.append(message.instruction) }
            return instructions
        }
    }

    @Test func aDeadBrickIsRestartedOnceAndOnlyItsNodeIsTold() async throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let dead = StorageFixture.key("n2", "gv0")
        cluster.brick(dead) { $0.online = false; $0.pid = 0 }
        let log = try await Self.log(cluster)
        let hub = InstructionHub(logger: Self.logger)
        let n1 = AgentStream("n1", on: hub), n2 = AgentStream("n2", on: hub)
        let controller = Self.controller(log, hub: hub)

        await controller.pass()
        await controller.pass()
        let proposals = await Self.storageProposals(log)
        #expect(proposals.map(\.add.kind) == [.restartBrick], "one restart while it is pending: \(proposals)")
        let action = try #require(await log.replicatedState.storage.actions.values.first)
        #expect(action.node == "n2" && action.brick == dead && action.state == .pending)
        let told = await n2.sent()
        #expect(told.map(\.id) == [action.id] && told.first?.storageAction.brick == dead, "sent once: \(told.map(\.id))")
        #expect(await n1.sent().isEmpty)
    }

    @Test func aHealthyVolumeCommitsNothing() async throws {
        let log = try await Self.log(StorageFixture(nodes: 3, volumes: Self.gv0))
        let controller = Self.controller(log, hub: InstructionHub(logger: Self.logger))
        await controller.pass()
        #expect(await Self.storageProposals(log).isEmpty)
        #expect(await controller.detail("gv0").actions.isEmpty)
    }

    @Test func anOperatorsHealIsCommittedAndSentToANodeWithABrick() async throws {
        let log = try await Self.log(StorageFixture(nodes: 3, volumes: Self.gv0))
        let hub = InstructionHub(logger: Self.logger)
        let streams = ["n1", "n2", "n3"].map { AgentStream($0, on: hub) }
        let controller = Self.controller(log, hub: hub)

        let action = try await controller.operatorRequest(.with { $0.volume = "gv0"; $0.action = "heal"; $0.full = true }, by: "user/ops")
        #expect(action.kind == .heal && action.full && action.requestedBy == "user/ops" && !action.id.isEmpty)
        #expect(await log.replicatedState.storage.actions[action.id]?.state == .pending)
        var told: [String] = []
        for (node, stream) in zip(["n1", "n2", "n3"], streams) where !(await stream.sent()).isEmpty { told.append(node) }
        #expect(told == [action.node])
        #expect(await controller.detail("gv0").actions.map(\.id) == [action.id])
    }

    @Test func anOperatorsRequestForAnUnknownVolumeIsRefusedAndCommitsNothing() async throws {
        let log = try await Self.log(StorageFixture(nodes: 3, volumes: Self.gv0))
        let controller = Self.controller(log, hub: InstructionHub(logger: Self.logger))
        await #expect(throws: HealPlanner.Refusal.self) {
            _ = try await controller.operatorRequest(.with { $0.volume = "nope"; $0.action = "heal" }, by: "user/ops")
        }
        #expect(await Self.storageProposals(log).isEmpty)
    }
}
