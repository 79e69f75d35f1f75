import SpecolaWire

/// When this replica last heard from each node's agent: soft state of the leader, never
/// replicated and lost with leadership. A new leader counts its own start as contact with every
/// node (the grace period), since it missed the heartbeats the previous leader answered.
public struct NodeContact: Sendable {
    public private(set) var lastUnixMs: [String: Int64] = [:]

    public init() {}

    public mutating func heard(from name: String, atUnixMs: Int64) {
        lastUnixMs[name] = max(lastUnixMs[name] ?? 0, atUnixMs)
    }

    public mutating func becameLeader(nodes: some Sequence<String>, atUnixMs: Int64) {
        for name in nodes { lastUnixMs[name] = atUnixMs }
    }

    /// The node as operators see it: last seen is the later of this contact and the last
    /// committed report, and the status shows fresh liveness for the healthy steps.
    public func displayed(_ stored: Specola_V1_Node, thresholds: LivenessThresholds, nowUnixMs: Int64) -> Specola_V1_Node {
        var node = stored
        let seen = max(lastUnixMs[node.name] ?? 0, node.lastSeenUnixMs)
        node.lastSeenUnixMs = seen
        node.shownStatus = NodeHealth.displayed(committed: stored.committed, live: thresholds.status(sinceLastContactMs: nowUnixMs - seen)).word
        // `status` above is what operators read; the JSON stays as it was before the enum.
        node.committedStatus = .unspecified
        return node
    }
}
