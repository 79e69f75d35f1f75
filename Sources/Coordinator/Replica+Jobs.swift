import SpecolaClusterCore
import SpecolaJobs
import SpecolaProtocol

extension Replica: ClusterLog {
    /// The applied state (copy-on-write, so cheap) and this replica's contact with each node.
    public func leaderView(nowUnixMs: Int64) -> LeaderView {
        LeaderView(state: state, contactUnixMs: contact.lastUnixMs, thresholds: thresholds, nowUnixMs: nowUnixMs)
    }

    /// Allocations placed on each node and not yet ended.
    func allocationCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for allocation in state.jobs.allocations.values { counts[allocation.node, default: 0] += 1 }
        return counts
    }

    func job(_ id: String) -> JobEntry? { state.jobs.jobs[id] }

    /// Every project's job called `name`.
    func jobs(named name: String) -> [JobEntry] { state.jobs.jobs.values.filter { $0.spec.metadata.name == name } }

    /// For the heartbeat answer: no copy of the node's facts.
    func lastAppliedSeq(of node: String) -> UInt64 { state.nodes[node]?.lastAppliedSeq ?? 0 }
}
