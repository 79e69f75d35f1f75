/// A task instance of the running version of a job, and where it runs.
public struct RunningTask: Sendable, Hashable {
    /// The instance as it was submitted.
    public var instance: TaskInstance
    /// The node it runs on.
    public var node: String

    /// Creates an entry.
    public init(instance: TaskInstance, node: String) {
        self.instance = instance
        self.node = node
    }
}
