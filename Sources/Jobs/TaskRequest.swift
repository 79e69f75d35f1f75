/// One task instance waiting to be placed: what it needs, where it may go, and where it stands in the queue.
public struct TaskRequest: Sendable, Hashable {
    /// The instance ID, e.g. `reduce/calibrate[3]`.
    public var id: String
    /// The job it belongs to; spread scoring keeps instances of one job apart.
    public var job: String
    /// Fair-share account.
    public var project: String
    /// Higher is placed first.
    public var priority: Int
    /// Position in the global submission order (the Raft index of the submit command, say); FIFO within a project.
    public var submitIndex: UInt64
    /// What one instance needs.
    public var resources: Resources
    /// Hard label requirements.
    public var constraints: [Constraint]
    /// Soft label preferences.
    public var affinities: [Affinity]
    /// Prefer the least-loaded node and keep apart from the job's other instances, instead of bin-packing.
    public var spread: Bool

    /// Creates a request.
    public init(
        id: String, job: String, project: String, priority: Int = JobMetadata.defaultPriority, submitIndex: UInt64 = 0,
        resources: Resources, constraints: [Constraint] = [], affinities: [Affinity] = [], spread: Bool = false
    ) {
        self.id = id
        self.job = job
        self.project = project
        self.priority = priority
        self.submitIndex = submitIndex
        self.resources = resources
        self.constraints = constraints
        self.affinities = affinities
        self.spread = spread
    }

    /// The request for one instance of a validated job.
    /// `jobID`: the job's id in the cluster (`PROJECT/NAME`); by default its name.
    public init(instance: TaskInstance, job: JobSpec, jobID: String? = nil, submitIndex: UInt64) {
        self.init(
            id: instance.id, job: jobID ?? job.metadata.name, project: job.metadata.project, priority: job.metadata.priority,
            submitIndex: submitIndex, resources: instance.task.resources, constraints: instance.task.constraints,
            affinities: instance.task.affinities, spread: job.spread)
    }
}
