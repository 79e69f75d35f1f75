import SpecolaClusterCore
import SpecolaJobs

extension Replica {
    /// What a rule pass reads: a copy of the replicated state (copy-on-write, so cheap) and,
    /// per node, its liveness and when this replica last heard from it (leader soft state;
    /// a new leader counts its own start as contact, which is its grace period).
    func alertingInput(nowUnixMs: Int64 = WallClock.nowUnixMs()) -> AlertRuleInput {
        let (state, status) = schedulingState(nowUnixMs: nowUnixMs)
        var lastContact: [String: Int64] = [:]
        for node in state.nodes.values {
            lastContact[node.name] = max(self.lastContact[node.name] ?? 0, node.lastSeenUnixMs)
        }
        return AlertRuleInput(state: state, status: status, lastContactUnixMs: lastContact, nowUnixMs: nowUnixMs)
    }
}
