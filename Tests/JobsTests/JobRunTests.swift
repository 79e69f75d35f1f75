import Testing
@testable import SpecolaJobs
import CooperativePoolWatch

/// The job lifecycle: DAG order, fan-in, retries with backoff, lost work, cancel.
@Suite(.watchesCooperativePool) struct JobRunTests {
    static let pipeline = """
        apiVersion: specola/v1
        kind: Pipeline
        metadata: {name: red, owner: ana, project: m31}
        steps:
          - name: prep
            driver: exec
            command: /bin/true
            retries: {attempts: 2, backoff: 5}
          - name: cal
            driver: exec
            command: /bin/true
            depends: [prep]
            foreach: [a, b]
          - name: stack
            driver: exec
            command: /bin/true
            depends: [cal]
        """

    func run() throws -> JobRun {
        let spec = try JobSpecParser.parse(Self.pipeline, file: "p.yaml").get()
        return JobRun(id: "j1", instances: spec.instances())
    }

    func ids(_ tasks: [TaskRun]) -> [String] { tasks.map(\.id) }

    /// Places and finishes one task with the given exit code.
    func finish(_ job: inout JobRun, _ id: String, exit code: Int32 = 0, at now: Int64 = 0, allocation: String? = nil) {
        let allocationID = allocation ?? "\(id)-a\(job.tasks[id]!.failures + job.tasks[id]!.relocations)"
        job.apply(.placed(taskID: id, node: "n1", allocationID: allocationID))
        job.apply(.started(taskID: id, allocationID: allocationID))
        job.apply(.exited(taskID: id, allocationID: allocationID, exitCode: code, message: "exit \(code)", atUnixMs: now))
    }

    @Test func stepsRunInDependencyOrderAndFanInWaitsForEveryInstance() throws {
        var job = try run()
        #expect(ids(job.runnable(atUnixMs: 0)) == ["red/prep"])
        finish(&job, "red/prep")
        #expect(ids(job.runnable(atUnixMs: 0)) == ["red/cal[0]", "red/cal[1]"])
        finish(&job, "red/cal[0]")
        #expect(ids(job.runnable(atUnixMs: 0)) == ["red/cal[1]"], "stack must wait for every cal instance")
        finish(&job, "red/cal[1]")
        #expect(ids(job.runnable(atUnixMs: 0)) == ["red/stack"])
        #expect(job.state == .running)
        finish(&job, "red/stack")
        #expect(job.state == .succeeded)
    }

    @Test func aFailureIsRetriedAfterItsBackoffThenFailsTheJob() throws {
        var job = try run()
        finish(&job, "red/prep", exit: 1, at: 1_000)
        #expect(job.tasks["red/prep"]?.state == .pending)
        #expect(job.runnable(atUnixMs: 5_999).isEmpty, "backoff is 5 s")
        #expect(ids(job.runnable(atUnixMs: 6_000)) == ["red/prep"])
        finish(&job, "red/prep", exit: 1, at: 7_000)
        #expect(ids(job.runnable(atUnixMs: 17_000)) == ["red/prep"], "second retry waits twice as long")
        finish(&job, "red/prep", exit: 1, at: 20_000)
        #expect(job.tasks["red/prep"]?.state == .failed)
        #expect(job.state == .failed)
        #expect(job.tasks["red/stack"]?.state == .cancelled)
        #expect(job.runnable(atUnixMs: 100_000).isEmpty)
    }

    @Test func workLostWithANodeIsRequeuedWithoutSpendingARetry() throws {
        var job = try run()
        job.apply(.placed(taskID: "red/prep", node: "n1", allocationID: "x1"))
        job.apply(.started(taskID: "red/prep", allocationID: "x1"))
        job.apply(.lost(taskID: "red/prep", allocationID: "x1", atUnixMs: 10))
        let prep = try #require(job.tasks["red/prep"])
        #expect(prep.state == .pending && prep.failures == 0 && prep.relocations == 1 && prep.allocationID == nil)
        // A late report from the lost allocation changes nothing.
        job.apply(.exited(taskID: "red/prep", allocationID: "x1", exitCode: 0, message: "late", atUnixMs: 20))
        #expect(job.tasks["red/prep"]?.state == .pending)
    }

    @Test func duplicateReportsAreIgnored() throws {
        var job = try run()
        finish(&job, "red/prep", allocation: "p1")
        job.apply(.exited(taskID: "red/prep", allocationID: "p1", exitCode: 1, message: "again", atUnixMs: 5))
        #expect(job.tasks["red/prep"]?.state == .succeeded)
        #expect(job.tasks["red/prep"]?.failures == 0)
    }

    @Test func cancelStopsRunningWorkAndEndsTheJob() throws {
        var job = try run()
        finish(&job, "red/prep")
        job.apply(.placed(taskID: "red/cal[0]", node: "n2", allocationID: "c0"))
        job.apply(.started(taskID: "red/cal[0]", allocationID: "c0"))
        let effects = job.apply(.cancel)
        #expect(effects == [.stop(allocationID: "c0", node: "n2")])
        #expect(job.state == .cancelled)
        #expect(job.runnable(atUnixMs: 0).isEmpty)
        #expect(job.tasks["red/prep"]?.state == .succeeded, "finished work stays finished")
    }
}
