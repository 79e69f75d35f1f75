/// The order in which pending tasks are offered to the cluster: priority, then fair share, then submission order.
///
/// Fair share is dominant-resource usage over entitlement, updated as the plan places tasks, so that within one
/// priority a project that just received a large batch yields to the others (Dominant Resource Fairness).
struct SchedulingQueue {
    /// One project's pending tasks at one priority, and where its turn stands.
    private struct ProjectTurn: Comparable {
        var normalizedUsage: Double
        var project: String
        var slot: Int

        static func < (lhs: ProjectTurn, rhs: ProjectTurn) -> Bool {
            (lhs.normalizedUsage, lhs.project) < (rhs.normalizedUsage, rhs.project)
        }
    }

    /// Priorities from highest to lowest, each with its projects' FIFO queues.
    private var levels: [(priority: Int, queues: [(project: String, tasks: [TaskRequest])])]
    private var usage: FairShareUsage
    private let total: Resources

    init(_ pending: [TaskRequest], usage: FairShareUsage, total: Resources) {
        self.usage = usage
        self.total = total
        var byPriority: [Int: [String: [(offset: Int, request: TaskRequest)]]] = [:]
        for (offset, request) in pending.enumerated() {
            byPriority[request.priority, default: [:]][request.project, default: []].append((offset, request))
        }
        levels = byPriority.keys.sorted(by: >).map { priority in
            let projects = byPriority[priority]!
            let queues = projects.keys.sorted().map { project in
                // Submission order, then the order given, so equal indices stay stable.
                let sorted = projects[project]!.sorted { ($0.request.submitIndex, $0.offset) < ($1.request.submitIndex, $1.offset) }
                return (project: project, tasks: sorted.map(\.request))
            }
            return (priority: priority, queues: queues)
        }
    }

    /// Offers every task once, in queue order; `place` returns whether the task was placed, which charges its project.
    mutating func drain(_ place: (TaskRequest) -> Bool) {
        for level in levels {
            var heap = Heap<ProjectTurn>()
            var cursors = [Int](repeating: 0, count: level.queues.count)
            for (slot, queue) in level.queues.enumerated() {
                heap.push(ProjectTurn(normalizedUsage: usage.normalizedUsage(of: queue.project), project: queue.project, slot: slot))
            }
            while var turn = heap.pop() {
                let queue = level.queues[turn.slot]
                let request = queue.tasks[cursors[turn.slot]]
                cursors[turn.slot] += 1
                if place(request) {
                    let charge = request.resources.dominantShare(of: total)
                    usage.usage[queue.project, default: 0] += charge
                    turn.normalizedUsage = usage.normalizedUsage(of: queue.project)
                }
                if cursors[turn.slot] < queue.tasks.count { heap.push(turn) }
            }
        }
    }
}
