/// Where one task instance is in its life: pending → placed → running →
/// succeeded or failed, with `lost` sending it back to pending (a node died)
/// and `cancelled` ending it. Terminal states never change again.
public enum TaskState: String, Sendable, Hashable, Codable {
    case pending, placed, running, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A job's overall state, derived from its tasks.
public enum JobState: String, Sendable, Hashable, Codable {
    case pending, running, succeeded, failed, cancelled
}

/// One task instance of a submitted job, as the cluster tracks it.
public struct TaskRun: Sendable, Hashable, Codable {
    public var id: String
    public var waitsFor: [String]
    public var retries: RetryPolicy
    public var state: TaskState = .pending
    /// Runs that ended in failure so far (a lost node does not count).
    public var failures = 0
    public var relocations = 0
    public var node: String?
    /// Every placement gets a fresh allocation id; agents run each id at most once.
    public var allocationID: String?
    public var exitCode: Int32?
    public var message = ""
    /// Earliest time (Unix ms) a retry may be placed.
    public var notBeforeUnixMs: Int64 = 0

    public init(id: String, waitsFor: [String], retries: RetryPolicy) {
        self.id = id
        self.waitsFor = waitsFor
        self.retries = retries
    }
}

/// What the cluster must do because of an event (the caller carries it out).
public enum JobEffect: Sendable, Hashable {
    /// Stop a running allocation (cancel, or a task that is no longer wanted).
    case stop(allocationID: String, node: String)
}

/// The replicated record of one submitted job and the rules that move it:
/// DAG readiness, retries with backoff, requeue of work lost with a node,
/// cancellation and the job's own state. Pure: time comes in the events.
public struct JobRun: Sendable, Hashable, Codable {
    public var id: String
    public var tasks: [String: TaskRun]
    /// Task ids in submission order, for stable output.
    public var order: [String]
    public var cancelled = false

    public init(id: String, instances: [TaskInstance]) {
        self.id = id
        order = instances.map(\.id)
        tasks = Dictionary(
            instances.map { ($0.id, TaskRun(id: $0.id, waitsFor: $0.waitsFor, retries: $0.task.retries)) },
            uniquingKeysWith: { first, _ in first })
    }

    /// The same run under the job id `newID`: task ids `OLD/TASK` become `NEW/TASK`
    /// (for jobs committed before ids were scoped per project).
    public func renamed(to newID: String) -> JobRun {
        var run = self
        run.id = newID
        run.order = order.map { Self.rename($0, from: id, to: newID) }
        run.tasks = Dictionary(tasks.values.map { task in
            var task = task
            task.id = Self.rename(task.id, from: id, to: newID)
            task.waitsFor = task.waitsFor.map { Self.rename($0, from: id, to: newID) }
            return (task.id, task)
        }, uniquingKeysWith: { first, _ in first })
        return run
    }

    /// `OLD/TASK` as `NEW/TASK`; anything else unchanged.
    public static func rename(_ taskID: String, from oldID: String, to newID: String) -> String {
        taskID.hasPrefix(oldID + "/") ? newID + taskID.dropFirst(oldID.count) : taskID
    }

    /// Something that happened to one of the job's allocations or to the job.
    public enum Event: Sendable, Hashable {
        case placed(taskID: String, node: String, allocationID: String)
        /// Events about an allocation name the task it was placed for (the caller's allocation
        /// record has it), so finding the task is a lookup; one for an older allocation is ignored.
        case started(taskID: String, allocationID: String)
        case exited(taskID: String, allocationID: String, exitCode: Int32, message: String, atUnixMs: Int64)
        /// The node running it is down and fenced: the work is gone, not failed.
        case lost(taskID: String, allocationID: String, atUnixMs: Int64)
        case cancel
    }

    public var state: JobState {
        let states = order.compactMap { tasks[$0]?.state }
        if cancelled { return .cancelled }
        if states.contains(.failed) { return .failed }
        if states.allSatisfy({ $0 == .succeeded }) { return .succeeded }
        if states.contains(where: { $0 != .pending }) { return .running }
        return .pending
    }

    /// Tasks that may be placed now: pending, every dependency succeeded, backoff over.
    public func runnable(atUnixMs now: Int64) -> [TaskRun] {
        guard !cancelled else { return [] }
        return order.compactMap { tasks[$0] }.filter { task in
            task.state == .pending && task.notBeforeUnixMs <= now
                && task.waitsFor.allSatisfy { tasks[$0]?.state == .succeeded }
        }
    }

    /// Applies an event. Events about allocations the job no longer tracks
    /// (duplicates, stale reports from a replaced allocation) change nothing.
    @discardableResult
    public mutating func apply(_ event: Event) -> [JobEffect] {
        switch event {
        case let .placed(taskID, node, allocationID):
            guard var task = tasks[taskID], task.state == .pending, !cancelled else { return [] }
            task.state = .placed
            task.node = node
            task.allocationID = allocationID
            tasks[taskID] = task
            return []

        case let .started(taskID, allocationID):
            guard var task = task(taskID, allocatedTo: allocationID), task.state == .placed else { return [] }
            task.state = .running
            tasks[task.id] = task
            return []

        case let .exited(taskID, allocationID, exitCode, message, now):
            guard var task = task(taskID, allocatedTo: allocationID), task.state == .placed || task.state == .running else { return [] }
            task.exitCode = exitCode
            task.message = message
            if exitCode == 0 {
                task.state = .succeeded
                tasks[task.id] = task
                return []
            }
            task.failures += 1
            if !cancelled, let delay = task.retries.delay(beforeRetry: task.failures) {
                requeue(&task, notBefore: now + delay * 1000)
                tasks[task.id] = task
                return []
            }
            task.state = .failed
            tasks[task.id] = task
            cancelDependents(of: task.id)
            return []

        case let .lost(taskID, allocationID, now):
            guard var task = task(taskID, allocatedTo: allocationID), !task.state.isTerminal else { return [] }
            task.relocations += 1
            requeue(&task, notBefore: now)
            if cancelled { task.state = .cancelled }
            tasks[task.id] = task
            return []

        case .cancel:
            cancelled = true
            var effects: [JobEffect] = []
            for id in order {
                guard var task = tasks[id], !task.state.isTerminal else { continue }
                if (task.state == .placed || task.state == .running), let allocation = task.allocationID, let node = task.node {
                    effects.append(.stop(allocationID: allocation, node: node))
                }
                task.state = .cancelled
                tasks[id] = task
            }
            return effects
        }
    }

    private func task(_ id: String, allocatedTo allocationID: String) -> TaskRun? {
        guard let task = tasks[id], task.allocationID == allocationID else { return nil }
        return task
    }

    private func requeue(_ task: inout TaskRun, notBefore: Int64) {
        task.state = .pending
        task.node = nil
        task.allocationID = nil
        task.notBeforeUnixMs = notBefore
    }

    /// A task that failed for good takes everything downstream of it along.
    private mutating func cancelDependents(of failedID: String) {
        var changed = true
        while changed {
            changed = false
            for id in order {
                guard var task = tasks[id], task.state == .pending else { continue }
                if task.waitsFor.contains(where: { tasks[$0]?.state == .failed || tasks[$0]?.state == .cancelled }) {
                    task.state = .cancelled
                    task.message = "not run: an upstream task failed (\(failedID))"
                    tasks[id] = task
                    changed = true
                }
            }
        }
    }
}
