import SpecolaWire

/// One node as the scheduler sees it in a snapshot: health, flags, labels, capacity and what is already allocated.
public struct NodeView: Sendable, Hashable {
    /// Unique node name; ties between equally good nodes go to the smaller name.
    public var name: String
    /// Health.
    public var status: NodeStatus
    /// `specola node cordon`: keeps running work, takes no new work.
    public var cordoned: Bool
    /// `specola node drain`: its work is moving away, so it takes no new work either.
    public var draining: Bool
    /// Labels that constraints and affinities read, e.g. `gpu: a100`, `rack: r3`.
    public var labels: [String: String]
    /// What the node offers to tasks.
    public var capacity: Resources
    /// What running or already-placed allocations hold.
    public var allocated: Resources
    /// Instances per job already on the node, so that spread jobs avoid stacking up.
    public var runningJobs: [String: Int]

    /// Creates a node view.
    public init(
        name: String, status: NodeStatus = .ready, cordoned: Bool = false, draining: Bool = false,
        labels: [String: String] = [:], capacity: Resources, allocated: Resources = .zero, runningJobs: [String: Int] = [:]
    ) {
        self.name = name
        self.status = status
        self.cordoned = cordoned
        self.draining = draining
        self.labels = labels
        self.capacity = capacity
        self.allocated = allocated
        self.runningJobs = runningJobs
    }

    /// Whether the node may receive new work at all, regardless of how full it is.
    public var acceptsWork: Bool { status == .ready && !cordoned && !draining }
}
