/// Why a task was not placed, worded so that a user can act on it.
public struct PlacementFailure: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Whether waiting can help.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// No node in the cluster could ever run it as asked: change the spec or the cluster.
        case impossible
        /// Some node could run it once it has room or is back in service: the task stays queued.
        case waiting
    }

    /// Impossible or waiting.
    public var kind: Kind
    /// e.g. "needs 64 cores but the largest node has 48", "waiting: all feasible nodes are full".
    public var message: String

    /// Creates a failure.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
