import CooperativePoolWatch
import Foundation
import Logging
import SpecolaProcesses
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent

/// The work runner's sweep of ended task containers, against real podman: a container whose removal
/// failed when its task ended goes at the next sweep; nothing still running or unknown is touched.
@Suite(.runsOffThePool, .watchesCooperativePool) struct ContainerSweepTests {
    @Test func theSweepRemovesOnlyContainersOfEndedAllocations() async throws {
        try await TestPodman.ensureImage()
        let dir = try TempDir("specola-sweep")
        let logger = Logger(label: "test.sweep")
        let node = "sweep-\(UUID().uuidString.prefix(8).lowercased())"
        let podman = PodmanDriver(environment: TestPodman.environment, nodeName: node, logger: logger)
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let ended = "ended-\(suffix)", running = "running-\(suffix)", unknown = "unknown-\(suffix)"
        // Another node's agent sharing this podman: its ended allocation is not this node's to remove.
        let neighbour = PodmanDriver(environment: TestPodman.environment, nodeName: node + "-other", logger: logger)
        let neighbours = "neighbours-\(suffix)"
        defer {
            for id in [ended, running, unknown, neighbours] {
                _ = try? runBlocking("podman", ["rm", "--force", "--ignore", "--time", "0", PodmanDriver.containerName(id)],
                                     environment: TestPodman.environment)
            }
            dir.remove()
        }
        for (driver, id) in [(podman, ended), (podman, running), (podman, unknown), (neighbour, neighbours)] {
            var spec = TaskLaunch(allocationID: id, image: TestPodman.image, command: ["/bin/true"])
            spec.pull = "never"
            #expect(try await driver.create(spec, name: PodmanDriver.containerName(id)).status == 0)
        }
        let outbox = try Outbox(path: dir.file("outbox.sqlite"))
        for id in [ended, running, neighbours] { #expect(try outbox.claimInstruction(id, family: .task, payload: Data()) == nil) }
        for id in [ended, neighbours] {
            try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = true; $0.message = "exited with 0" })
        }
        let runner = WorkRunner(outbox: outbox, drivers: ["podman": podman, "exec": ExecDriver(nodeName: node, logger: logger)], logger: logger,
                                onEvent: {})

        #expect(await runner.sweepEndedContainers() == [ended])
        #expect(Set(try await podman.managedAllocations().keys) == [running, unknown])
        #expect(try await neighbour.managedAllocations().keys.sorted() == [neighbours])
        #expect(await runner.sweepEndedContainers() == [], "a second sweep finds nothing more to do")
    }
}
