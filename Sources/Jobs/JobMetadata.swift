/// Who a job belongs to and how urgent it is.
public struct JobMetadata: Sendable, Hashable, Codable {
    /// The job's name, unique within its project.
    public var name: String
    /// The user who submitted it.
    public var owner: String
    /// The project it is accounted to for fair share.
    public var project: String
    /// Higher runs first; 0...100, default 50.
    public var priority: Int

    /// Creates metadata.
    public init(name: String, owner: String, project: String, priority: Int = JobMetadata.defaultPriority) {
        self.name = name
        self.owner = owner
        self.project = project
        self.priority = priority
    }

    /// The priority of a job that names none.
    public static let defaultPriority = 50

    /// Where a job without a project lives (jobs committed before ids were scoped per project).
    public static let defaultProject = "default"

    /// The job's id in the cluster, `PROJECT/NAME`: names are unique per project, not globally.
    public var jobID: String { Self.jobID(project: project, name: name) }

    public static func jobID(project: String, name: String) -> String {
        "\(project.isEmpty ? defaultProject : project)/\(name)"
    }
}
