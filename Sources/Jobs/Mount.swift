/// A host path made visible inside the task, for example the archive volume.
public struct Mount: Sendable, Hashable, Codable {
    /// Absolute path on the node.
    public var source: String
    /// Absolute path inside the task.
    public var target: String
    /// Whether the task may only read it; archive inputs usually are.
    public var readOnly: Bool

    /// Creates a mount.
    public init(source: String, target: String, readOnly: Bool = false) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }
}
