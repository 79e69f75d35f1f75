import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch

/// HA workloads on one agent's `WorkRunner` against real runtimes: a private libvirtd with the
/// test driver for VMs, and real podman (runc) for pods. Instructions go
/// through the `InstructionExecutor`, so each id runs at most once.
@Suite(.watchesCooperativePool) struct WorkloadRunnerTests {
    /// An agent's instruction path and workload runner over a fresh outbox.
    struct Agent {
        let outbox: Outbox
        let runner: WorkRunner
        let executor: InstructionExecutor

        init(dir: TempDir, drivers: [String: any WorkDriver]) throws {
            let logger = Logger(label: "test.workloads")
            outbox = try Outbox(path: dir.file("outbox.sqlite"))
            runner = WorkRunner(outbox: outbox, drivers: drivers, logger: logger, checkInterval: .milliseconds(200), onEvent: {})
            executor = InstructionExecutor(outbox: outbox, work: runner, logger: logger, onFullReportRequested: {})
        }

        /// Every workload event queued so far, as (name/generation, kind).
        func events() throws -> [String] {
            try outbox.pending(after: 0).flatMap(\.workloadEvents).map { "\($0.name)/\($0.generation) \($0.kind)" }
        }

        func start(_ kind: String, _ name: String, _ generation: UInt64, _ definition: String) async throws -> Specola_V1_InstructionResult {
            try await executor.execute(.with {
                $0.id = "wl/\(name)/\(generation)"
                $0.startWorkload = .with { $0.name = name; $0.kind = kind; $0.generation = generation; $0.definition = definition }
            })
        }

        func stop(_ kind: String, _ name: String, _ generation: UInt64) async throws -> Specola_V1_InstructionResult {
            try await executor.execute(.with {
                $0.id = "wl/\(name)/\(generation)/stop"
                $0.stopWorkload = .with { $0.name = name; $0.kind = kind; $0.generation = generation; $0.reason = "test" }
            })
        }

        func waitForEvent(_ expected: String, timeout: Duration = .seconds(20)) async throws {
            try await waitUntil("event '\(expected)' (have \((try? events()) ?? []))", timeout: timeout) { try events().contains(expected) }
        }
    }

    @Test func aVMIsStartedOnceRestartedAfterACrashStoppedAndReattachedAfterARestart() async throws {
        let dir = try TempDir()
        let daemon = try await PrivateLibvirtd.start(workDir: dir.file("libvirt"))
        do {
            try await Self.exerciseVM(dir: dir, daemon: daemon)
        } catch {
            try? await daemon.stop()
            dir.remove()
            throw error
        }
        try await daemon.stop()
        dir.remove()
    }

    static func exerciseVM(dir: TempDir, daemon: PrivateLibvirtd) async throws {
        // The test driver forgets everything when its last client leaves; this one stays for the whole test.
        let keeper = VMCollector(uri: daemon.uri, logger: Logger(label: "test.keeper"))
        #expect(keeper.collect().available)
        let agent = try Agent(dir: dir, drivers: ["vm": LibvirtWorkloadDriver(uri: daemon.uri, logger: Logger(label: "test.vm"))])
        let watch = Task { await agent.runner.run() }
        defer { watch.cancel() }

        #expect(try await agent.start("vm", "havm", 1, HAFixtures.domainXML("havm")).message == "starting")
        try await agent.waitForEvent("havm/1 started")
        #expect(try await daemon.domainState("havm") == "running")
        // The same instruction again (a new leader resends it) is not run twice.
        let again = try await agent.start("vm", "havm", 1, HAFixtures.domainXML("havm"))
        #expect(again.duplicate)
        #expect(try agent.events().filter { $0.hasPrefix("havm/1 started") }.count == 1)

        // Killed from outside: the agent notices and reports it ended.
        #expect(try await daemon.virsh("destroy", "havm").status == 0)
        try await agent.waitForEvent("havm/1 exited")
        #expect(await agent.runner.running.isEmpty)

        // The coordinator restarts it as generation 2, then stops it.
        _ = try await agent.start("vm", "havm", 2, HAFixtures.domainXML("havm"))
        try await agent.waitForEvent("havm/2 started")
        #expect(try await daemon.domainState("havm") == "running")
        _ = try await agent.stop("vm", "havm", 2)
        try await agent.waitForEvent("havm/2 stopped")
        #expect(try await daemon.domainState("havm") == nil, "a stopped HA VM leaves no domain behind")

        // A stop that overtakes its start: the late start never runs.
        _ = try await agent.stop("vm", "havm", 3)
        try await agent.waitForEvent("havm/3 stopped")
        #expect(try await agent.start("vm", "havm", 3, HAFixtures.domainXML("havm")).duplicate)
        #expect(try await daemon.domainState("havm") == nil)

        // A definition libvirt refuses fails to start, with libvirt's reason.
        _ = try await agent.start("vm", "broken", 1, "<domain type='test'><name>broken</name></domain>")
        try await agent.waitForEvent("broken/1 failedToStart")

        // An agent restart: a VM still running is adopted, one that vanished meanwhile is reported exited.
        _ = try await agent.start("vm", "keep", 1, HAFixtures.domainXML("keep"))
        _ = try await agent.start("vm", "lose", 1, HAFixtures.domainXML("lose"))
        try await agent.waitForEvent("keep/1 started")
        try await agent.waitForEvent("lose/1 started")
        watch.cancel()
        _ = await watch.result
        #expect(try await daemon.virsh("destroy", "lose").status == 0)
        let restarted = try Agent(dir: dir, drivers: ["vm": LibvirtWorkloadDriver(uri: daemon.uri, logger: Logger(label: "test.vm2"))])
        try agent.outbox.acknowledge(through: try agent.outbox.lastSeq())
        await resumeClaimedWork(ledger: restarted.outbox, runners: [restarted.runner], logger: Logger(label: "test.resume"))
        #expect(try restarted.events().sorted() == ["keep/1 started", "lose/1 exited"])
        #expect(await restarted.runner.running == ["keep": 1])
        #expect(try await daemon.domainState("keep") == "running")
        _ = try await restarted.stop("vm", "keep", 1)
        try await restarted.waitForEvent("keep/1 stopped")
        #expect(try await daemon.domainState("keep") == nil)
    }

    @Test func aPodIsPlayedRestartedAfterItDiesAndRemovedWhenStopped() async throws {
        try await TestPodman.ensureImage()
        let dir = try TempDir()
        let name = "hapod-\(UUID().uuidString.prefix(6).lowercased())"
        defer {
            _ = try? runBlocking("podman", ["pod", "rm", "--force", "--ignore", "--time", "0", name], environment: TestPodman.environment)
            dir.remove()
        }
        let yaml = HAFixtures.sleeperPod(name)
        let driver = PodWorkloadDriver(
            podman: PodmanDriver(environment: TestPodman.environment, nodeName: "test-node", logger: Logger(label: "test.pod")),
            directory: dir.file("pods"))
        let agent = try Agent(dir: dir, drivers: ["pod": driver])
        let watch = Task { await agent.runner.run() }
        defer { watch.cancel() }
        func podState() async throws -> String? {
            let result = try await run("podman", ["pod", "inspect", name, "--format", "{{.State}}"], environment: TestPodman.environment)
            return result.status == 0 ? result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
        }

        _ = try await agent.start("pod", name, 1, yaml)
        try await agent.waitForEvent("\(name)/1 started", timeout: .seconds(60))
        #expect(try await podState() == "Running")
        let annotations = try await TestPodman.run(["inspect", "\(name)-main", "--format", "{{index .Config.Annotations \"org.specola.node\"}}"])
        #expect(annotations == "test-node")

        // Killed from outside: reported exited, and the dead pod is removed so a restart starts clean.
        try await TestPodman.run(["pod", "kill", name])
        try await agent.waitForEvent("\(name)/1 exited", timeout: .seconds(30))
        try await waitUntil("the dead pod to be removed") { try await podState() == nil }

        _ = try await agent.start("pod", name, 2, yaml)
        try await agent.waitForEvent("\(name)/2 started", timeout: .seconds(60))
        #expect(try await podState() == "Running")
        _ = try await agent.stop("pod", name, 2)
        try await agent.waitForEvent("\(name)/2 stopped", timeout: .seconds(60))
        #expect(try await podState() == nil)
    }

    /// The self-fence kills a pod by the pids of its containers' init processes, learned when it
    /// started, without starting podman; this shows those pids are the pod's and that killing
    /// them ends it.
    @Test func aPodsProcessesAreKnownByPidAndKillingThemEndsIt() async throws {
        try await TestPodman.ensureImage()
        let dir = try TempDir()
        let name = "pidpod-\(UUID().uuidString.prefix(6).lowercased())"
        defer {
            _ = try? runBlocking("podman", ["pod", "rm", "--force", "--ignore", "--time", "0", name], environment: TestPodman.environment)
            dir.remove()
        }
        let driver = PodWorkloadDriver(
            podman: PodmanDriver(environment: TestPodman.environment, nodeName: "test-node", logger: Logger(label: "test.pod")),
            directory: dir.file("pods"))
        try await driver.start(name: name, generation: 1, definition: HAFixtures.sleeperPod(name))
        let processes = await driver.processes(of: name)
        #expect(processes.count == 2, "the infra container and main: \(processes)")
        let mainPID = try await TestPodman.run(["inspect", "\(name)-main", "--format", "{{.State.Pid}}"])
        #expect(processes.map { "\($0.pid)" }.contains(mainPID))
        #expect(processes.allSatisfy { $0.isAlive })

        for process in processes { #expect(process.signal(SIGKILL)) }
        try await waitUntil("the pod to stop", timeout: .seconds(20)) {
            try await driver.observe([name])[name] != .running
        }
        #expect(processes.allSatisfy { !$0.isAlive })
        #expect(processes.allSatisfy { !$0.signal(SIGKILL) }, "a dead identity is never signalled")
    }
}
