/// A decision to run one task instance on one node; a batch of them is what the leader commits through Raft.
public struct Placement: Sendable, Hashable, Codable {
    /// The instance.
    public var taskID: String
    /// The chosen node.
    public var node: String
    /// What the allocation holds on that node.
    public var resources: Resources

    /// Creates a placement.
    public init(taskID: String, node: String, resources: Resources) {
        self.taskID = taskID
        self.node = node
        self.resources = resources
    }
}
