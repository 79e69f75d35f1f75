/// The snapshot of the cluster that one planning pass reads; the scheduler never sees live state.
public struct ClusterView: Sendable, Hashable {
    /// Every known node, in any status; order does not matter.
    public var nodes: [NodeView]

    /// Creates a snapshot.
    public init(nodes: [NodeView]) { self.nodes = nodes }

    /// The sum of capacity over nodes that accept work: the denominator of fair-share dominant shares.
    public var schedulableCapacity: Resources {
        nodes.filter(\.acceptsWork).reduce(Resources.zero) { $0 + $1.capacity }
    }
}
