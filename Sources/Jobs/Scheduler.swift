/// Job placement as a pure function: a cluster snapshot, the pending tasks and fair-share figures in, a `Plan` out.
///
/// No clock, no randomness, no I/O: the same inputs give the same plan, which is what makes `specola job plan`
/// an honest dry run and lets the leader commit the result through Raft in batches.
public enum Scheduler {
    /// Places as many pending tasks as fit, in queue order (priority, fair share, submission).
    ///
    /// Feasible nodes are ready, neither cordoned nor draining, have room for every resource and satisfy every
    /// constraint. Among them the task goes to the fullest (bin-pack) or, for spread jobs, the emptiest node
    /// that keeps apart from the job's other instances; affinities add to that score; ties go to the smaller
    /// node name. A node is never given more than its capacity within one plan.
    public static func plan(cluster: ClusterView, pending: [TaskRequest], usage: FairShareUsage) -> Plan {
        var readLabels: Set<String> = []
        for request in pending {
            for constraint in request.constraints { readLabels.insert(constraint.label) }
            for affinity in request.affinities { readLabels.insert(affinity.constraint.label) }
        }
        var state = PlanningState(cluster: cluster, readLabels: readLabels)
        var queue = SchedulingQueue(pending, usage: usage, total: cluster.schedulableCapacity)
        var placements: [Placement] = []
        var unplaced: [Plan.Unplaced] = []
        placements.reserveCapacity(pending.count)
        queue.drain { request in
            guard let node = state.choose(request) else {
                unplaced.append(Plan.Unplaced(taskID: request.id, reason: state.explain(request)))
                return false
            }
            state.commit(request, on: node)
            placements.append(Placement(taskID: request.id, node: state.nodes[Int(node)].name, resources: request.resources))
            return true
        }
        return Plan(placements: placements, unplaced: unplaced)
    }
}
