import SpecolaClusterCore
import Foundation
import GRPCCore
import Logging
import SpecolaJobs
import SpecolaProtocol

/// Submitting, watching and cancelling jobs, their logs, and node cordon/drain.
/// Served by the leader: job state is read there so that waiting reasons
/// (leader-local) are current; followers redirect.
struct JobsService: Specola_V1_Jobs.SimpleServiceProtocol {
    let replica: Replica
    let controller: JobController
    let logger: Logger
    let access: AccessGate

    /// The authorization resource of a job.
    static func resource(of entry: JobEntry) -> Resource {
        .job(entry.id, project: entry.spec.metadata.project)
    }

    /// The job `reference` names: `PROJECT/NAME`, or a bare NAME when only one project has a job
    /// of that name, or only one of the caller's projects does.
    private func lookup(_ reference: String, for caller: Principal) async throws -> JobEntry {
        if JobBook.isScoped(reference) {
            guard let entry = await replica.job(reference) else { throw Self.noJob(reference) }
            return entry
        }
        let named = await replica.jobs(named: reference)
        if named.count == 1 { return named[0] }
        guard !named.isEmpty else { throw Self.noJob(reference) }
        let mine = Set(await access.roles(of: caller).projects)
        let own = named.filter { mine.contains($0.spec.metadata.project) }
        if own.count == 1 { return own[0] }
        let projects = (own.isEmpty ? named : own).map(\.spec.metadata.project).sorted()
        throw RPCError(code: .invalidArgument, message:
            "job name '\(reference)' is used in projects \(projects.joined(separator: ", ")); name one as PROJECT/\(reference) (or give --project PROJECT)")
    }

    private func propose(_ command: Specola_V1_Command) async throws -> ApplyOutcome {
        let outcome = try await serving { try await replica.propose(command) }
        if case .rejected(let reason) = outcome {
            throw RPCError(code: .failedPrecondition, message: reason)
        }
        return outcome
    }

    func submit(request: Specola_V1_SubmitJobRequest, context: ServerContext) async throws -> Specola_V1_JobStatus {
        let identity = try CallerIdentity.principal(context)
        try await serving { try await replica.requireLeader() }
        let file = request.fileName.isEmpty ? "job.yaml" : request.fileName
        var spec: JobSpec
        switch JobSpecParser.parse(request.yaml, file: file) {
        case .success(let parsed): spec = parsed
        case .failure(let errors):
            throw RPCError(code: .invalidArgument, message: "\(errors.errors.count) problem(s); nothing was submitted\n\(errors)")
        }
        let resource = Resource.job(spec.metadata.jobID, project: spec.metadata.project)
        try await access.check(identity, .jobSubmit, resource, request: request)
        switch JobAdmission.admit(spec, by: identity, roles: await access.roles(of: identity), projects: await replica.accessBook.projects) {
        case .success(let admitted): spec = admitted
        case .failure(let refusal): throw access.refused(identity, refusal.verb, resource, refusal.message, request: request)
        }
        return try await access.audited(identity, .jobSubmit, resource, request: request) { identity in
            try await submit(spec, file: file, by: identity)
        }
    }

    private func submit(_ spec: JobSpec, file: String, by identity: Principal) async throws -> Specola_V1_JobStatus {
        let (state, liveness) = await replica.schedulingState()
        if let impossible = Self.impossibleTasks(spec, state: state, status: liveness) {
            throw RPCError(code: .failedPrecondition, message: "nothing was submitted: \(impossible)")
        }
        let id = spec.metadata.jobID
        _ = try await propose(.submitJob(spec, sourceFile: file, by: identity.description))
        logger.info("job submitted", metadata: [
            "job.id": "\(id)", "job.tasks": "\(spec.instances(jobID: id).count)", "submitted.by": "\(identity)",
        ])
        controller.nudge()
        return try await status(of: id)
    }

    /// Tasks that no node could run even if the cluster were empty, worded for the user.
    static func impossibleTasks(_ spec: JobSpec, state: ClusterState, status: [String: NodeStatus]) -> String? {
        let empty = ClusterView(nodes: state.nodes.values.map { node in
            NodeView(name: node.name, status: status[node.name] ?? .down, labels: node.facts.capacity.labels,
                     capacity: SchedulingInput.capacity(of: node))
        })
        var problems: [String] = []
        var seenTasks: Set<String> = []
        for instance in spec.instances() where seenTasks.insert(instance.task.name).inserted {
            let request = TaskRequest(instance: instance, job: spec, submitIndex: 0)
            let plan = Scheduler.plan(cluster: empty, pending: [request], usage: .none)
            if let unplaced = plan.unplaced.first, unplaced.reason.kind == .impossible {
                problems.append("task '\(instance.task.name)' \(unplaced.reason.message)")
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    func get(request: Specola_V1_GetJobRequest, context: ServerContext) async throws -> Specola_V1_JobStatus {
        let caller = try CallerIdentity.principal(context)
        if !request.stale { try await serving { try await replica.readBarrier() } }
        let entry = try await lookup(request.id, for: caller)
        try await access.check(caller, .jobRead, Self.resource(of: entry), request: request)
        let id = entry.id
        if request.waitMs > 0 {
            let deadline = ContinuousClock.now + .milliseconds(min(request.waitMs, 30_000))
            while ContinuousClock.now < deadline, !Task.isCancelled, let entry = await replica.job(id), entry.revision <= request.afterRevision {
                await replica.waitForProgress(within: deadline - ContinuousClock.now)
            }
        }
        return try await status(of: id)
    }

    func list(request: Specola_V1_ListJobsRequest, context: ServerContext) async throws -> Specola_V1_ListJobsResponse {
        let caller = try await access.check(context, .jobRead, .cluster)
        if !request.stale { try await serving { try await replica.readBarrier() } }
        let state = await replica.replicatedState
        let readable = access.readableProjects(of: caller)
        let entries = state.jobs.jobs.values
            .filter { (request.all || !$0.isFinished) && readable.map { [project = $0.spec.metadata.project] in $0.contains(project) } ?? true }
            .sorted { $0.submitIndex < $1.submitIndex }
        return .with { $0.jobs = entries.map { status(of: $0, withTasks: false) } }
    }

    func cancel(request: Specola_V1_CancelJobRequest, context: ServerContext) async throws -> Specola_V1_JobStatus {
        let caller = try CallerIdentity.principal(context)
        let entry = try await lookup(request.id, for: caller)
        return try await access.audited(context, .jobCancel, Self.resource(of: entry), request: request) { identity in
            _ = try await propose(.cancelJob(entry.id, by: identity.description))
            logger.info("job cancelled", metadata: ["job.id": "\(entry.id)", "requested.by": "\(identity)"])
            controller.nudge()
            return try await status(of: entry.id)
        }
    }

    func logs(request: Specola_V1_JobLogsRequest, context: ServerContext) async throws -> Specola_V1_JobLogsResponse {
        let caller = try CallerIdentity.principal(context)
        try await serving { try await replica.readBarrier() }
        let (entry, taskID) = try await logsTarget(request, for: caller)
        try await access.check(caller, .jobRead, Self.resource(of: entry), request: request)
        // A step name selects all its instances; an instance id (with or without the job) selects one.
        let wanted = taskID.isEmpty ? entry.run.order : entry.run.order.filter { id in
            id == taskID || id == "\(entry.id)/\(taskID)" || entry.instances[id]?.task.name == taskID
        }
        guard !wanted.isEmpty else {
            throw RPCError(code: .notFound, message: "job '\(entry.id)' has no task '\(taskID)'; `specola job status \(entry.id)` lists its tasks")
        }
        return try LogPage(request: request, total: wanted.count).response(tasks: wanted, logs: entry.logs)
    }

    /// The job and task a logs request names: `job_id` may be `PROJECT/NAME[/TASK]` or `NAME[/TASK]`
    /// (the CLI sends what the user typed); an explicit `task_id` keeps `job_id` whole.
    private func logsTarget(_ request: Specola_V1_JobLogsRequest, for caller: Principal) async throws -> (JobEntry, String) {
        guard request.taskID.isEmpty else { return (try await lookup(request.jobID, for: caller), request.taskID) }
        let parts = request.jobID.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count >= 2, let entry = await replica.job(parts[0] + "/" + parts[1]) {
            return (entry, parts.dropFirst(2).joined(separator: "/"))
        }
        return (try await lookup(parts[0], for: caller), parts.dropFirst().joined(separator: "/"))
    }

    func setNodeScheduling(request: Specola_V1_SetNodeSchedulingRequest, context: ServerContext) async throws -> Specola_V1_Node {
        try await access.audited(context, .nodeSchedule, .node(request.name), request: request) { identity in
            try await setNodeScheduling(request, by: identity)
        }
    }

    private func setNodeScheduling(_ request: Specola_V1_SetNodeSchedulingRequest, by identity: Principal) async throws -> Specola_V1_Node {
        let flags: (cordoned: Bool, draining: Bool)
        switch request.action {
        case "cordon": flags = (true, false)
        case "drain": flags = (true, true)
        case "uncordon": flags = (false, false)
        default: throw RPCError(code: .invalidArgument, message: "unknown action '\(request.action)'; use cordon, drain or uncordon")
        }
        guard await replica.node(request.name) != nil else {
            throw RPCError(code: .notFound, message: "no node named '\(request.name)'; `specola nodes` lists the known nodes")
        }
        _ = try await propose(.nodeScheduling(node: request.name, cordoned: flags.cordoned, draining: flags.draining))
        logger.info("node scheduling changed", metadata: [
            "node.name": "\(request.name)", "action": "\(request.action)", "requested.by": "\(identity)",
        ])
        controller.nudge()
        guard let node = await replica.node(request.name) else { throw RPCError(code: .notFound, message: "node \(request.name) vanished") }
        return node
    }

    func plan(request: Specola_V1_SubmitJobRequest, context: ServerContext) async throws -> Specola_V1_JobPlanResponse {
        try await access.check(context, .jobRead, .cluster)
        try await serving { try await replica.requireLeader() }
        let spec: JobSpec
        switch JobSpecParser.parse(request.yaml, file: request.fileName.isEmpty ? "job.yaml" : request.fileName) {
        case .success(let parsed): spec = parsed
        case .failure(let errors): throw RPCError(code: .invalidArgument, message: "\(errors.errors.count) problem(s)\n\(errors)")
        }
        let (state, liveness) = await replica.schedulingState()
        return Self.dryRun(spec, state: state, status: liveness)
    }

    /// Plans the spec's runnable instances behind everything already queued, and diffs against the running version.
    static func dryRun(_ spec: JobSpec, state: ClusterState, status: [String: NodeStatus]) -> Specola_V1_JobPlanResponse {
        let now = WallClock.nowUnixMs()
        let id = spec.metadata.jobID
        let active = state.jobs.jobs[id].flatMap { $0.isFinished ? nil : $0 }
        let input = SchedulingInput(state: state, status: { status[$0] ?? .down }, nowUnixMs: now)
        let running: [RunningTask] = active.map { entry in
            entry.run.order.compactMap { taskID in
                guard let task = entry.run.tasks[taskID], task.state == .placed || task.state == .running,
                      let node = task.node, let instance = entry.instances[taskID] else { return nil }
                return RunningTask(instance: instance, node: node)
            }
        } ?? []
        let runningIDs = Set(running.map(\.instance.id))
        let proposed = spec.instances(jobID: id)
        let ownRequests = spec.initialRequests(submitIndex: state.jobs.sequence + 1, jobID: id).filter { !runningIDs.contains($0.id) }
        let others = input.pending.filter { $0.job != id }
        let plan = Scheduler.plan(cluster: input.cluster, pending: others + ownRequests, usage: input.usage)
        let diff = plan.diff(running: running, proposed: proposed)
        func entry(_ item: JobDiff.Entry, _ change: String) -> Specola_V1_PlannedTask {
            .with {
                $0.taskID = item.taskID
                $0.change = change
                $0.currentNode = item.currentNode ?? ""
                $0.plannedNode = item.plannedNode ?? ""
                if let reason = item.reason {
                    $0.reason = reason.message
                } else if item.plannedNode == nil && change != "removed" {
                    $0.reason = "waits for its dependencies"
                }
                $0.changedFields = item.changedFields
            }
        }
        return .with {
            $0.jobActive = active != nil
            $0.tasks = diff.added.map { entry($0, "added") } + diff.changed.map { entry($0, "changed") }
                + diff.removed.map { entry($0, "removed") }
                + diff.unchanged.map { id in .with { $0.taskID = id; $0.change = "unchanged" } }
        }
    }

    // MARK: - Views

    static func noJob(_ id: String) -> RPCError {
        RPCError(code: .notFound, message: "no job '\(id)'; `specola jobs --all` lists the jobs")
    }

    private func status(of id: String) async throws -> Specola_V1_JobStatus {
        guard let entry = await replica.job(id) else { throw Self.noJob(id) }
        return status(of: entry, withTasks: true)
    }

    private func status(of entry: JobEntry, withTasks: Bool) -> Specola_V1_JobStatus {
        .with {
            $0.id = entry.id
            $0.kind = entry.spec.kind.rawValue
            $0.owner = entry.spec.metadata.owner
            $0.project = entry.spec.metadata.project
            $0.priority = Int32(entry.spec.metadata.priority)
            $0.state = entry.run.state.rawValue
            $0.submittedAtUnixMs = entry.submittedAtUnixMs
            $0.finishedAtUnixMs = entry.finishedAtUnixMs
            $0.submittedBy = entry.submittedBy
            $0.revision = entry.revision
            guard withTasks else { return }
            let tasks: [TaskRun] = entry.run.order.compactMap { entry.run.tasks[$0] }
            $0.tasks = tasks.map { task in
                Specola_V1_TaskStatus.with {
                    $0.id = task.id
                    $0.state = task.state.rawValue
                    $0.node = task.node ?? ""
                    $0.allocationID = task.allocationID ?? ""
                    $0.failures = UInt32(task.failures)
                    $0.relocations = UInt32(task.relocations)
                    if let code = task.exitCode {
                        $0.exitCode = code
                        $0.exitCodeKnown = true
                    }
                    $0.message = task.message
                    if task.state == .pending, let reason = controller.waitingReason(task.id) {
                        $0.waitingReason = reason.message
                    }
                }
            }
        }
    }
}

/// Where a `Logs` page starts and how many tasks it may hold. The token is the index of the
/// next task in the job's order, so pages stay stable while a job runs (tasks only append).
struct LogPage {
    static let defaultSize = 100
    static let maxSize = 1_000
    /// A page stops once it holds this much output (at least one task is always sent).
    static let maxBytes = 1 << 20

    let start: Int
    let size: Int

    init(request: Specola_V1_JobLogsRequest, total: Int) throws {
        size = request.pageSize == 0 ? Self.defaultSize : min(Int(request.pageSize), Self.maxSize)
        if request.pageToken.isEmpty {
            start = 0
        } else if let index = Int(request.pageToken), (0...total).contains(index) {
            start = index
        } else {
            throw RPCError(code: .invalidArgument, message: "page token '\(request.pageToken)' is not from this job's logs; start again without one")
        }
    }

    /// The page of `tasks` (in job order) this request asks for, with the token of the next.
    func response(tasks: [String], logs: [String: Specola_V1_TaskLog]) -> Specola_V1_JobLogsResponse {
        var response = Specola_V1_JobLogsResponse()
        var bytes = 0
        var next = start
        while next < tasks.count && response.tasks.count < size && (response.tasks.isEmpty || bytes < Self.maxBytes) {
            let taskID = tasks[next]
            let log = logs[taskID]
            response.tasks.append(.with {
                $0.taskID = taskID
                $0.allocationID = log?.allocationID ?? ""
                $0.node = log?.node ?? ""
                $0.stdout = log?.stdout ?? ""
                $0.stderr = log?.stderr ?? ""
            })
            bytes += (log?.stdout.utf8.count ?? 0) + (log?.stderr.utf8.count ?? 0)
            next += 1
        }
        if next < tasks.count { response.nextPageToken = String(next) }
        return response
    }
}
