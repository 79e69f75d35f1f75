import Foundation
import Logging
import SpecolaJobs
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// The job loop's shell on an in-memory log: what one pass commits and what the hub sends.
@Suite(.watchesCooperativePool) struct JobControllerTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Nodes with four cores and 8 GiB each, just heard from (slow runs stay well inside the thresholds).
    static func cluster(_ names: [String]) async throws -> InMemoryClusterLog {
        let log = InMemoryClusterLog(thresholds: .init(suspectAfterMs: 600_000, downAfterMs: 1_200_000))
        let now = WallClock.nowUnixMs()
        for name in names {
            _ = try await log.propose(.registerNode(name: name, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: now))
            let report = Specola_V1_Report.with {
                $0.seq = 1
                $0.full = true
                $0.facts.capacity.cpuCores = 4
                $0.facts.capacity.memoryBytes = 8 << 30
            }
            _ = try await log.propose(.applyReport(node: name, report: report, receivedAtUnixMs: now))
        }
        return log
    }

    static func job(_ name: String, count: Int, cores: Int64 = 1, atUnixMs: Int64 = WallClock.nowUnixMs()) -> Specola_V1_Command {
        let task = TaskSpec(
            name: "t", driver: .exec(command: "/bin/true", args: []),
            resources: Resources(cpuMillicores: cores * 1000, memoryBytes: 1 << 20), count: count)
        let spec = JobSpec(kind: .job, metadata: JobMetadata(name: name, owner: "alice", project: "astro"), tasks: [task])
        return .submitJob(spec, by: "user/alice", atUnixMs: atUnixMs)
    }

    static func controller(_ log: InMemoryClusterLog, hub: InstructionHub? = nil, _ adjust: (inout JobController.Settings) -> Void = { _ in })
        -> JobController
    {
        var settings = JobController.Settings()
        adjust(&settings)
        return JobController(replica: log, hub: hub ?? InstructionHub(logger: logger), settings: settings, logger: logger)
    }

    static func placements(_ log: InMemoryClusterLog) async -> [[Specola_V1_TaskPlacement]] {
        await log.proposals.compactMap { command in
            if case .placeTasks(let place) = command.kind { place.placements } else { nil }
        }
    }

    /// Everything a hub sent to `stream` so far.
    static func sent(_ stream: (AsyncStream<Specola_V1_CoordinatorMessage>, AsyncStream<Specola_V1_CoordinatorMessage>.Continuation)) async
        -> [Specola_V1_Instruction]
    {
        stream.1.finish()
        var instructions: [Specola_V1_Instruction] = []
        for await message in stream.0 { instructions.append(message.instruction) }
        return instructions
    }

    @Test func aPassPlacesEveryPendingTaskThatFitsAndTheHubSendsEachNodeItsOwn() async throws {
        let log = try await Self.cluster(["n1", "n2"])
        _ = try await log.propose(Self.job("survey", count: 6))
        let hub = InstructionHub(logger: Self.logger)
        let streams = ["n1", "n2"].map { node in
            let stream = AsyncStream<Specola_V1_CoordinatorMessage>.makeStream()
            _ = hub.attach(node: node, outgoing: stream.continuation)
            return (node, stream)
        }
        await Self.controller(log, hub: hub).pass()

        let allocations = await log.replicatedState.jobs.allocations.values
        #expect(allocations.count == 6)
        #expect(Set(allocations.map(\.taskID)).count == 6, "each task placed once")
        for (node, stream) in streams {
            let runs = await Self.sent((stream.stream, stream.continuation)).map(\.runTask)
            let expected = allocations.filter { $0.node == node }
            #expect(!expected.isEmpty, "both nodes get work")
            #expect(Set(runs.map(\.allocationID)) == Set(expected.map(\.id)), "\(node) is told exactly its allocations")
            #expect(runs.allSatisfy { $0.cpuMillicores == 1000 && $0.jobID == "astro/survey" })
        }
    }

    @Test func placementsAreCommittedInBatchesOfTheConfiguredSize() async throws {
        let log = try await Self.cluster(["n1", "n2"])
        _ = try await log.propose(Self.job("survey", count: 5))
        await Self.controller(log) { $0.batchSize = 2 }.pass()
        #expect(await Self.placements(log).map(\.count).sorted() == [1, 2, 2])
        #expect(await log.replicatedState.jobs.allocations.count == 5)
    }

    @Test func aTaskThatFitsNowhereWaitsWithAReasonAndNothingIsCommitted() async throws {
        let log = try await Self.cluster(["n1"])
        _ = try await log.propose(Self.job("huge", count: 1, cores: 16))
        let controller = Self.controller(log)
        await controller.pass()
        #expect(await Self.placements(log).isEmpty)
        let reason = try #require(controller.waitingReason("astro/huge/t"))
        #expect(reason.kind == .impossible, "no node has 16 cores: \(reason)")
    }

    @Test func workOfAFencedNodeIsRequeuedAndPlacedOnAnother() async throws {
        let log = try await Self.cluster(["n1", "n2"])
        _ = try await log.propose(Self.job("survey", count: 1))
        let controller = Self.controller(log)
        await controller.pass()
        let first = try #require(await log.replicatedState.jobs.allocations.values.first)

        _ = try await log.propose(.nodeHealth(node: first.node, status: .fenced, reason: "BMC confirmed chassis power off"))
        await controller.pass()
        let requeued = await log.proposals.compactMap { command in
            if case .requeueAllocations(let requeue) = command.kind { requeue } else { nil }
        }
        #expect(requeued.map(\.allocationIds) == [[first.id]])
        #expect(requeued.first?.reason == "node \(first.node) is fenced")
        await controller.pass()
        let now = await log.replicatedState.jobs.allocations.values
        #expect(now.count == 1 && now.first?.id != first.id && now.first?.node != first.node, "\(now)")
    }

    @Test func finishedJobsLeaveOnceTheirRetentionHasPassed() async throws {
        let log = try await Self.cluster(["n1"])
        let now = WallClock.nowUnixMs()
        for (name, endedAt) in [("old", now - 120_000), ("recent", now - 1_000)] {
            _ = try await log.propose(Self.job(name, count: 1, atUnixMs: endedAt - 10))
            _ = try await log.propose(.cancelJob("astro/\(name)", by: "user/alice", atUnixMs: endedAt))
        }
        _ = try await log.propose(Self.job("running", count: 1))
        await Self.controller(log) { $0.retention = .seconds(60) }.pass()
        let jobs = await log.replicatedState.jobs.jobs
        #expect(Set(jobs.keys) == ["astro/recent", "astro/running"])
    }

    @Test func aReplicaThatDoesNotLeadCommitsNothing() async throws {
        let log = try await Self.cluster(["n1"])
        _ = try await log.propose(Self.job("survey", count: 2))
        await log.setLeading(false)
        await Self.controller(log).pass()
        #expect(await Self.placements(log).isEmpty)
        #expect(await log.replicatedState.jobs.allocations.isEmpty)
    }
}
