import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch

/// The podman driver against real podman with runc: containers exist only for their task.
@Suite(.watchesCooperativePool) struct PodmanDriverTests {
    let driver = PodmanDriver(environment: TestPodman.environment, nodeName: "driver-test-\(UUID().uuidString.prefix(8))", logger: Logger(label: "test.driver"))

    func task(_ script: String, _ edit: (inout TaskSpec) -> Void = { _ in }) -> TaskSpec {
        var spec = TaskSpec(allocationID: "t-\(UUID().uuidString.prefix(8).lowercased())", image: TestPodman.image, command: ["/bin/sh", "-c", script])
        spec.pull = "never"
        edit(&spec)
        return spec
    }

    func containerExists(_ allocationID: String) async -> Bool {
        (try? await TestPodman.run(["container", "exists", PodmanDriver.containerName(allocationID)])) != nil
    }

    @Test func aTaskRunsKeepsItsOutputAndExitCodeAndIsRemoved() async throws {
        try await TestPodman.ensureImage()
        let spec = task("echo out-$SPECOLA_ITEM; echo err >&2; exit 3") { $0.environment = ["SPECOLA_ITEM": "7"] }
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .exited)
        #expect(outcome.exitCode == 3)
        #expect(outcome.stdout.contains("out-7"))
        #expect(outcome.stderr.contains("err"))
        #expect(!outcome.succeeded)
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func aTimeoutStopsTheTask() async throws {
        try await TestPodman.ensureImage()
        let spec = task("sleep 60") { $0.timeout = .seconds(2) }
        let started = ContinuousClock.now
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func theMemoryLimitIsEnforced() async throws {
        try await TestPodman.ensureImage()
        // Grows a shell variable past 16 MiB inside a 8 MiB container.
        let spec = task("x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done") {
            $0.memoryBytes = 8 * 1024 * 1024
            $0.timeout = .seconds(60)
        }
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode == 137, "outcome: \(outcome)")
    }

    @Test func aRestartedAgentReattachesInsteadOfRunningTwice() async throws {
        try await TestPodman.ensureImage()
        let spec = task("echo run; sleep 8; echo done")  // long enough to still run when listed on a loaded machine
        let name = PodmanDriver.containerName(spec.allocationID)
        // A previous agent process started the container and died.
        #expect(try await driver.create(spec, name: name).status == 0)
        try await TestPodman.run(["start", name])
        #expect(try await driver.managedAllocations()[spec.allocationID] == "running")

        let outcome = try await driver.run(spec)
        #expect(outcome.succeeded)
        // One start only: the output says "run" once.
        #expect(outcome.stdout.components(separatedBy: "run").count - 1 == 1, "stdout: \(outcome.stdout)")
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func aMissingImageFailsToStartWithTheReason() async throws {
        try await TestPodman.ensureImage()  // the tests' store is emptied first, once per run
        var spec = TaskSpec(allocationID: "t-missing-\(UUID().uuidString.prefix(6).lowercased())", image: "localhost/no-such-image:1", command: ["true"])
        spec.pull = "never"
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .failedToStart)
        #expect(outcome.message.contains("podman create failed"))
        #expect(await !containerExists(spec.allocationID))
    }
}
