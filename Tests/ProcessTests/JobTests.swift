import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// Jobs end to end: the real CLI submits, the coordinator places through Raft,
/// agents run the tasks in real podman containers (runc) and report back.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct JobTests {
    /// A coordinator and agents that run podman tasks with the test image.
    static func startCluster(agents: [(name: String, address: String, rack: String)]) async throws -> LocalCluster {
        try await TestPodman.ensureImage()
        let cluster = try LocalCluster()
        try await cluster.startCoordinator()
        for agent in agents {
            try cluster.writeAgentConfig(agent.name, address: agent.address, reportInterval: 1, rack: agent.rack, extra: """
                bmc: {mode: none}
                libvirt: {uri: ""}
                \(TestPodman.agentConfig)
                """)
            try cluster.startAgent(agent.name)
        }
        try await waitUntil("every agent to report", timeout: .seconds(60)) {
            try await cluster.nodes().filter { $0.reportsApplied > 0 && $0.facts.hasCapacity }.count == agents.count
        }
        return cluster
    }

    /// Writes a job spec into the cluster's temp dir, with the test image.
    static func spec(_ cluster: LocalCluster, _ name: String, _ yaml: String) throws -> String {
        try spec(in: cluster.dir, name, yaml)
    }

    static func spec(in dir: TempDir, _ name: String, _ yaml: String) throws -> String {
        try dir.write(name, yaml.replacingOccurrences(of: "IMAGE", with: TestPodman.image))
        return dir.file(name)
    }

    static func status(_ cluster: LocalCluster, _ id: String) async throws -> Specola_V1_JobStatus {
        let result = try await cluster.cli(["job", "status", id, "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_JobStatus(jsonString: result.stdout, options: Self.lenient)
    }

    static var lenient: JSONDecodingOptions {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }

    static func waitFinished(_ cluster: LocalCluster, _ id: String, timeout: Duration = .seconds(90)) async throws -> Specola_V1_JobStatus {
        try await waitUntil("job \(id) to finish", timeout: timeout, every: .milliseconds(200)) {
            try await status(cluster, id).finishedAtUnixMs != 0
        }
        return try await status(cluster, id)
    }

    /// Containers of a job that are still on this machine (they must be removed when tasks end).
    static func leftoverContainers(job: String) async throws -> [String] {
        let names = try await TestPodman.run(["ps", "-a", "--filter", "name=\(TestPodman.containerPattern(job: job))", "--format", "{{.Names}}"])
        return names.split(separator: "\n").map(String.init)
    }

    /// The agent reports a task's end first and removes its container right after (podman rm can
    /// take tens of seconds on a loaded machine), so a job can read as finished before they are gone.
    static func expectContainersRemoved(of jobs: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws {
        do {
            try await waitUntil("the containers of \(jobs.joined(separator: ", ")) to be removed", timeout: .seconds(90)) {
                for job in jobs where !(try await leftoverContainers(job: job)).isEmpty { return false }
                return true
            }
        } catch {
            Issue.record("containers left behind: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func pipelineRunsInOrderWithFanOutFanInAndStepOutputs() async throws {
        let cluster = try await Self.startCluster(agents: [("node1", "127.0.1.1", "r1"), ("node2", "127.0.1.2", "r2")])
        try await cluster.withCleanup(removingContainersOf: ["pipeline-m31"]) {
            let archive = cluster.dir.file("archive")
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            let sample = try String(contentsOfFile: BuiltProducts.repositoryRoot + "/Sources/Jobs/Samples/reduce-pipeline.yaml", encoding: .utf8)
                .replacingOccurrences(of: "localhost/specola-mini", with: "IMAGE")
                .replacingOccurrences(of: "source: /srv/archive", with: "source: \(archive)")
                // Its own name: DevCommandTests runs the same sample in the same podman store.
                .replacingOccurrences(of: "name: reduce-m31", with: "name: pipeline-m31")
            let file = try Self.spec(cluster, "reduce.yaml", sample)

            let result = try await cluster.cli(["job", "run", file])
            #expect(result.status == 0, "job run: \(result.stdout)\n\(result.stderr)")
            let job = try await Self.status(cluster, "pipeline-m31")
            #expect(job.state == "succeeded")
            #expect(job.tasks.count == 10)
            #expect(job.tasks.allSatisfy { $0.state == "succeeded" && $0.exitCodeKnown && $0.exitCode == 0 })
            #expect(Set(job.tasks.map(\.node)) == ["node1", "node2"], "the fan-out used both nodes")

            // Each calibrate instance got prepare's output, so it ran after prepare succeeded.
            let calibrate = try await cluster.cli(["logs", "pipeline-m31/calibrate", "--json"])
            let calibrateLogs = try Specola_V1_JobLogsResponse(jsonString: calibrate.stdout, options: Self.lenient)
            #expect(calibrateLogs.tasks.count == 8)
            for (index, task) in calibrateLogs.tasks.enumerated() {
                #expect(task.stdout.contains("calibrating exp0\(index + 1) with bias-m31.fits"), "\(task.taskID): \(task.stdout)")
            }
            // The fan-in saw all eight outputs, so it ran after every calibrate instance succeeded.
            let stack = try await cluster.cli(["logs", "pipeline-m31/stack"])
            #expect(stack.stdout.contains("stacking 8 calibrated exposures"), "\(stack.stdout)")
            for item in 1...8 { #expect(stack.stdout.contains("exp0\(item)-cal.fits")) }
            let listed = try await cluster.cli(["kv", "ls", "jobs/\(job.id)/outputs/calibrate/", "--json"])
            let outputs = try Specola_V1_KvListResponse(jsonString: listed.stdout, options: Self.lenient).kvs
            #expect(outputs.map { String(decoding: $0.value, as: UTF8.self) } == (1...8).map { "exp0\($0)-cal.fits" })
            try await Self.expectContainersRemoved(of: "pipeline-m31")
        }
    }

    @Test func arraysRetriesTimeoutsAndBadRequests() async throws {
        let cluster = try await Self.startCluster(agents: [("node1", "127.0.1.3", "r1")])
        try await cluster.withCleanup(removingContainersOf: ["sweep", "flaky", "broken", "slow"]) {
            let scratch = try cluster.dir.taskWritableDirectory("scratch")

            let array = try Self.spec(cluster, "array.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: sweep, owner: astro, project: theory}
                task:
                  name: run
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "echo index=$SPECOLA_ARRAY_INDEX"]
                  resources: {cpu: 0.1, memory: 32MiB}
                  array: {size: 4}
                """)
            // Fails the first time (no marker yet), succeeds on the retry.
            let flaky = try Self.spec(cluster, "flaky.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: flaky, owner: astro, project: theory}
                task:
                  name: try
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "if [ -f /scratch/marker ]; then echo second; exit 0; fi; touch /scratch/marker; echo first; exit 3"]
                  mounts: [{source: \(scratch), target: /scratch, readOnly: false}]
                  resources: {cpu: 0.1, memory: 32MiB}
                  retries: {attempts: 2, backoff: 1s}
                """)
            let broken = try Self.spec(cluster, "broken.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: broken, owner: astro, project: theory}
                task:
                  name: fail
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "echo going down >&2; exit 5"]
                  resources: {cpu: 0.1, memory: 32MiB}
                  retries: {attempts: 1, backoff: 1s}
                """)
            let slow = try Self.spec(cluster, "slow.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: slow, owner: astro, project: theory}
                task:
                  name: nap
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "sleep 120"]
                  resources: {cpu: 0.1, memory: 32MiB}
                  timeout: 2s
                """)
            // The dry run places all four array instances and commits nothing.
            let planned = try await cluster.cli(["job", "plan", array, "--json"])
            let plan = try Specola_V1_JobPlanResponse(jsonString: planned.stdout, options: Self.lenient)
            #expect(!plan.jobActive)
            #expect(plan.tasks.count == 4 && plan.tasks.allSatisfy { $0.change == "added" && $0.plannedNode == "node1" }, "\(plan)")
            #expect(try await cluster.cli(["job", "status", "sweep"]).status == 4, "a plan submits nothing")
            for file in [array, flaky, slow] {
                let submitted = try await cluster.cli(["job", "run", "--detach", file])
                #expect(submitted.status == 0, "\(file): \(submitted.stderr)")
            }
            // A task that keeps failing: `job run` waits and exits 1 after the retry is spent.
            let failed = try await cluster.cli(["job", "run", broken])
            #expect(failed.status == 1, "\(failed.stdout)\n\(failed.stderr)")
            let brokenJob = try await Self.status(cluster, "broken")
            #expect(brokenJob.state == "failed")
            #expect(brokenJob.tasks.first?.failures == 2)
            #expect(brokenJob.tasks.first?.exitCode == 5)
            let brokenLogs = try await cluster.cli(["logs", "broken"])
            #expect(brokenLogs.stderr.contains("going down"))

            let sweep = try await Self.waitFinished(cluster, "sweep")
            #expect(sweep.state == "succeeded")
            let sweepLogs = try await cluster.cli(["logs", "sweep"])
            for index in 0..<4 { #expect(sweepLogs.stdout.contains("index=\(index)\n"), "\(sweepLogs.stdout)") }

            let flakyJob = try await Self.waitFinished(cluster, "flaky")
            #expect(flakyJob.state == "succeeded")
            #expect(flakyJob.tasks.first?.failures == 1)
            #expect(try await cluster.cli(["logs", "flaky"]).stdout.contains("second"))

            let slowJob = try await Self.waitFinished(cluster, "slow")
            #expect(slowJob.state == "failed")
            #expect(slowJob.tasks.first?.message.contains("timeout") == true, "\(slowJob.tasks.first?.message ?? "")")
            let elapsed = slowJob.finishedAtUnixMs - slowJob.submittedAtUnixMs
            #expect(elapsed < 30_000, "a 2 s timeout took \(elapsed) ms to end the task")
            try await Self.expectContainersRemoved(of: "sweep", "flaky", "broken", "slow")

            // Bad YAML: file:line:column, exit 2, nothing submitted.
            let bad = try Self.spec(cluster, "bad.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: bad, owner: astro, project: theory}
                task:
                  name: x
                  driver: podman
                  image: IMAGE
                  resources: {cpu: lots}
                """)
            let badRun = try await cluster.cli(["job", "run", bad])
            #expect(badRun.status == 2)
            #expect(badRun.stderr.contains("bad.yaml:8:"), "\(badRun.stderr)")
            #expect(badRun.stderr.contains("nothing was submitted"))
            // More CPU than any node has: refused up front with the reason, exit 8.
            let huge = try Self.spec(cluster, "huge.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: huge, owner: astro, project: theory}
                task:
                  name: big
                  driver: podman
                  image: IMAGE
                  resources: {cpu: 4096}
                """)
            let hugeRun = try await cluster.cli(["job", "run", huge])
            #expect(hugeRun.status == 8, "\(hugeRun.stderr)")
            #expect(hugeRun.stderr.contains("needs 4096 cores"), "\(hugeRun.stderr)")
            #expect(try await cluster.cli(["job", "status", "bad"]).status == 4)
            #expect(try await cluster.cli(["job", "status", "huge"]).status == 4)
        }
    }

    @Test func drainMovesWorkAndCancelStopsIt() async throws {
        let cluster = try await Self.startCluster(agents: [("node1", "127.0.1.4", "r1"), ("node2", "127.0.1.5", "r2")])
        try await cluster.withCleanup(removingContainersOf: ["sleepy"]) {
            let file = try Self.spec(cluster, "sleepy.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: sleepy, owner: astro, project: theory}
                task:
                  name: nap
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "trap 'exit 143' TERM; while true; do sleep 0.2; done"]
                  resources: {cpu: 0.1, memory: 32MiB}
                """)
            #expect(try await cluster.cli(["job", "run", "--detach", file]).status == 0)
            try await waitUntil("the task to run", timeout: .seconds(30)) {
                try await Self.status(cluster, "sleepy").tasks.first?.state == "running"
            }
            let first = try #require(try await Self.status(cluster, "sleepy").tasks.first)
            let other = first.node == "node1" ? "node2" : "node1"
            // Planning the same spec again: nothing would change.
            let replanned = try await cluster.cli(["job", "plan", file, "--json"])
            let plan = try Specola_V1_JobPlanResponse(jsonString: replanned.stdout, options: Self.lenient)
            #expect(plan.jobActive && plan.tasks.map(\.change) == ["unchanged"], "\(plan)")

            let drained = try await cluster.cli(["node", "drain", first.node])
            #expect(drained.status == 0, "\(drained.stderr)")
            try await waitUntil("the task to run on \(other)", timeout: .seconds(60)) {
                let task = try await Self.status(cluster, "sleepy").tasks.first
                return task?.state == "running" && task?.node == other
            }
            let moved = try #require(try await Self.status(cluster, "sleepy").tasks.first)
            #expect(moved.relocations == 1)
            #expect(moved.failures == 0, "a drain is not a failure")
            #expect(try await cluster.node(first.node)?.draining == true)

            let cancelled = try await cluster.cli(["job", "cancel", "sleepy"])
            #expect(cancelled.status == 0)
            let job = try await Self.waitFinished(cluster, "sleepy")
            #expect(job.state == "cancelled")
            try await waitUntil("the cancelled task's container to be removed", timeout: .seconds(30)) {
                try await Self.leftoverContainers(job: "sleepy").isEmpty
            }
            try await waitUntil("no allocation left on \(other)", timeout: .seconds(30)) {
                try await cluster.node(other)?.allocations == 0
            }
            #expect(try await cluster.cli(["node", "uncordon", first.node]).status == 0)
            #expect(try await cluster.node(first.node)?.draining == false)
        }
    }

    @Test func agentKilledMidJobRunsNothingTwice() async throws {
        let cluster = try await Self.startCluster(agents: [("node1", "127.0.1.6", "r1")])
        try await cluster.withCleanup(removingContainersOf: ["steady"]) {
            let ledger = try cluster.dir.taskWritableDirectory("ledger")
            // Each run appends to a file named after its task: two lines if it runs once, more if twice.
            let file = try Self.spec(cluster, "steady.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: steady, owner: astro, project: theory}
                task:
                  name: work
                  driver: podman
                  image: IMAGE
                  command: /bin/sh
                  args: ["-c", "f=/ledger/$(echo $SPECOLA_TASK | tr '/.' '__'); echo start >> $f; sleep 6; echo end >> $f"]
                  mounts: [{source: \(ledger), target: /ledger, readOnly: false}]
                  count: 3
                  resources: {cpu: 0.1, memory: 32MiB}
                """)
            #expect(try await cluster.cli(["job", "run", "--detach", file]).status == 0)
            try await waitUntil("all three tasks to run", timeout: .seconds(30)) {
                try await Self.status(cluster, "steady").tasks.allSatisfy { $0.state == "running" }
            }
            let agent = try #require(cluster.agents["node1"])
            try await agent.stop(SIGKILL)
            // The containers keep running without their agent; restart it while they do.
            try await Task.sleep(for: .seconds(1))
            try cluster.startAgent("node1")
            let job = try await Self.waitFinished(cluster, "steady", timeout: .seconds(60))
            #expect(job.state == "succeeded", "\(job)")
            #expect(job.tasks.allSatisfy { $0.relocations == 0 && $0.failures == 0 }, "\(job.tasks)\n\(cluster.agents["node1"]?.log ?? "")")
            let files = try FileManager.default.contentsOfDirectory(atPath: ledger).sorted()
            #expect(files.count == 3, "\(files)")
            for name in files {
                let lines = try String(contentsOfFile: ledger + "/" + name, encoding: .utf8).split(separator: "\n")
                #expect(lines == ["start", "end"], "\(name) ran \(lines.filter { $0 == "start" }.count) times")
            }
            #expect(cluster.agents["node1"]?.log.contains("re-attaching to a task that outlived the agent") == true)
            try await Self.expectContainersRemoved(of: "steady")
        }
    }

    /// An exec task cannot be re-attached (its output pipes die with the agent). The restarted agent
    /// must kill what the crashed one left running before it reports the task lost, or the task
    /// would run twice at once. The run's ledger (host uptime) shows the two runs never overlap.
    @Test func anExecTaskOrphanedByAnAgentCrashIsKilledBeforeItRunsAgain() async throws {
        let cluster = try await Self.startCluster(agents: [("node1", "127.0.1.7", "r1")])
        try await cluster.withCleanup {
            let ledger = try cluster.dir.taskWritableDirectory("ledger")
            let file = try Self.spec(cluster, "orphan.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: orphan, owner: astro, project: theory}
                task:
                  name: work
                  driver: exec
                  command: /bin/sh
                  args: ["-c", "f=\(ledger)/run-$$; cut -d' ' -f1 /proc/uptime > $f.start; (while true; do cut -d' ' -f1 /proc/uptime > $f.child.tmp; mv $f.child.tmp $f.child; sleep 0.1; done) & i=0; while [ $i -lt 40 ]; do cut -d' ' -f1 /proc/uptime > $f.alive.tmp; mv $f.alive.tmp $f.alive; sleep 0.1; i=$((i+1)); done; kill $!"]
                  resources: {cpu: 0.1, memory: 64MiB}
                """)
            #expect(try await cluster.cli(["job", "run", "--detach", file]).status == 0)
            try await waitUntil("the task to run", timeout: .seconds(30)) {
                try await Self.status(cluster, "orphan").tasks.first?.state == "running"
            }
            try await waitUntil("the first run to write its ledger", timeout: .seconds(10)) {
                try FailoverTests.runIntervals(ledger).count == 1
            }
            try await cluster.agents["node1"]!.stop(SIGKILL)
            try cluster.startAgent("node1")
            let job = try await Self.waitFinished(cluster, "orphan", timeout: .seconds(60))
            #expect(job.state == "succeeded", "\(job)")
            #expect(job.tasks.first?.relocations == 1, "the orphaned run was reported lost: \(job.tasks)")
            let runs = try FailoverTests.runIntervals(ledger)
            #expect(runs.count == 2, "\(runs)")
            try FailoverTests.expectNoOverlap(ledger)
            // The first run's background child died with it, before the second run started.
            if runs.count == 2 {
                let child = Double(try String(contentsOfFile: "\(ledger)/\(runs[0].id).child", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? .infinity
                #expect(child < runs[1].start, "the first run's child was alive at \(child), after the second run started at \(runs[1].start)")
            }
            #expect(cluster.agents["node1"]?.log.contains("killed an exec task orphaned by an agent restart") == true)
        }
    }
}
