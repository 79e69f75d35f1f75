import SpecolaClusterCore
import SpecolaJobs
import SpecolaProtocol

extension Replica {
    /// A copy of the replicated state (copy-on-write, so cheap) and each node's
    /// liveness as this replica sees it, for a scheduling pass off the actor.
    func schedulingState(nowUnixMs: Int64 = WallClock.nowUnixMs()) -> (state: ClusterState, status: [String: NodeStatus]) {
        var status: [String: NodeStatus] = [:]
        status.reserveCapacity(state.nodes.count)
        for node in state.nodes.values {
            let seen = max(lastContact[node.name] ?? 0, node.lastSeenUnixMs)
            status[node.name] = NodeHealth.schedulingStatus(
                committed: node.status, live: thresholds.status(sinceLastContactMs: nowUnixMs - seen))
        }
        return (state, status)
    }

    var replicatedState: ClusterState { state }

    /// The state and the last time each node was heard from by this replica, for the failure ladder.
    func healthView() -> (state: ClusterState, lastContact: [String: Int64]) { (state, lastContact) }

    /// Allocations placed on each node and not yet ended.
    func allocationCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for allocation in state.jobs.allocations.values { counts[allocation.node, default: 0] += 1 }
        return counts
    }

    func job(_ id: String) -> JobEntry? { state.jobs.jobs[id] }

    /// For the heartbeat answer: no copy of the node's facts.
    func lastAppliedSeq(of node: String) -> UInt64 { state.nodes[node]?.lastAppliedSeq ?? 0 }
}
