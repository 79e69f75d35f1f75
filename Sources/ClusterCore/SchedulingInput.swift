import SpecolaJobs
import SpecolaWire

/// What one scheduling pass reads, built from a copy of the replicated state
/// and the leader's view of node liveness: the pure scheduler's inputs.
public struct SchedulingInput {
    public var cluster: ClusterView
    public var pending: [TaskRequest]
    public var usage: FairShareUsage
    /// Tasks held back because their project is at a quota, with why (e.g. "project astro is at its quota of 4 cores").
    public var quotaWaits: [String: String] = [:]

    public init(state: ClusterState, status: (String) -> NodeStatus, nowUnixMs: Int64) {
        let book = state.jobs
        var jobsByNode: [String: [String: Int]] = [:]
        var allocatedByProject: [String: Resources] = [:]
        var tasksByProject: [String: Int] = [:]
        for allocation in book.allocations.values {
            jobsByNode[allocation.node, default: [:]][allocation.jobID, default: 0] += 1
            if let project = book.jobs[allocation.jobID]?.spec.metadata.project {
                allocatedByProject[project, default: .zero] += allocation.resources
                tasksByProject[project, default: 0] += 1
            }
        }
        // HA workloads hold their cores and memory on their node, like allocations.
        let heldByWorkloads = state.workloads.heldByNode
        cluster = ClusterView(nodes: state.nodes.values.map { node in
            NodeView(
                name: node.name, status: status(node.name), cordoned: node.cordoned, draining: node.draining,
                labels: node.facts.capacity.labels, capacity: Self.capacity(of: node),
                allocated: (book.allocatedByNode[node.name] ?? .zero) + (heldByWorkloads[node.name] ?? .zero),
                runningJobs: jobsByNode[node.name] ?? [:])
        })
        let total = cluster.schedulableCapacity
        let projects = state.access.projects
        usage = FairShareUsage(shares: projects.mapValues { Double(max($0.weight, 1)) },
                               usage: allocatedByProject.mapValues { $0.dominantShare(of: total) })
        var runnable: [TaskRequest] = []
        for id in book.activeJobIDs {
            guard let entry = book.jobs[id] else { continue }
            for task in entry.run.runnable(atUnixMs: nowUnixMs) {
                guard let instance = entry.instances[task.id] else { continue }
                runnable.append(TaskRequest(instance: instance, job: entry.spec, jobID: entry.id, submitIndex: entry.submitIndex))
            }
        }
        var quota = ProjectQuotas(projects: projects, allocated: allocatedByProject, tasks: tasksByProject)
        pending = []
        for request in runnable.sorted(by: Self.queueOrder) {
            if let wait = quota.admit(request) {
                quotaWaits[request.id] = wait
            } else {
                pending.append(request)
            }
        }
    }

    /// Higher priority first, then submission order: who gets a project's remaining quota.
    static func queueOrder(_ a: TaskRequest, _ b: TaskRequest) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.submitIndex != b.submitIndex { return a.submitIndex < b.submitIndex }
        return a.id < b.id
    }

    /// Labels that override what the agent measured, for what it cannot see.
    public static let gpuLabel = "specola.io/gpus"
    public static let scratchLabel = "specola.io/scratch"

    /// What a node offers: its cores and memory as reported; GPUs and scratch
    /// from labels, else scratch is the most space available on one filesystem.
    public static func capacity(of node: Specola_V1_Node) -> Resources {
        let facts = node.facts
        let labels = facts.capacity.labels
        let gpus = labels[gpuLabel].flatMap { Int64($0) } ?? 0
        let scratch = labels[scratchLabel].flatMap(Quantity.bytes)
            ?? Int64(clamping: facts.storage.filesystems.map(\.availableBytes).max() ?? 0)
        return Resources(
            cpuMillicores: Int64(facts.capacity.cpuCores) * 1000, memoryBytes: Int64(clamping: facts.capacity.memoryBytes),
            gpus: gpus, scratchBytes: scratch)
    }
}
