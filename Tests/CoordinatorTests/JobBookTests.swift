import Foundation
import SpecolaJobs
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// Jobs inside the replicated state: the same commands give the same state on every replica.
@Suite(.watchesCooperativePool) struct JobBookTests {
    var seq: UInt64 = 0

    static func pipeline() -> JobSpec {
        let prepare = TaskSpec(name: "prepare", driver: .exec(command: "/bin/true", args: []), outputs: ["bias"])
        let calibrate = TaskSpec(
            name: "calibrate", driver: .exec(command: "/bin/true", args: []), retries: RetryPolicy(attempts: 1, backoffSeconds: 5),
            depends: ["prepare"], foreach: ["a", "b"], inputs: [StepInput(variable: "BIAS", step: "prepare", key: "bias")])
        return JobSpec(kind: .pipeline, metadata: JobMetadata(name: "p", owner: "o", project: "x"), tasks: [prepare, calibrate])
    }

    static func cluster(nodes: [String] = ["n1", "n2"]) -> ClusterState {
        var state = ClusterState()
        for name in nodes {
            _ = state.apply(.registerNode(name: name, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
        }
        _ = state.apply(submit(pipeline()))
        return state
    }

    static func submit(_ spec: JobSpec) -> Specola_V1_Command {
        .with {
            $0.proposedAtUnixMs = 10
            $0.submitJob = .with {
                $0.jobID = spec.metadata.jobID
                $0.spec = .init(spec)
            }
        }
    }

    static func place(_ task: String, on node: String, as allocation: String, job: String = "x/p") -> Specola_V1_Command {
        .with {
            $0.proposedAtUnixMs = 20
            $0.placeTasks.placements = [.with { $0.jobID = job; $0.taskID = task; $0.node = node; $0.allocationID = allocation }]
        }
    }

    mutating func event(_ node: String, _ allocation: String, _ kind: Specola_V1_TaskEventKind, exit: Int32 = 0,
                        outputs: [String: String] = [:]) -> Specola_V1_Command {
        seq += 1
        let report = Specola_V1_Report.with {
            $0.seq = seq
            $0.taskEvents = [.with { $0.allocationID = allocation; $0.kind = kind; $0.exitCode = exit; $0.outputs = outputs; $0.stdoutTail = "out" }]
        }
        return .applyReport(node: node, report: report, receivedAtUnixMs: 30)
    }

    func task(_ state: ClusterState, _ id: String) -> TaskRun? { state.jobs.jobs["x/p"]?.run.tasks[id] }

    /// jobs.retention: a finished job, its logs and its step outputs leave the state; a running one stays.
    @Test mutating func finishedJobsAreForgottenAfterTheirRetention() throws {
        var state = Self.cluster()
        let single = JobSpec(kind: .job, metadata: JobMetadata(name: "one", owner: "o", project: "x"),
                             tasks: [TaskSpec(name: "t", driver: .exec(command: "/bin/true", args: []), outputs: ["r"])])
        _ = state.apply(Self.submit(single))
        _ = state.apply(Self.place("x/one/t", on: "n1", as: "b1", job: "x/one"))
        _ = state.apply(Self.place("x/p/prepare", on: "n2", as: "a1"))
        _ = state.apply(event("n1", "b1", .exited, exit: 0, outputs: ["r": "42"]))
        #expect(state.jobs.jobs["x/one"]?.finishedAtUnixMs == 30)
        #expect(state.kv["jobs/x/one/outputs/t/t/r"]?.value == Data("42".utf8))

        _ = state.apply(.forgetJobs(finishedBefore: 30, atUnixMs: 40))
        #expect(state.jobs.jobs["x/one"] != nil, "finished at the cutoff, not before it")
        let revision = state.kvRevision
        _ = state.apply(.forgetJobs(finishedBefore: 31, atUnixMs: 41))
        #expect(state.jobs.jobs["x/one"] == nil)
        #expect(state.kv.keys.allSatisfy { !$0.hasPrefix("jobs/x/one/") })
        #expect(state.kvRevision == revision + 1)
        #expect(state.jobs.jobs["x/p"] != nil, "a running job is never forgotten")
        #expect(try ClusterState(snapshot: state.snapshot()).jobs.jobs["x/one"] == nil)
    }

    @Test mutating func aPipelineRunsThroughPlacementEventsAndOutputs() {
        var state = Self.cluster()
        #expect(state.apply(Self.place("x/p/prepare", on: "n1", as: "a1")) == .placed(count: 1))
        // A second placement of the same task, or one on an unknown node, changes nothing.
        #expect(state.apply(Self.place("x/p/prepare", on: "n2", as: "a2")) == .placed(count: 0))
        #expect(state.apply(Self.place("x/p/calibrate[0]", on: "ghost", as: "a3")) == .placed(count: 0))
        #expect(state.jobs.allocatedByNode["n1"] == TaskSpec.defaultResources)

        _ = state.apply(event("n1", "a1", .started))
        #expect(task(state, "x/p/prepare")?.state == .running)
        // Another node cannot report on n1's allocation.
        _ = state.apply(event("n2", "a1", .exited, exit: 0))
        #expect(task(state, "x/p/prepare")?.state == .running)

        _ = state.apply(event("n1", "a1", .exited, exit: 0, outputs: ["bias": "b.fits", "undeclared": "x"]))
        #expect(task(state, "x/p/prepare")?.state == .succeeded)
        #expect(state.jobs.allocations.isEmpty)
        #expect(state.jobs.allocatedByNode["n1"] == .zero)
        #expect(state.kv["jobs/x/p/outputs/prepare/prepare/bias"]?.value == Data("b.fits".utf8))
        #expect(state.kv.keys.allSatisfy { !$0.contains("undeclared") })
        #expect(state.jobs.jobs["x/p"]?.logs["x/p/prepare"]?.stdout == "out")

        // Instructions for the fan-out carry the output as input.
        _ = state.apply(Self.place("x/p/calibrate[0]", on: "n2", as: "a4"))
        let run = InstructionHub.runTask(state.jobs.allocations["a4"]!, state: state)
        #expect(run?.env["BIAS"] == "b.fits")
        #expect(run?.env["SPECOLA_ITEM"] == "a")
    }

    @Test mutating func failuresRetryThenFailForGoodAndTheJobFinishes() {
        var state = Self.cluster()
        _ = state.apply(Self.place("x/p/prepare", on: "n1", as: "a1"))
        _ = state.apply(event("n1", "a1", .exited, exit: 0))
        _ = state.apply(Self.place("x/p/calibrate[0]", on: "n1", as: "c1"))
        _ = state.apply(Self.place("x/p/calibrate[1]", on: "n2", as: "c2"))
        _ = state.apply(event("n1", "c1", .timedOut))
        #expect(task(state, "x/p/calibrate[0]")?.state == .pending, "one retry left")
        #expect(task(state, "x/p/calibrate[0]")?.failures == 1)
        _ = state.apply(Self.place("x/p/calibrate[0]", on: "n1", as: "c3"))
        _ = state.apply(event("n1", "c3", .exited, exit: 2))
        #expect(task(state, "x/p/calibrate[0]")?.state == .failed)
        #expect(state.jobs.jobs["x/p"]?.finishedAtUnixMs == 0, "a sibling still runs")
        _ = state.apply(event("n2", "c2", .exited, exit: 0))
        #expect(state.jobs.jobs["x/p"]?.run.state == .failed)
        #expect(state.jobs.jobs["x/p"]?.finishedAtUnixMs == 30)
        #expect(!state.jobs.activeJobIDs.contains("x/p"))
    }

    @Test mutating func drainStopsWorkWhichThenMovesWithoutSpendingARetry() {
        var state = Self.cluster()
        _ = state.apply(Self.place("x/p/prepare", on: "n1", as: "a1"))
        _ = state.apply(event("n1", "a1", .started))
        _ = state.apply(.with { $0.setNodeScheduling = .with { $0.node = "n1"; $0.cordoned = true; $0.draining = true } })
        #expect(state.nodes["n1"]?.draining == true)
        #expect(state.jobs.allocations["a1"]?.stopping == true)
        _ = state.apply(event("n1", "a1", .stopped, exit: 143))
        #expect(task(state, "x/p/prepare")?.state == .pending)
        #expect(task(state, "x/p/prepare")?.relocations == 1)
        #expect(task(state, "x/p/prepare")?.failures == 0)
        #expect(state.jobs.allocations.isEmpty)
    }

    @Test mutating func cancelStopsRunningWorkAndLaterReportsChangeNothing() {
        var state = Self.cluster()
        _ = state.apply(Self.place("x/p/prepare", on: "n1", as: "a1"))
        _ = state.apply(event("n1", "a1", .started))
        #expect(state.apply(.with { $0.cancelJob.jobID = "x/p" }) == .job("x/p"))
        #expect(state.jobs.jobs["x/p"]?.run.state == .cancelled)
        #expect(state.jobs.allocations["a1"]?.stopping == true, "still holds its resources until the agent says it stopped")
        _ = state.apply(event("n1", "a1", .exited, exit: 0, outputs: ["bias": "late"]))
        #expect(state.jobs.jobs["x/p"]?.run.state == .cancelled)
        #expect(state.jobs.allocations.isEmpty)
        // Submitting under the same name works once the old one has finished.
        #expect(state.apply(Self.submit(Self.pipeline())) == .job("x/p"))
        #expect(state.jobs.jobs["x/p"]?.run.state == .pending)
        if case .rejected = state.apply(Self.submit(Self.pipeline())) {} else { Issue.record("an active job of the same name must be refused") }
    }

    @Test mutating func workOfADownNodeIsRequeued() {
        var state = Self.cluster()
        _ = state.apply(Self.place("x/p/prepare", on: "n1", as: "a1"))
        _ = state.apply(.with { $0.requeueAllocations = .with { $0.allocationIds = ["a1", "unknown"]; $0.reason = "n1 down" } })
        #expect(task(state, "x/p/prepare")?.state == .pending)
        #expect(task(state, "x/p/prepare")?.relocations == 1)
        #expect(state.jobs.allocations.isEmpty)
        // The old allocation's late report is ignored.
        _ = state.apply(event("n1", "a1", .exited, exit: 0))
        #expect(task(state, "x/p/prepare")?.state == .pending)
    }

    @Test mutating func theSnapshotRestoresAnEqualState() throws {
        var state = Self.cluster()
        _ = state.apply(Self.place("x/p/prepare", on: "n1", as: "a1"))
        _ = state.apply(event("n1", "a1", .started))
        let image = state.snapshot()
        let restored = try ClusterState(snapshot: image)
        #expect(try restored.snapshot().serializedBytes() as [UInt8] == image.serializedBytes() as [UInt8])
        #expect(restored.jobs.jobs["x/p"]?.instances.count == 3)
        #expect(restored.jobs.activeJobIDs == ["x/p"])
        #expect(restored.jobs.allocatedByNode["n1"] == TaskSpec.defaultResources)
    }

    /// A snapshot written before job ids were scoped per project: its jobs, their tasks, allocations,
    /// logs and step outputs move to `PROJECT/NAME` (a job without a project to `default/NAME`).
    @Test func jobsOfAnUnscopedSnapshotMoveIntoTheirProject() throws {
        let spec = Self.pipeline()
        let orphan = JobSpec(kind: .job, metadata: JobMetadata(name: "old", owner: "o", project: ""),
                             tasks: [TaskSpec(name: "t", driver: .exec(command: "/bin/true", args: []))])
        func record(_ spec: JobSpec, index: UInt64) throws -> Specola_V1_JobRecord {
            // What the previous build stored: the bare name as id, task ids `NAME/TASK`.
            try .with {
                $0.id = spec.metadata.name
                $0.legacySpecJson = try JSONEncoder().encode(spec)
                $0.legacyRunJson = try JSONEncoder().encode(JobRun(id: spec.metadata.name, instances: spec.instances()))
                $0.submitIndex = index
                $0.logs = ["\(spec.metadata.name)/\(spec.tasks[0].name)": .with { $0.stdout = "hello" }]
            }
        }
        var legacy = Self.cluster().snapshot()
        legacy.jobs = [try record(spec, index: 1), try record(orphan, index: 2)]
        legacy.allocations = [.with { $0.id = "a1"; $0.jobID = "p"; $0.taskID = "p/prepare"; $0.node = "n1"; $0.cpuMillicores = 100 }]
        legacy.kv = [.with { $0.key = "jobs/p/outputs/prepare/prepare/bias"; $0.value = Data("b.fits".utf8) }]

        let state = try ClusterState(snapshot: legacy)
        #expect(Set(state.jobs.jobs.keys) == ["x/p", "default/old"])
        let moved = try #require(state.jobs.jobs["x/p"])
        #expect(moved.run.id == "x/p")
        #expect(Set(moved.run.tasks.keys) == ["x/p/prepare", "x/p/calibrate[0]", "x/p/calibrate[1]"])
        #expect(moved.run.tasks["x/p/calibrate[0]"]?.waitsFor == ["x/p/prepare"])
        #expect(moved.run.order.first == "x/p/prepare")
        #expect(Set(moved.instances.keys) == Set(moved.run.tasks.keys))
        #expect(moved.logs["x/p/prepare"]?.stdout == "hello")
        #expect(state.jobs.jobs["default/old"]?.run.tasks["default/old/t"] != nil)
        #expect(state.jobs.allocations["a1"]?.jobID == "x/p" && state.jobs.allocations["a1"]?.taskID == "x/p/prepare")
        #expect(state.jobs.activeJobIDs == ["x/p", "default/old"])
        #expect(state.kv["jobs/x/p/outputs/prepare/prepare/bias"]?.value == Data("b.fits".utf8))
        #expect(state.kv["jobs/p/outputs/prepare/prepare/bias"] == nil)
        // Saved again, it stays migrated.
        #expect(try ClusterState(snapshot: state.snapshot()).jobs.jobs["x/p"]?.run.tasks.count == 3)
    }

    /// Log entries from the previous build name jobs bare: they apply to the job in its project.
    @Test mutating func unscopedCommandsInTheLogApplyToTheScopedJob() {
        var state = ClusterState()
        _ = state.apply(.registerNode(name: "n1", address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
        var bare = Self.submit(Self.pipeline())
        bare.submitJob.jobID = "p"
        #expect(state.apply(bare) == .job("x/p"))
        #expect(state.apply(Self.place("p/prepare", on: "n1", as: "a1", job: "p")) == .placed(count: 1))
        #expect(state.jobs.allocations["a1"]?.jobID == "x/p" && state.jobs.allocations["a1"]?.taskID == "x/p/prepare")
        #expect(state.apply(.with { $0.cancelJob.jobID = "p" }) == .job("x/p"))
        #expect(state.jobs.jobs["x/p"]?.run.state == .cancelled)
    }

    /// Two projects may each have a job of the same name; each is its own.
    @Test func twoProjectsEachHaveAJobOfTheSameName() {
        var state = Self.cluster()
        var other = Self.pipeline()
        other.metadata.project = "y"
        #expect(state.apply(Self.submit(other)) == .job("y/p"))
        #expect(state.jobs.jobs["x/p"]?.run.tasks["x/p/prepare"] != nil && state.jobs.jobs["y/p"]?.run.tasks["y/p/prepare"] != nil)
        _ = state.apply(.with { $0.cancelJob.jobID = "y/p" })
        #expect(state.jobs.jobs["y/p"]?.run.state == .cancelled)
        #expect(state.jobs.jobs["x/p"]?.run.state == .pending)
        let input = SchedulingInput(state: state, status: { _ in .ready }, nowUnixMs: 100)
        #expect(input.pending.map(\.id) == ["x/p/prepare"] && input.pending.map(\.job) == ["x/p"])
    }
}
