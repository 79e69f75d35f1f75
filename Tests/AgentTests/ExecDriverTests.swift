import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch
import SpecolaProcesses

/// The exec driver runs real processes with rlimits and a timeout.
@Suite(.runsOffThePool, .watchesCooperativePool) struct ExecDriverTests {
    let driver = ExecDriver(nodeName: "exec-test-\(getpid())", policy: ExecPolicy(enabled: true), logger: Logger(label: "test.exec"))

    @Test func aProcessRunsWithItsEnvironmentAndExitCode() async throws {
        var spec = TaskLaunch(allocationID: "e1", image: "", command: ["/bin/sh", "-c", "echo item=$SPECOLA_ITEM alloc=$SPECOLA_ALLOCATION_ID; exit 4"])
        spec.environment = ["SPECOLA_ITEM": "b"]
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode == 4)
        #expect(outcome.stdout.contains("item=b alloc=e1"))
    }

    /// Peak resident memory of this process so far (VmHWM), in bytes.
    static func peakResidentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        let kilobytes = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }

    /// The agent runs as root: a task's output is a rolling tail, never buffered whole.
    @Test func aTaskThatPrintsOneGiBKeepsOnlyItsTail() async throws {
        let before = try Self.peakResidentBytes()
        // Niced: 2 GiB through four processes would otherwise take both cores from every other test.
        let spec = TaskLaunch(allocationID: "e-big", image: "", command: [
            "/usr/bin/nice", "-n", "19", "/bin/sh", "-c", "head -c 1073741824 /dev/zero | tr '\\0' x; echo; echo the-end; head -c 1073741824 /dev/zero | tr '\\0' y >&2",
        ])
        let outcome = try await driver.run(spec)
        let growth = try Self.peakResidentBytes() - before
        #expect(outcome.exitCode == 0)
        #expect(outcome.stdout.hasPrefix("…"))
        #expect(outcome.stdout.hasSuffix("x\nthe-end\n"))
        #expect(outcome.stdout.utf8.count == TaskOutcome.outputLimit + "…".utf8.count)
        #expect(outcome.stderr.utf8.count == TaskOutcome.outputLimit + "…".utf8.count)
        // The whole test process's peak: tests running beside this one add their own, so the bound
        // only proves that the 2 GiB were never held (RollingTailTests bound the buffer itself).
        #expect(growth < 1 << 30, "peak RSS grew by \(growth >> 20) MiB while the task printed 2 GiB")
    }

    @Test func aTimeoutKillsTheProcess() async throws {
        var spec = TaskLaunch(allocationID: "e2", image: "", command: ["/bin/sleep", "30"])
        spec.timeout = .seconds(1)
        let started = ContinuousClock.now
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func theMemoryLimitApplies() async throws {
        // python3 cannot allocate 512 MiB inside a 256 MiB address space.
        var spec = TaskLaunch(allocationID: "e3", image: "", command: ["python3", "-c", "x = bytearray(512 * 1024 * 1024)"])
        spec.memoryBytes = 256 * 1024 * 1024
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode != 0)
        #expect(outcome.stderr.contains("MemoryError"))
    }

    @Test func aMissingProgramFailsToStart() async throws {
        let outcome = try await driver.run(TaskLaunch(allocationID: "e4", image: "", command: ["no-such-tool-here"]))
        #expect(outcome.ending == .failedToStart)
        #expect(outcome.message.contains("not installed"))
    }

    @Test func aTimeoutKillsEverythingTheTaskStarted() async throws {
        // The background sleep holds stdout open: only a process-group kill ends the run in time.
        var spec = TaskLaunch(allocationID: "e5-\(getpid())", image: "", command: ["/bin/sh", "-c", "sleep 30 & sleep 30; wait"])
        spec.timeout = .seconds(1)
        let started = ContinuousClock.now
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(driver.survivors(of: spec.allocationID).isEmpty)
    }

    @Test func survivorsOfACrashedAgentAreFoundByTheirEnvironmentAndKilled() async throws {
        // As a crashed agent leaves them: a task and its child, in a group of their own.
        let id = "orphan-\(getpid())"
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let pid = try spawnProcess("/bin/sh", ["-c", "sleep 60 & sleep 60"],
                                   environment: ["SPECOLA_ALLOCATION_ID": id, "SPECOLA_NODE": driver.nodeName],
                                   stdout: devNull, stderr: devNull, ownProcessGroup: true)
        let reaper = Task.detached { waitForExit(pid) }
        try await waitUntil("the task and both sleeps to run", timeout: .seconds(10)) { driver.survivors(of: id).count == 3 }
        // Another node's task with the same allocation id is not ours.
        let other = ExecDriver(nodeName: "another-node", logger: Logger(label: "test.exec"))
        #expect(other.survivors(of: id).isEmpty)

        let killed = await driver.killSurvivors(of: id, timeout: .seconds(10))
        #expect(killed == 3)
        #expect(driver.survivors(of: id).isEmpty)
        #expect(await reaper.value == 128 + SIGKILL)
    }

    @Test func anExecTaskIsRefusedWhereTheNodeDoesNotEnableExec() async throws {
        let disabled = ExecDriver(nodeName: "locked-node", logger: Logger(label: "test.exec"))
        let outcome = try await disabled.run(TaskLaunch(allocationID: "e6", image: "", command: ["/bin/true"]))
        #expect(outcome.ending == .failedToStart)
        #expect(outcome.message == "exec tasks are disabled on node locked-node; set tasks.exec.enabled: true in its agent's configuration to allow them, or use driver: podman")
    }

    @Test func anExecTaskRunsAsTheUnprivilegedUserWithACleanEnvironment() async throws {
        let nobody = try #require(getpwnam("nobody")?.pointee)
        let identity = try await driver.run(TaskLaunch(allocationID: "e7", image: "", command: ["/bin/sh", "-c", "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status"]))
        #expect(identity.stdout == "\(nobody.pw_uid)\n\(nobody.pw_gid)\n\(nobody.pw_gid)\nNoNewPrivs:\t1\n", "\(identity)")

        setenv("SPECOLA_TEST_AGENT_ONLY", "the agent's own", 1)
        defer { unsetenv("SPECOLA_TEST_AGENT_ONLY") }
        var spec = TaskLaunch(allocationID: "e8", image: "", command: ["/usr/bin/env"])
        spec.environment = ["MODEL": "plummer"]
        let outcome = try await driver.run(spec)
        let variables = Dictionary(uniqueKeysWithValues: outcome.stdout.split(separator: "\n").map { line in
            let pair = line.split(separator: "=", maxSplits: 1)
            return (String(pair[0]), pair.count > 1 ? String(pair[1]) : "")
        })
        #expect(variables == [
            "PATH": ExecDriver.searchPath, "HOME": String(cString: nobody.pw_dir), "MODEL": "plummer",
            "SPECOLA_ALLOCATION_ID": "e8", "SPECOLA_NODE": driver.nodeName,
        ])
    }

    /// The instruction ledger keeps a RunTask for a restarted agent; it never holds environment values.
    @Test func theInstructionLedgerHoldsNoEnvironmentValues() async throws {
        let dir = try TempDir("specola-ledger")
        defer { dir.remove() }
        let logger = Logger(label: "test.ledger")
        let outbox = try Outbox(path: dir.file("outbox.sqlite"))
        let runner = WorkRunner(outbox: outbox, drivers: ["podman": PodmanDriver(nodeName: driver.nodeName, logger: logger), "exec": driver],
                                logger: logger, onEvent: {})
        let executor = InstructionExecutor(outbox: outbox, work: runner, logger: logger, onFullReportRequested: {})
        let id = "e9-\(getpid())"
        _ = try await executor.execute(.with {
            $0.id = id
            $0.runTask = .with {
                $0.allocationID = id
                $0.driver = "exec"
                $0.command = ["/bin/sleep", "30"]
                $0.env = ["TOKEN": "s3cret-token", "FRAMES": "a\nb"]
            }
        })
        let stored = try #require(try outbox.unfinishedInstructions().first { $0.id == id }?.payload)
        let run = try Specola_V1_RunTask(serializedBytes: stored)
        #expect(run.env == ["TOKEN": "(redacted)", "FRAMES": "(redacted)\n"])
        for file in ["outbox.sqlite", "outbox.sqlite-wal"] {
            let bytes = FileManager.default.contents(atPath: dir.file(file)) ?? Data()
            #expect(!String(decoding: bytes, as: UTF8.self).contains("s3cret-token"), "\(file) holds the value")
        }
        _ = await runner.stop(.with { $0.allocationID = id; $0.reason = "test over" })
        try await waitUntil("the task to stop") { await runner.runningAllocations.isEmpty }
    }
}
