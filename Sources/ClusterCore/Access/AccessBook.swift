import SpecolaWire

/// The replicated half of access: projects, role bindings of certificate users, and the audit log.
/// Deterministic like the rest of `ClusterState`: time arrives inside commands.
public struct AccessBook: Sendable {
    public private(set) var projects: [String: Specola_V1_Project] = [:]
    public private(set) var bindings: [Specola_V1_RoleBinding] = []
    /// Oldest first.
    public private(set) var audit: [Specola_V1_AuditRecord] = []

    public init() {}

    /// A snapshot written before projects existed has none of these fields and restores empty.
    public init(snapshot: Specola_V1_ClusterSnapshot) {
        for project in snapshot.projects { projects[project.name] = project }
        bindings = snapshot.roleBindings
        audit = snapshot.auditRecords
    }

    public func write(into snapshot: inout Specola_V1_ClusterSnapshot) {
        snapshot.projects = projects.values.sorted { $0.name < $1.name }
        snapshot.roleBindings = bindings
        snapshot.auditRecords = audit
    }

    /// The same projects and bindings without the audit records (for a cheap copy).
    public func withoutAudit() -> AccessBook {
        var copy = self
        copy.audit = []
        return copy
    }

    /// Why `name` cannot name a project, or nil.
    public static func nameProblem(_ name: String) -> String? {
        let allowed = name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
        guard !name.isEmpty, name.utf8.count <= 63, allowed else {
            return "project name '\(name)' must be 1 to 63 characters of a-z, 0-9, '-' and '_'"
        }
        return nil
    }

    public mutating func apply(_ command: Specola_V1_ProjectCommand, at: Int64) -> ApplyOutcome {
        switch command.op {
        case .create(var project):
            if let problem = Self.nameProblem(command.name) { return .rejected(reason: problem) }
            guard projects[command.name] == nil else {
                return .rejected(reason: "project '\(command.name)' exists; change it with `specola project set \(command.name)`")
            }
            project.name = command.name
            project.createdAtUnixMs = at
            project.members = Array(Set(project.members)).sorted()
            projects[command.name] = project
        case .set(var project):
            guard let current = projects[command.name] else { return Self.noProject(command.name, known: projects.keys) }
            project.name = command.name
            project.members = current.members
            project.createdBy = current.createdBy
            project.createdAtUnixMs = current.createdAtUnixMs
            projects[command.name] = project
        case .members(let change):
            guard var project = projects[command.name] else { return Self.noProject(command.name, known: projects.keys) }
            var members = Set(project.members).union(change.add)
            members.subtract(change.remove)
            project.members = members.sorted()
            projects[command.name] = project
        case nil:
            return .rejected(reason: "empty project command")
        }
        return .done
    }

    static func noProject(_ name: String, known: Dictionary<String, Specola_V1_Project>.Keys) -> ApplyOutcome {
        .rejected(reason: "no project '\(name)' (known: \(known.isEmpty ? "none" : known.sorted().joined(separator: ", "))); an admin creates it with `specola project create \(name)`")
    }

    public mutating func apply(_ command: Specola_V1_RoleBindingCommand, at: Int64) -> ApplyOutcome {
        switch command.op {
        case .grant(var binding):
            guard AccessRole(name: binding.role, project: binding.project) != nil else {
                return .rejected(reason: "'\(binding.role)' is not a role; use admin, operator, viewer, or member with a project")
            }
            if binding.role == "member" && projects[binding.project] == nil {
                return Self.noProject(binding.project, known: projects.keys)
            }
            if binding.role != "member" { binding.project = "" }
            binding.grantedAtUnixMs = at
            if !bindings.contains(where: { $0.sameGrant(as: binding) }) { bindings.append(binding) }
        case .revoke(let binding):
            let before = bindings.count
            bindings.removeAll { $0.sameGrant(as: binding) }
            if bindings.count == before {
                return .rejected(reason: "user \(binding.user) holds no \(binding.role)\(binding.project.isEmpty ? "" : " of \(binding.project)") binding; `specola access list` shows the bindings")
            }
        case nil:
            return .rejected(reason: "empty role binding command")
        }
        return .done
    }

    /// Appends audit records and applies retention: the age limit first, then the count cap.
    public mutating func apply(_ command: Specola_V1_AuditCommand) -> ApplyOutcome {
        audit.append(contentsOf: command.records)
        if command.dropBeforeUnixMs > 0, let keep = audit.firstIndex(where: { $0.atUnixMs >= command.dropBeforeUnixMs }) {
            audit.removeFirst(keep)
        } else if command.dropBeforeUnixMs > 0 {
            audit.removeAll()
        }
        if command.maxRecords > 0, audit.count > Int(command.maxRecords) {
            audit.removeFirst(audit.count - Int(command.maxRecords))
        }
        return .done
    }

    /// Records matching a query, newest last.
    public func auditRecords(since: Int64, user: String, verb: String, limit: Int) -> [Specola_V1_AuditRecord] {
        let matching = audit.filter { record in
            record.atUnixMs >= since
                && (user.isEmpty || record.principal == user || record.principal.hasSuffix("/\(user)"))
                && (verb.isEmpty || record.verb == verb || record.verb.hasPrefix(verb + "."))
        }
        return limit > 0 && matching.count > limit ? Array(matching.suffix(limit)) : matching
    }
}

extension Specola_V1_RoleBinding {
    func sameGrant(as other: Self) -> Bool {
        user == other.user && role == other.role && (role != "member" || project == other.project)
    }
}

extension Specola_V1_Command {
    public static func project(_ name: String, at: Int64 = WallClock.nowUnixMs(), _ op: Specola_V1_ProjectCommand.OneOf_Op) -> Self {
        .with {
            $0.proposedAtUnixMs = at
            $0.project = .with { $0.name = name; $0.op = op }
        }
    }

    public static func roleBinding(_ op: Specola_V1_RoleBindingCommand.OneOf_Op, at: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = at
            $0.roleBinding.op = op
        }
    }

    /// A batch of audit records; `dropBefore` and `maxRecords` carry the retention.
    public static func audit(_ records: [Specola_V1_AuditRecord], dropBefore: Int64, maxRecords: Int,
                             at: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = at
            $0.audit = .with {
                $0.records = records
                $0.dropBeforeUnixMs = dropBefore
                $0.maxRecords = UInt32(clamping: maxRecords)
            }
        }
    }
}
