/// One task of a job, or one step of a pipeline, as the user wrote it (before count, array and foreach expansion).
public struct TaskSpec: Sendable, Hashable, Codable {
    /// Unique within the job; instance names are derived from it.
    public var name: String
    /// What runs.
    public var driver: TaskDriver
    /// What one instance asks for.
    public var resources: Resources
    /// Node label requirements.
    public var constraints: [Constraint]
    /// Node label preferences.
    public var affinities: [Affinity]
    /// Identical replicas per expanded instance.
    public var count: Int
    /// Array indices, if this is an array task.
    public var array: TaskArray?
    /// Extra environment variables.
    public var env: [String: String]
    /// Host paths to mount.
    public var mounts: [Mount]
    /// What happens after a failure.
    public var retries: RetryPolicy
    /// Wall-clock limit per attempt, in seconds; nil means none.
    public var timeoutSeconds: Int64?
    /// Pipeline only: steps that must succeed first.
    public var depends: [String]
    /// Pipeline only: one instance per item, told its item through `SPECOLA_ITEM`.
    public var foreach: [String]?
    /// Pipeline only: keys this step writes to the KV for later steps.
    public var outputs: [String]
    /// Pipeline only: values read from earlier steps.
    public var inputs: [StepInput]

    /// Creates a task; only name and driver are required.
    public init(
        name: String, driver: TaskDriver, resources: Resources = TaskSpec.defaultResources,
        constraints: [Constraint] = [], affinities: [Affinity] = [], count: Int = 1, array: TaskArray? = nil,
        env: [String: String] = [:], mounts: [Mount] = [], retries: RetryPolicy = .none, timeoutSeconds: Int64? = nil,
        depends: [String] = [], foreach: [String]? = nil, outputs: [String] = [], inputs: [StepInput] = []
    ) {
        self.name = name
        self.driver = driver
        self.resources = resources
        self.constraints = constraints
        self.affinities = affinities
        self.count = count
        self.array = array
        self.env = env
        self.mounts = mounts
        self.retries = retries
        self.timeoutSeconds = timeoutSeconds
        self.depends = depends
        self.foreach = foreach
        self.outputs = outputs
        self.inputs = inputs
    }

    /// The environment variable that carries a foreach item.
    public static let itemEnvironmentKey = "SPECOLA_ITEM"

    /// Default resources when a task names none: one core and 1GiB, like a Slurm default partition.
    public static let defaultResources = Resources(cpuMillicores: 1000, memoryBytes: 1 << 30)
}
