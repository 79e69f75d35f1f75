import SpecolaJobs
import SpecolaWire

/// What the leader's controllers need from the replicated log, and nothing more: the Raft replica
/// satisfies it in production and in the process tests; controller tests use an in-memory log.
public protocol ClusterLog: Sendable {
    /// Commits `command` and returns what applying it did.
    func propose(_ command: Specola_V1_Command) async throws -> ApplyOutcome
    /// Returns once this replica has applied everything committed before the call.
    func readBarrier() async throws
    var isLeader: Bool { get async }
    var thresholds: LivenessThresholds { get }
    /// The applied state, with when this replica last heard from each node.
    func leaderView(nowUnixMs: Int64) async -> LeaderView
}

/// One pass's reading of the cluster: the applied state and this replica's contact with each node
/// (soft state, lost with leadership; a new leader counts its own start as contact).
public struct LeaderView: Sendable {
    public var state: ClusterState
    public var contactUnixMs: [String: Int64]
    public var thresholds: LivenessThresholds
    public var nowUnixMs: Int64

    public init(state: ClusterState, contactUnixMs: [String: Int64], thresholds: LivenessThresholds, nowUnixMs: Int64) {
        self.state = state
        self.contactUnixMs = contactUnixMs
        self.thresholds = thresholds
        self.nowUnixMs = nowUnixMs
    }

    /// The latest sign of life: this replica's contact or the last committed report.
    public func lastSeenUnixMs(_ node: Specola_V1_Node) -> Int64 {
        max(contactUnixMs[node.name] ?? 0, node.lastSeenUnixMs)
    }

    /// What the scheduler may assume of each node.
    public var schedulingStatus: [String: NodeStatus] {
        var status: [String: NodeStatus] = [:]
        status.reserveCapacity(state.nodes.count)
        for node in state.nodes.values {
            status[node.name] = NodeHealth.schedulingStatus(
                committed: node.committed, live: thresholds.status(sinceLastContactMs: nowUnixMs - lastSeenUnixMs(node)))
        }
        return status
    }

    public var alertingInput: AlertRuleInput {
        var lastContact: [String: Int64] = [:]
        for node in state.nodes.values { lastContact[node.name] = lastSeenUnixMs(node) }
        return AlertRuleInput(state: state, status: schedulingStatus, lastContactUnixMs: lastContact, nowUnixMs: nowUnixMs)
    }
}

extension ClusterLog {
    public var replicatedState: ClusterState {
        get async { await leaderView(nowUnixMs: WallClock.nowUnixMs()).state }
    }

    /// The state and each node's liveness, for a scheduling pass.
    public func schedulingState(nowUnixMs: Int64 = WallClock.nowUnixMs()) async -> (state: ClusterState, status: [String: NodeStatus]) {
        let view = await leaderView(nowUnixMs: nowUnixMs)
        return (view.state, view.schedulingStatus)
    }

    /// The state and this replica's own contact times, for the failure ladder.
    public func healthView() async -> (state: ClusterState, lastContact: [String: Int64]) {
        let view = await leaderView(nowUnixMs: WallClock.nowUnixMs())
        return (view.state, view.contactUnixMs)
    }

    public func alertingInput(nowUnixMs: Int64 = WallClock.nowUnixMs()) async -> AlertRuleInput {
        await leaderView(nowUnixMs: nowUnixMs).alertingInput
    }
}
