import Foundation
import SpecolaJobs
import SpecolaWire

/// One submitted job inside the replicated state.
public struct JobEntry: Sendable {
    public var id: String
    public var spec: JobSpec
    public var run: JobRun
    /// Derived from `spec` on apply and restore; never serialized.
    public var instances: [String: TaskInstance]
    public var submitIndex: UInt64
    public var submittedAtUnixMs: Int64
    public var submittedBy: String
    public var sourceFile: String
    public var finishedAtUnixMs: Int64 = 0
    /// Output of each task's latest attempt, by task id.
    public var logs: [String: Specola_V1_TaskLog] = [:]
    /// Counts the changes applied to this job, for long polls.
    public var revision: UInt64 = 1

    /// Every task has ended (a failed task's siblings still run to their end).
    public var isFinished: Bool { run.tasks.values.allSatisfy { $0.state.isTerminal } }
}

/// The jobs part of the replicated state: submitted jobs with their lifecycle
/// (`JobRun`), and the allocations that may be running on nodes. Deterministic
/// like the rest of `ClusterState`: time arrives inside commands.
public struct JobBook: Sendable {
    public private(set) var jobs: [String: JobEntry] = [:]
    /// Everything placed on a node and not yet reported ended, by allocation id.
    public private(set) var allocations: [String: Specola_V1_Allocation] = [:]
    public private(set) var allocatedByNode: [String: Resources] = [:]
    /// Submission counter: FIFO order within a priority and project.
    public private(set) var sequence: UInt64 = 0
    /// Jobs that still have work to place or run.
    public private(set) var activeJobIDs: Set<String> = []
    /// Core- and memory-hours of ended allocations, by project, user and UTC day.
    public private(set) var usage: [UsageKey: Specola_V1_UsageRecord] = [:]

    public struct UsageKey: Hashable, Sendable {
        public var project: String
        public var user: String
        public var day: Int64
    }

    public init() {}

    /// Jobs loaded from a snapshot written before ids were scoped per project: old id → `PROJECT/NAME`.
    /// Not replicated; `ClusterState` moves their KV outputs with it.
    public private(set) var migratedJobIDs: [String: String] = [:]

    public init(snapshot: Specola_V1_ClusterSnapshot) throws {
        sequence = snapshot.jobSequence
        for record in snapshot.jobs {
            let decoded = try record.decodedSpecAndRun()
            let spec = decoded.spec
            var run = decoded.run
            var id = record.id
            var logs = record.logs
            if !Self.isScoped(id) {
                // Committed by a build whose job names were global: into its recorded project (or `default`).
                let scoped = spec.metadata.jobID
                run = run.renamed(to: scoped)
                logs = Dictionary(logs.map { (JobRun.rename($0.key, from: id, to: scoped), $0.value) }, uniquingKeysWith: { a, _ in a })
                migratedJobIDs[id] = scoped
                id = scoped
            }
            var entry = JobEntry(
                id: id, spec: spec, run: run, instances: Self.instancesByID(spec, jobID: id), submitIndex: record.submitIndex,
                submittedAtUnixMs: record.submittedAtUnixMs, submittedBy: record.submittedBy, sourceFile: record.sourceFile)
            entry.finishedAtUnixMs = record.finishedAtUnixMs
            entry.logs = logs
            entry.revision = record.revision
            jobs[id] = entry
            if !entry.isFinished { activeJobIDs.insert(id) }
        }
        for var allocation in snapshot.allocations {
            if let scoped = migratedJobIDs[allocation.jobID] {
                allocation.taskID = JobRun.rename(allocation.taskID, from: allocation.jobID, to: scoped)
                allocation.jobID = scoped
            }
            allocations[allocation.id] = allocation
            allocatedByNode[allocation.node, default: .zero] += allocation.resources
        }
        for record in snapshot.usage {
            usage[UsageKey(project: record.project, user: record.user, day: record.day)] = record
        }
    }

    /// Whether `id` is `PROJECT/NAME` (job names and project names hold no slash).
    public static func isScoped(_ id: String) -> Bool { id.contains("/") }

    /// The job a command names: `PROJECT/NAME` as it is; a bare name (a command committed before ids
    /// were scoped) is that name's latest unfinished job, else its latest job, else `default/NAME`.
    public func scopedID(_ id: String) -> String {
        guard !Self.isScoped(id) else { return id }
        let named = jobs.values.filter { $0.spec.metadata.name == id }
        let pick = named.max { ($0.isFinished ? 0 : 1, $0.submitIndex) < ($1.isFinished ? 0 : 1, $1.submitIndex) }
        return pick?.id ?? JobMetadata.jobID(project: "", name: id)
    }

    public func write(into snapshot: inout Specola_V1_ClusterSnapshot) {
        snapshot.jobSequence = sequence
        snapshot.jobs = jobs.values.sorted { $0.submitIndex < $1.submitIndex }.map { entry in
            .with {
                $0.id = entry.id
                $0.spec = .init(entry.spec)
                $0.run = .init(entry.run)
                $0.submitIndex = entry.submitIndex
                $0.submittedAtUnixMs = entry.submittedAtUnixMs
                $0.submittedBy = entry.submittedBy
                $0.sourceFile = entry.sourceFile
                $0.finishedAtUnixMs = entry.finishedAtUnixMs
                $0.logs = entry.logs
                $0.revision = entry.revision
            }
        }
        snapshot.allocations = allocations.values.sorted { $0.id < $1.id }
        snapshot.usage = usage.values.sorted { ($0.day, $0.project, $0.user) < ($1.day, $1.project, $1.user) }
    }

    public static func instancesByID(_ spec: JobSpec, jobID: String) -> [String: TaskInstance] {
        Dictionary(spec.instances(jobID: jobID).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: - Commands

    public mutating func submit(_ command: Specola_V1_SubmitJobCommand, at: Int64) -> ApplyOutcome {
        let spec: JobSpec
        do {
            spec = try command.decodedSpec()
        } catch {
            return .rejected(reason: "the submitted spec could not be decoded (\(error)); is the CLI older than the coordinator?")
        }
        // A bare name was proposed by a build whose job names were global.
        let id = Self.isScoped(command.jobID) ? command.jobID : spec.metadata.jobID
        if let existing = jobs[id], !existing.isFinished {
            return .rejected(reason: "job '\(id)' is still \(existing.run.state.rawValue); cancel it (specola job cancel \(id)) or give the new one another name")
        }
        // A finished job of the same name is replaced; its allocations are long gone.
        sequence += 1
        let instances = spec.instances(jobID: id)
        jobs[id] = JobEntry(
            id: id, spec: spec, run: JobRun(id: id, instances: instances),
            instances: Dictionary(instances.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }),
            submitIndex: sequence, submittedAtUnixMs: at, submittedBy: command.submittedBy, sourceFile: command.sourceFile)
        activeJobIDs.insert(id)
        return .job(id)
    }

    /// Applies a scheduling pass. Placements that no longer fit the state
    /// (task already placed, job cancelled, node unknown) are skipped.
    public mutating func place(_ command: Specola_V1_PlaceTasksCommand, at: Int64, nodeExists: (String) -> Bool) -> ApplyOutcome {
        var placed = 0
        for var placement in command.placements {
            guard allocations[placement.allocationID] == nil, nodeExists(placement.node) else { continue }
            let jobID = scopedID(placement.jobID)
            placement.taskID = JobRun.rename(placement.taskID, from: placement.jobID, to: jobID)
            placement.jobID = jobID
            let resources = updateJob(placement.jobID) { entry -> Resources? in
                guard let instance = entry.instances[placement.taskID] else { return nil }
                entry.run.apply(.placed(taskID: placement.taskID, node: placement.node, allocationID: placement.allocationID))
                guard entry.run.tasks[placement.taskID]?.allocationID == placement.allocationID else { return nil }
                entry.revision += 1
                return instance.task.resources
            }
            guard let resources = resources ?? nil else { continue }
            allocations[placement.allocationID] = .with {
                $0.id = placement.allocationID
                $0.jobID = placement.jobID
                $0.taskID = placement.taskID
                $0.node = placement.node
                $0.resources = resources
                $0.placedAtUnixMs = at
            }
            allocatedByNode[placement.node, default: .zero] += resources
            placed += 1
        }
        return .placed(count: placed)
    }

    public mutating func cancel(_ id: String, at: Int64) -> ApplyOutcome {
        let jobID = scopedID(id)
        let effects = updateJob(jobID) { entry -> [JobEffect] in
            guard !entry.isFinished else { return [] }
            entry.revision += 1
            return entry.run.apply(.cancel)
        }
        guard let effects else { return .rejected(reason: "no job '\(jobID)'") }
        for case .stop(let allocationID, _) in effects {
            markStopping(allocationID, reason: "job \(jobID) cancelled")
        }
        finishIfDone(jobID, at: at)
        return .job(jobID)
    }

    /// Work whose node is gone goes back to pending; it did not fail.
    public mutating func requeue(_ command: Specola_V1_RequeueAllocationsCommand, at: Int64) -> ApplyOutcome {
        for id in command.allocationIds {
            guard let allocation = release(id, at: at) else { continue }
            jobs[allocation.jobID]?.run.apply(.lost(taskID: allocation.taskID, allocationID: id, atUnixMs: at))
            jobs[allocation.jobID]?.revision += 1
            finishIfDone(allocation.jobID, at: at)
        }
        return .done
    }

    /// Marks every allocation on `node` for stopping, so drained work moves elsewhere.
    public mutating func drain(node: String) {
        for allocation in allocations.values where allocation.node == node && !allocation.stopping {
            markStopping(allocation.id, reason: "node \(node) is draining")
        }
    }

    /// An agent's report about one of its allocations. Returns the KV writes
    /// of declared outputs when the task succeeded.
    public mutating func apply(_ event: Specola_V1_TaskEvent, from node: String, at: Int64) -> [(key: String, value: String)] {
        guard let allocation = allocations[event.allocationID], allocation.node == node, jobs[allocation.jobID] != nil else { return [] }
        let id = event.allocationID
        let jobEvent: JobRun.Event
        switch event.kind {
        case .started:
            allocations[id]?.started = true
            updateJob(allocation.jobID) { entry in
                entry.run.apply(.started(taskID: allocation.taskID, allocationID: id))
                entry.revision += 1
            }
            return []
        case .exited, .failedToStart, .timedOut:
            let code = event.kind == .exited ? event.exitCode : (event.kind == .timedOut ? 124 : -1)
            jobEvent = .exited(taskID: allocation.taskID, allocationID: id, exitCode: code, message: event.message, atUnixMs: at)
        case .stopped, .lost:
            // Stopped for a cancel: the task is cancelled already and this changes nothing.
            // Stopped for a drain, or lost by the agent: placed again elsewhere, no retry spent.
            jobEvent = .lost(taskID: allocation.taskID, allocationID: id, atUnixMs: at)
        case .unspecified, .UNRECOGNIZED:
            return []
        }
        let instance = updateJob(allocation.jobID) { entry -> TaskInstance? in
            entry.run.apply(jobEvent)
            entry.logs[allocation.taskID] = .with {
                $0.allocationID = id
                $0.node = node
                $0.stdout = event.stdoutTail
                $0.stderr = event.stderrTail
            }
            entry.revision += 1
            return entry.instances[allocation.taskID]
        }
        release(id, at: at)
        finishIfDone(allocation.jobID, at: at)
        guard event.kind == .exited, event.exitCode == 0, let instance = instance ?? nil else { return [] }
        return instance.task.outputs.compactMap { key in
            event.outputs[key].map {
                (Self.outputKey(job: allocation.jobID, step: instance.task.name, instance: instance.stepInstance, key: key), $0)
            }
        }
    }

    /// Changes one job in place (no copy of its task table).
    @discardableResult
    private mutating func updateJob<T>(_ id: String, _ change: (inout JobEntry) -> T) -> T? {
        guard jobs[id] != nil else { return nil }
        return change(&jobs[id]!)
    }

    /// Where a step instance's output lives in the KV: `jobs/JOB/outputs/STEP/INSTANCE/KEY`.
    public static func outputKey(job: String, step: String, instance: String, key: String) -> String {
        "jobs/\(job)/outputs/\(step)/\(instance)/\(key)"
    }

    /// The KV prefix holding every instance's value of one step output.
    public static func outputPrefix(job: String, step: String) -> String {
        "jobs/\(job)/outputs/\(step)/"
    }

    private mutating func markStopping(_ allocationID: String, reason: String) {
        allocations[allocationID]?.stopping = true
        allocations[allocationID]?.stopReason = reason
    }

    @discardableResult
    private mutating func release(_ allocationID: String, at: Int64) -> Specola_V1_Allocation? {
        guard let allocation = allocations.removeValue(forKey: allocationID) else { return nil }
        account(allocation, endedAt: at)
        allocatedByNode[allocation.node, default: .zero] = allocatedByNode[allocation.node, default: .zero] - allocation.resources
        return allocation
    }

    static let dayMs: Int64 = 86_400_000

    /// Adds an ended allocation's core- and memory-hours to its job's project and owner, on the day it ended.
    private mutating func account(_ allocation: Specola_V1_Allocation, endedAt at: Int64) {
        guard let metadata = jobs[allocation.jobID]?.spec.metadata, at > allocation.placedAtUnixMs else { return }
        let hours = Double(at - allocation.placedAtUnixMs) / 3_600_000
        let key = UsageKey(project: metadata.project, user: metadata.owner, day: at / Self.dayMs)
        var record = usage[key] ?? .with { $0.project = key.project; $0.user = key.user; $0.day = key.day }
        record.coreHours += Double(allocation.cpuMillicores) / 1000 * hours
        record.memoryGibHours += Double(allocation.memoryBytes) / Double(1 << 30) * hours
        record.tasks += 1
        usage[key] = record
    }

    /// Usage since `since`, summed per project and user (optionally one project).
    public func usage(project: String, since: Int64) -> [Specola_V1_UsageRecord] {
        var sums: [String: Specola_V1_UsageRecord] = [:]
        for record in usage.values where record.day >= since / Self.dayMs && (project.isEmpty || record.project == project) {
            let id = record.project + "\u{0}" + record.user
            var sum = sums[id] ?? .with { $0.project = record.project; $0.user = record.user }
            sum.coreHours += record.coreHours
            sum.memoryGibHours += record.memoryGibHours
            sum.tasks += record.tasks
            sums[id] = sum
        }
        return sums.values.sorted { ($0.project, $0.user) < ($1.project, $1.user) }
    }

    /// Removes jobs that finished before `cutoff` and hold no allocation any more; returns their ids.
    public mutating func forget(finishedBefore cutoff: Int64) -> [String] {
        let busy = Set(allocations.values.map(\.jobID))
        let expired = jobs.values.filter { $0.finishedAtUnixMs > 0 && $0.finishedAtUnixMs < cutoff && !busy.contains($0.id) }.map(\.id)
        for id in expired {
            jobs.removeValue(forKey: id)
            activeJobIDs.remove(id)
        }
        return expired.sorted()
    }

    /// Whether any job finished before `cutoff` (so a forget command would remove something).
    public func hasJobs(finishedBefore cutoff: Int64) -> Bool {
        jobs.values.contains { $0.finishedAtUnixMs > 0 && $0.finishedAtUnixMs < cutoff }
    }

    private mutating func finishIfDone(_ jobID: String, at: Int64) {
        guard let entry = jobs[jobID], entry.finishedAtUnixMs == 0, entry.isFinished else { return }
        updateJob(jobID) { entry in
            entry.finishedAtUnixMs = at
            entry.revision += 1
        }
        activeJobIDs.remove(jobID)
    }
}

extension Specola_V1_Allocation {
    public var resources: Resources {
        get { Resources(cpuMillicores: cpuMillicores, memoryBytes: memoryBytes, gpus: gpus, scratchBytes: scratchBytes) }
        set {
            cpuMillicores = newValue.cpuMillicores
            memoryBytes = newValue.memoryBytes
            gpus = newValue.gpus
            scratchBytes = newValue.scratchBytes
        }
    }
}
