/// A validated `Job` or `Pipeline` spec. Only `JobSpecParser` produces one from YAML, so holding one means it passed validation.
public struct JobSpec: Sendable, Hashable, Codable {
    /// The two kinds of spec.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// Independent tasks that all start at once.
        case job = "Job"
        /// Steps ordered by `depends`, with foreach fan-out and fan-in.
        case pipeline = "Pipeline"
    }

    /// The only API version this build understands.
    public static let apiVersion = "specola/v1"

    /// Job or Pipeline.
    public var kind: Kind
    /// Name, owner, project, priority.
    public var metadata: JobMetadata
    /// Ask the scheduler to spread instances over nodes instead of bin-packing them.
    public var spread: Bool
    /// The tasks (a pipeline calls them steps), in the order written.
    public var tasks: [TaskSpec]

    /// Creates a spec; prefer `JobSpecParser`, which also validates.
    public init(kind: Kind, metadata: JobMetadata, spread: Bool = false, tasks: [TaskSpec]) {
        self.kind = kind
        self.metadata = metadata
        self.spread = spread
        self.tasks = tasks
    }
}
