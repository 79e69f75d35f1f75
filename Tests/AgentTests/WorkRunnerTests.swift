import CooperativePoolWatch
import Foundation
import Logging
import SpecolaProtocol
import Synchronization
import TestSupport
import Testing
@testable import SpecolaAgent

/// The one runner for tasks and HA workloads, on a real outbox (its ledger) and drivers held in
/// memory behind `WorkDriver`, the protocol the real podman, exec, libvirt and pod drivers satisfy
/// (ContainerSweepTests, ExecDriverTests and WorkloadRunnerTests run it on those).
@Suite(.runsOffThePool, .watchesCooperativePool) struct WorkRunnerTests {
    /// A runtime in memory: followed (a task runs to an outcome) or watched (a workload runs until stopped).
    final class MemoryDriver: WorkDriver {
        struct State {
            var running: Set<String> = []
            var calls: [String] = []
            var waiting: [String: CheckedContinuation<TaskOutcome, Never>] = [:]
            var outcomes: [String: TaskOutcome] = [:]
        }
        let follows: Bool
        let state = Mutex(State())

        init(follows: Bool, running: Set<String> = []) {
            self.follows = follows
            state.withLock { $0.running = running }
        }

        var calls: [String] { state.withLock { $0.calls } }

        func start(_ work: DriverWork, adopting: Bool) async throws -> DriverStart {
            let name = work.name
            state.withLock {
                $0.calls.append("\(adopting ? "adopt" : "start") \(name)")
                $0.running.insert(name)
            }
            guard follows else { return .watched }
            return await Self.following { running in
                running([])
                return await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> TaskOutcome? in
                        if let outcome = state.outcomes.removeValue(forKey: name) { return outcome }
                        state.waiting[name] = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
        }

        /// Followed work ends with `outcome`; watched work vanishes (a crash).
        func end(_ name: String, _ outcome: TaskOutcome) {
            let waiter = state.withLock { state -> CheckedContinuation<TaskOutcome, Never>? in
                state.running.remove(name)
                guard let waiter = state.waiting.removeValue(forKey: name) else {
                    state.outcomes[name] = outcome
                    return nil
                }
                return waiter
            }
            waiter?.resume(returning: outcome)
        }

        func stop(_ name: String, immediately: Bool, processes: [ProcessIdentity]) async throws {
            state.withLock { $0.calls.append("stop \(name)\(immediately ? " immediately" : "")") }
            end(name, TaskOutcome(ending: .exited, exitCode: 137, stdout: "", stderr: "", message: "killed"))
        }

        func observe(_ names: [String]) async throws -> [String: WorkObservation] {
            let running = state.withLock { $0.running }
            return Dictionary(uniqueKeysWithValues: names.map { ($0, running.contains($0) ? WorkObservation.running : .stopped("gone")) })
        }
    }

    struct Node {
        let dir: TempDir
        let outbox: Outbox
        let tasks: MemoryDriver
        let vms: MemoryDriver
        let runner: WorkRunner
        let executor: InstructionExecutor

        init(tasks: MemoryDriver = MemoryDriver(follows: true), vms: MemoryDriver = MemoryDriver(follows: false)) throws {
            dir = try TempDir("specola-work-runner")
            let logger = Logger(label: "test.work-runner")
            outbox = try Outbox(path: dir.file("outbox.sqlite"))
            self.tasks = tasks
            self.vms = vms
            runner = WorkRunner(outbox: outbox, drivers: ["podman": tasks, "vm": vms], logger: logger, onEvent: {})
            executor = InstructionExecutor(outbox: outbox, work: runner, logger: logger, onFullReportRequested: {})
        }

        /// Every event queued so far: "allocation kind" for tasks, "name/generation kind" for workloads.
        func events() throws -> [String] {
            let reports = try outbox.pending(after: 0)
            return reports.flatMap(\.taskEvents).map { "\($0.allocationID) \($0.kind)" }
                + reports.flatMap(\.workloadEvents).map { "\($0.name)/\($0.generation) \($0.kind)" }
        }

        func waitForEvent(_ expected: String) async throws {
            try await waitUntil("event '\(expected)' (have \((try? events()) ?? []))", timeout: .seconds(10)) { try events().contains(expected) }
        }

        func runTask(_ id: String, outputs: [String] = []) async throws -> Specola_V1_InstructionResult {
            try await executor.execute(.with {
                $0.id = id
                $0.runTask = .with { $0.allocationID = id; $0.driver = "podman"; $0.outputs = outputs }
            })
        }

        func startVM(_ name: String, _ generation: UInt64) async throws -> Specola_V1_InstructionResult {
            try await executor.execute(.with {
                $0.id = "wl/\(name)/\(generation)"
                $0.startWorkload = .with { $0.name = name; $0.kind = "vm"; $0.generation = generation; $0.definition = "<domain/>" }
            })
        }
    }

    @Test func aTaskIsFollowedToItsOutcomeAndAWorkloadIsWatchedUntilItEnds() async throws {
        let node = try Node()
        defer { node.dir.remove() }
        #expect(try await node.runTask("a1", outputs: ["N"]).message == "started")
        try await node.waitForEvent("a1 started")
        node.tasks.end("a1", TaskOutcome(ending: .exited, exitCode: 0, stdout: "specola-output: N=3\n", stderr: "", message: "exited with 0"))
        try await node.waitForEvent("a1 exited")
        #expect(try node.outbox.pending(after: 0).flatMap(\.taskEvents).last?.outputs == ["N": "3"])
        try await waitUntil("the ledger to close a1") { try node.outbox.instructionFinished("a1") }
        try await waitUntil("the runner to forget a1") { await node.runner.runningAllocations.isEmpty }

        #expect(try await node.startVM("web", 1).message == "starting")
        try await node.waitForEvent("web/1 started")
        #expect(await node.runner.running == ["web": 1])
        node.vms.end("web", TaskOutcome(ending: .exited, exitCode: 0, stdout: "", stderr: "", message: ""))
        await node.runner.check()
        try await node.waitForEvent("web/1 exited")
        #expect(node.vms.calls == ["start web", "stop web immediately"], "what ended by itself is cleaned up")
        try await waitUntil("the ledger to close wl/web/1") { try node.outbox.instructionFinished("wl/web/1") }
        #expect(await node.runner.running.isEmpty)
    }

    @Test func aStopThatOvertakesItsStartIsClaimedSoTheStartNeverRuns() async throws {
        let node = try Node()
        defer { node.dir.remove() }
        let stopped = try await node.executor.execute(.with {
            $0.id = "stop/a5"
            $0.stopTask = .with { $0.allocationID = "a5"; $0.reason = "cancelled" }
        })
        #expect(stopped.message == "stopped before it started")
        #expect(try node.events() == ["a5 stopped"])
        #expect(try await node.runTask("a5").duplicate)
        #expect(node.tasks.calls.isEmpty)
    }

    @Test func theSelfFenceStopsEveryTaskAndWorkloadAtOnce() async throws {
        let node = try Node()
        defer { node.dir.remove() }
        _ = try await node.runTask("a2")
        _ = try await node.startVM("db", 2)
        try await node.waitForEvent("a2 started")
        try await node.waitForEvent("db/2 started")
        await node.runner.stopAll(reason: "self-fence: test", immediately: true)
        try await node.waitForEvent("a2 stopped")
        try await node.waitForEvent("db/2 stopped")
        #expect(node.tasks.calls == ["start a2", "stop a2 immediately"])
        #expect(node.vms.calls == ["start db", "stop db immediately"])
        try await waitUntil("the ledger to close both") { try node.outbox.instructionFinished("a2") && node.outbox.instructionFinished("wl/db/2") }
        try await waitUntil("the runner to forget a2") { await node.runner.runningAllocations.isEmpty }
        #expect(await node.runner.running.isEmpty)
        let messages = try node.outbox.pending(after: 0).flatMap { $0.taskEvents.map(\.message) + $0.workloadEvents.map(\.message) }
        #expect(messages.filter { $0 == "stopped: self-fence: test" }.count == 2, "\(messages)")
    }

    @Test func aRestartedAgentAdoptsWhatStillRunsAndReportsTheRest() async throws {
        let node = try Node(tasks: MemoryDriver(follows: true, running: ["a3"]), vms: MemoryDriver(follows: false, running: ["db"]))
        defer { node.dir.remove() }
        func claim(_ id: String, _ family: WorkFamily, _ payload: Data) throws {
            #expect(try node.outbox.claimInstruction(id, family: family, payload: payload) == nil)
        }
        for id in ["a3", "a4"] { try claim(id, .task, try Specola_V1_RunTask.with { $0.allocationID = id; $0.driver = "podman" }.serializedData()) }
        for name in ["db", "old"] {
            try claim("wl/\(name)/1", .workload, try Specola_V1_StartWorkload.with { $0.name = name; $0.kind = "vm"; $0.generation = 1 }.serializedData())
        }
        await resumeClaimedWork(ledger: node.outbox, runners: [node.runner], logger: Logger(label: "test.resume"))
        #expect(try node.events().sorted() == ["a3 started", "a4 lost", "db/1 started", "old/1 exited"])
        #expect(node.tasks.calls == ["adopt a3"])
        #expect(node.vms.calls == ["adopt db"], "nothing new starts while adopting")
        #expect(try !node.outbox.instructionFinished("a3") && !node.outbox.instructionFinished("wl/db/1"))
        #expect(try node.outbox.instructionFinished("a4") && node.outbox.instructionFinished("wl/old/1"))
        #expect(await node.runner.running == ["db": 1])
        #expect(await node.runner.runningAllocations == ["a3"])
    }
}
