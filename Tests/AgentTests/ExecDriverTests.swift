import Foundation
import Logging
import Testing
@testable import SpecolaAgent

/// The exec driver runs real processes with rlimits and a timeout.
@Suite struct ExecDriverTests {
    let driver = ExecDriver(logger: Logger(label: "test.exec"))

    @Test func aProcessRunsWithItsEnvironmentAndExitCode() async throws {
        var spec = TaskSpec(allocationID: "e1", image: "", command: ["/bin/sh", "-c", "echo item=$SPECOLA_ITEM alloc=$SPECOLA_ALLOCATION_ID; exit 4"])
        spec.environment = ["SPECOLA_ITEM": "b"]
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode == 4)
        #expect(outcome.stdout.contains("item=b alloc=e1"))
    }

    @Test func aTimeoutKillsTheProcess() async throws {
        var spec = TaskSpec(allocationID: "e2", image: "", command: ["/bin/sleep", "30"])
        spec.timeout = .seconds(1)
        let started = ContinuousClock.now
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func theMemoryLimitApplies() async throws {
        // python3 cannot allocate 512 MiB inside a 256 MiB address space.
        var spec = TaskSpec(allocationID: "e3", image: "", command: ["python3", "-c", "x = bytearray(512 * 1024 * 1024)"])
        spec.memoryBytes = 256 * 1024 * 1024
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode != 0)
        #expect(outcome.stderr.contains("MemoryError"))
    }

    @Test func aMissingProgramFailsToStart() async throws {
        let outcome = try await driver.run(TaskSpec(allocationID: "e4", image: "", command: ["no-such-tool-here"]))
        #expect(outcome.ending == .failedToStart)
        #expect(outcome.message.contains("not installed"))
    }
}
