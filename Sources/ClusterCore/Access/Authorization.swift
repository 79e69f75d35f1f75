/// What a call does, named once for the authorization decision and the audit log.
public enum Verb: String, Sendable, Hashable, CaseIterable {
    // Reads.
    case clusterRead = "cluster.read"
    case jobRead = "job.read"
    case kvRead = "kv.read"
    case accessRead = "access.read"
    case usageRead = "usage.read"
    case auditRead = "audit.read"
    // Jobs of a project.
    case jobSubmit = "job.submit"
    case jobCancel = "job.cancel"
    /// An `exec` task (runs on the host, not in a container).
    case jobExec = "job.exec"
    /// A host path mounted into a task.
    case jobMount = "job.mount"
    // Operations.
    case kvWrite = "kv.write"
    case nodeSchedule = "node.schedule"
    case nodeAdmit = "node.admit"
    case nodeFence = "node.fence"
    case storageRepair = "storage.repair"
    case alertAck = "alert.ack"
    case silenceChange = "silence.change"
    case workloadChange = "workload.change"
    case leadershipTransfer = "leadership.transfer"
    case membershipChange = "membership.change"
    case snapshotSave = "snapshot.save"
    case pkiRevoke = "pki.revoke"
    case accessChange = "access.change"
    // Machine parties.
    case agentLink = "agent.link"
    case raftPeer = "raft.peer"

    /// Whether a successful call changes the replicated state (and is audited).
    public var mutates: Bool {
        switch self {
        case .clusterRead, .jobRead, .kvRead, .accessRead, .usageRead, .auditRead, .agentLink, .raftPeer: false
        default: true
        }
    }

    /// The least cluster-wide role that may do this; nil for project verbs and machine verbs.
    var clusterRole: AccessRole? {
        switch self {
        case .clusterRead, .jobRead, .kvRead, .accessRead, .usageRead: .viewer
        case .kvWrite, .nodeSchedule, .nodeAdmit, .storageRepair, .alertAck: .operator
        case .auditRead, .nodeFence, .silenceChange, .workloadChange, .leadershipTransfer, .membershipChange, .snapshotSave,
             .pkiRevoke, .accessChange, .jobExec, .jobMount:
            .admin
        case .jobSubmit, .jobCancel, .agentLink, .raftPeer: nil
        }
    }

    /// What a coordinator certificate may call (exactly what it could before roles existed).
    var coordinatorMay: Bool {
        switch self {
        case .clusterRead, .jobRead, .kvRead, .jobSubmit, .jobCancel, .jobExec, .jobMount, .kvWrite, .nodeSchedule, .nodeFence,
             .storageRepair, .alertAck, .silenceChange, .workloadChange, .leadershipTransfer, .raftPeer:
            true
        default: false
        }
    }

    /// What a node certificate may call; its KV reach is narrowed further by `KVScope`.
    var nodeMay: Bool { self == .agentLink || self == .kvRead || self == .kvWrite }
}

/// What a call acts on: `kind/name`, and the project it belongs to when it has one.
public struct Resource: Sendable, Hashable, CustomStringConvertible {
    public var kind: String
    public var name: String
    public var project: String?

    public init(kind: String, name: String, project: String? = nil) {
        self.kind = kind
        self.name = name
        self.project = project.flatMap { $0.isEmpty ? nil : $0 }
    }

    public static let cluster = Resource(kind: "cluster", name: "*")
    public static func node(_ name: String) -> Resource { Resource(kind: "node", name: name) }
    /// A job by its id `PROJECT/NAME`.
    public static func job(_ id: String, project: String?) -> Resource { Resource(kind: "job", name: id, project: project) }
    public static func project(_ name: String) -> Resource { Resource(kind: "project", name: name, project: name) }
    /// A KV key (or a listing's prefix); under `jobs/PROJECT/` it belongs to that project.
    public static func kv(_ key: String) -> Resource { Resource(kind: "kv", name: key, project: KVScope.project(ofKey: key)) }

    public var description: String {
        // A project and a job (`job/PROJECT/NAME`) name their project already.
        guard let project, kind != "project", kind != "job" else { return "\(kind)/\(name)" }
        return "\(kind)/\(name) (project \(project))"
    }
}

/// A role a user holds. Cluster roles nest: admin ⊇ operator ⊇ viewer; a member also reads.
public enum AccessRole: Sendable, Hashable, Comparable, CustomStringConvertible {
    case viewer
    case member(project: String)
    case `operator`
    case admin

    /// `admin`, `operator`, `viewer`, or `member` with a project.
    public init?(name: String, project: String = "") {
        switch name {
        case "admin": self = .admin
        case "operator": self = .operator
        case "viewer": self = .viewer
        case "member" where !project.isEmpty: self = .member(project: project)
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .viewer: "viewer"
        case .member: "member"
        case .operator: "operator"
        case .admin: "admin"
        }
    }

    public var description: String {
        if case .member(let project) = self { return "member of \(project)" }
        return name
    }

    /// Viewer, operator or admin: reads every project's jobs.
    public var isClusterWide: Bool {
        if case .member = self { return false }
        return true
    }

    /// Cluster-wide rank; a member ranks as a viewer outside its project.
    var rank: Int {
        switch self {
        case .viewer, .member: 0
        case .operator: 1
        case .admin: 2
        }
    }
}

/// The answer to one authorization question.
public enum Decision: Sendable, Equatable {
    case allow
    /// `message` names who, the verb, the resource and which role would allow it.
    case deny(message: String)

    public var isAllowed: Bool { self == .allow }
}

/// The single authorization decision: who may do what to which resource.
public enum Authorization {
    /// `roles`: what `principal` holds (from `AccessPolicy.roles`); unused for nodes and coordinators.
    public static func authorize(_ principal: Principal, roles: Set<AccessRole>, _ verb: Verb, _ resource: Resource) -> Decision {
        switch principal.kind {
        case .coordinator:
            return verb.coordinatorMay ? .allow : deny(principal, verb, resource, needs: "a user certificate")
        case .node:
            return verb.nodeMay ? .allow : deny(principal, verb, resource, needs: "a user certificate")
        case .user:
            break
        }
        if verb == .agentLink || verb == .raftPeer {
            return deny(principal, verb, resource, needs: verb == .agentLink ? "a node certificate" : "a coordinator certificate")
        }
        let rank = roles.map(\.rank).max() ?? -1
        // Jobs are read within projects (like Nomad namespaces, unlike Slurm's default): a member
        // reads its projects' jobs; viewers, operators and admins read all.
        // A project's step outputs (KV keys under `jobs/PROJECT/`) are read like its jobs.
        if verb == .jobRead || verb == .kvRead, let project = resource.project {
            if roles.contains(where: \.isClusterWide) || roles.contains(.member(project: project)) { return .allow }
            return deny(principal, verb, resource, needs: "viewer, operator, admin or member of \(project)", holds: roles)
        }
        // ...and written by operators, admins and the project's own members.
        if verb == .kvWrite, let project = resource.project {
            if rank >= AccessRole.operator.rank || roles.contains(.member(project: project)) { return .allow }
            return deny(principal, verb, resource, needs: "operator, admin or member of \(project)", holds: roles)
        }
        if let least = verb.clusterRole {
            if rank >= least.rank && (least.rank > 0 || !roles.isEmpty) { return .allow }
            return deny(principal, verb, resource, needs: allowing(least), holds: roles)
        }
        // Project verbs: admin anywhere, a member in its own project.
        if rank >= AccessRole.admin.rank { return .allow }
        if let project = resource.project, roles.contains(.member(project: project)) { return .allow }
        let needs = resource.project.map { "admin or member of \($0)" } ?? "admin, or member of the job's project"
        return deny(principal, verb, resource, needs: needs, holds: roles)
    }

    /// The projects whose jobs a user holding `roles` sees in listings; nil: every project.
    public static func readableProjects(_ principal: Principal, roles: Set<AccessRole>) -> Set<String>? {
        guard principal.kind == .user, !roles.contains(where: \.isClusterWide) else { return nil }
        return Set(roles.projects)
    }

    private static func allowing(_ least: AccessRole) -> String {
        switch least {
        case .admin: "admin"
        case .operator: "operator or admin"
        case .viewer, .member: "viewer, member, operator or admin"
        }
    }

    static func deny(_ principal: Principal, _ verb: Verb, _ resource: Resource, needs: String, holds: Set<AccessRole>? = nil) -> Decision {
        var message = "\(principal) may not \(verb.rawValue) on \(resource): it needs \(needs)"
        if let holds {
            message += holds.isEmpty ? "; \(principal) holds no role (an admin grants one with `specola access grant`)"
                : "; \(principal) holds \(holds.sorted().map(\.description).joined(separator: ", "))"
        }
        return .deny(message: message)
    }
}
