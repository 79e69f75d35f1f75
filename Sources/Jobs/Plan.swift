/// The result of one planning pass: where each placed task goes and why the others wait. Nothing is committed yet.
public struct Plan: Sendable, Hashable {
    /// A task that was not placed, with the reason.
    public struct Unplaced: Sendable, Hashable, Codable {
        /// The instance.
        public var taskID: String
        /// Why, and whether waiting helps.
        public var reason: PlacementFailure

        /// Creates an entry.
        public init(taskID: String, reason: PlacementFailure) {
            self.taskID = taskID
            self.reason = reason
        }
    }

    /// Placements in the order the queue chose them.
    public var placements: [Placement]
    /// Tasks left pending, in queue order.
    public var unplaced: [Unplaced]

    /// Creates a plan.
    public init(placements: [Placement], unplaced: [Unplaced]) {
        self.placements = placements
        self.unplaced = unplaced
    }

    /// The node chosen for each placed task.
    public var nodeByTask: [String: String] {
        Dictionary(placements.map { ($0.taskID, $0.node) }, uniquingKeysWith: { first, _ in first })
    }

    /// The reason for each unplaced task.
    public var reasonByTask: [String: PlacementFailure] {
        Dictionary(unplaced.map { ($0.taskID, $0.reason) }, uniquingKeysWith: { first, _ in first })
    }
}
