import SpecolaJobs
import SpecolaWire
import Testing
@testable import SpecolaClusterCore
import CooperativePoolWatch

/// Project quotas in the scheduling input, the refusal rate limit, and usage accounting.
@Suite(.watchesCooperativePool) struct QuotaAuditUsageTests {
    func request(_ id: String, project: String, cpu: Int64 = 1000, memory: Int64 = 1 << 30, priority: Int = 50, index: UInt64 = 1) -> TaskRequest {
        TaskRequest(id: id, job: "j", project: project, priority: priority, submitIndex: index,
                    resources: Resources(cpuMillicores: cpu, memoryBytes: memory, gpus: 0, scratchBytes: 0))
    }

    @Test func aTaskOverItsProjectsQuotaWaitsAndSaysWhichQuota() {
        let projects: [String: Specola_V1_Project] = [
            "astro": .with { $0.name = "astro"; $0.maxCpuMillicores = 2000 },
            "radio": .with { $0.name = "radio"; $0.maxTasks = 1 },
            "mem": .with { $0.name = "mem"; $0.maxMemoryBytes = 1 << 30 },
        ]
        var quotas = ProjectQuotas(projects: projects, allocated: ["astro": Resources(cpuMillicores: 1000, memoryBytes: 0, gpus: 0, scratchBytes: 0)],
                                   tasks: ["radio": 1])
        #expect(quotas.admit(request("a1", project: "astro")) == nil, "1 of 2 cores held: one more fits")
        #expect(quotas.admit(request("a2", project: "astro")) == "waits on project astro's quota of 2 cores (2 in use, the task asks 1)")
        #expect(quotas.admit(request("r1", project: "radio")) == "waits on project radio's quota of 1 concurrent tasks (1 running)")
        #expect(quotas.admit(request("m1", project: "mem")) == nil)
        #expect(quotas.admit(request("m2", project: "mem"))?.contains("memory quota of 1GiB") == true)
        #expect(quotas.admit(request("x", project: "not-a-project", cpu: 1_000_000)) == nil, "an admin's free-text project has no quota")
    }

    @Test func repeatedRefusalsOfOnePrincipalFoldIntoOneRecordPerWindow() {
        var limiter = RefusalLimiter(burst: 2, windowMs: 1_000)
        func refusal(at: Int64) -> Specola_V1_AuditRecord {
            .with { $0.atUnixMs = at; $0.principal = "user/mallory"; $0.verb = "job.submit"; $0.resource = "job/x"; $0.outcome = "refused" }
        }
        #expect(limiter.admit(refusal(at: 0)) != nil)
        #expect(limiter.admit(refusal(at: 1)) != nil)
        for at in 2..<500 { #expect(limiter.admit(refusal(at: Int64(at))) == nil) }
        #expect(limiter.drain(now: 600).isEmpty, "the window is still open")
        let summaries = limiter.drain(now: 1_000)
        #expect(summaries.count == 1)
        #expect(summaries.first?.repeats == 498)
        #expect(limiter.admit(refusal(at: 1_001)) != nil, "a new window starts afresh")
    }

    @Test func endedAllocationsAddCoreAndMemoryHoursToTheJobsProjectAndOwner() throws {
        var state = ClusterState()
        _ = state.apply(.registerNode(name: "n1", address: "127.0.0.1", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 0))
        let yaml = """
            apiVersion: specola/v1
            kind: Job
            metadata: {name: j, owner: bob, project: astro}
            task: {name: t, driver: podman, image: localhost/x, resources: {cpu: 2, memory: 4GiB}}
            """
        guard case .success(let spec) = JobSpecParser.parse(yaml, file: "j.yaml") else { Issue.record("spec"); return }
        _ = state.apply(.with {
            $0.proposedAtUnixMs = 0
            $0.submitJob = .with { $0.jobID = "astro/j"; $0.spec = .init(spec) }
        })
        let taskID = try #require(state.jobs.jobs["astro/j"]?.run.order.first)
        _ = state.apply(.with {
            $0.proposedAtUnixMs = 0
            $0.placeTasks.placements = [.with { $0.jobID = "astro/j"; $0.taskID = taskID; $0.node = "n1"; $0.allocationID = "a1" }]
        })
        let report = Specola_V1_Report.with {
            $0.seq = 1
            $0.taskEvents = [.with { $0.allocationID = "a1"; $0.kind = .exited; $0.exitCode = 0 }]
        }
        _ = state.apply(.applyReport(node: "n1", report: report, receivedAtUnixMs: 1_800_000))
        let rows = state.jobs.usage(project: "", since: 0)
        #expect(rows.count == 1)
        #expect(rows.first?.project == "astro" && rows.first?.user == "bob")
        #expect(abs((rows.first?.coreHours ?? 0) - 1.0) < 1e-9, "2 cores for half an hour")
        #expect(abs((rows.first?.memoryGibHours ?? 0) - 2.0) < 1e-9, "4 GiB for half an hour")
        let restored = try ClusterState(snapshot: state.snapshot())
        #expect(restored.jobs.usage(project: "astro", since: 0) == rows)
        #expect(state.jobs.usage(project: "radio", since: 0).isEmpty)
    }

    @Test func fairShareWeightsAndQuotasComeFromTheProjectObjectsInTheState() throws {
        var state = ClusterState()
        _ = state.apply(.project("astro", at: 0, .create(.with { $0.weight = 3; $0.maxTasks = 1 })))
        let yaml = """
            apiVersion: specola/v1
            kind: Job
            metadata: {name: j, owner: bob, project: astro}
            task: {name: t, driver: podman, image: localhost/x, resources: {cpu: 1, memory: 64MiB}, count: 3}
            """
        guard case .success(let spec) = JobSpecParser.parse(yaml, file: "j.yaml") else { Issue.record("spec"); return }
        _ = state.apply(.with {
            $0.proposedAtUnixMs = 0
            $0.submitJob = .with { $0.jobID = "astro/j"; $0.spec = .init(spec) }
        })
        let input = SchedulingInput(state: state, status: { _ in .ready }, nowUnixMs: 0)
        #expect(input.usage.share(of: "astro") == 3)
        #expect(input.usage.share(of: "radio") == 1, "a project without an object keeps the default share")
        #expect(input.pending.count == 1, "one task at a time for astro")
        #expect(input.quotaWaits.count == 2)
        #expect(input.quotaWaits.values.allSatisfy { $0.contains("quota of 1 concurrent tasks") })
    }
}
