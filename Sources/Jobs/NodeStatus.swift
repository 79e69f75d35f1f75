/// A node's place on the failure ladder; only `ready` nodes receive new work.
public enum NodeStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Heartbeating and healthy.
    case ready
    /// Missed heartbeats; may come back, so new work waits rather than failing.
    case suspect
    /// Declared down; its work is being rescheduled.
    case down
    /// Being fenced (powered off or self-fenced).
    case fencing
    /// Proven to run nothing.
    case fenced
}
