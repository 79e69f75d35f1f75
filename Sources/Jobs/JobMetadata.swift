/// Who a job belongs to and how urgent it is.
public struct JobMetadata: Sendable, Hashable, Codable {
    /// The job's name, unique per owner by convention; used in instance IDs.
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
}
