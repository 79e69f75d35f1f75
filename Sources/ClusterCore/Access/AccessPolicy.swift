/// The configured half of access: bootstrap admins and what token groups map to. The replicated
/// half (role bindings, project members) lives in `AccessBook`.
public struct AccessPolicy: Sendable, Equatable {
    /// Certificate users who are admins whatever the bindings say, so a new cluster is usable.
    public var bootstrapAdmins: Set<String>
    /// Token group → cluster role (admin, operator, viewer).
    public var groupRoles: [String: AccessRole]
    /// Token group → projects whose member the caller is.
    public var groupProjects: [String: [String]]
    /// When false every user call is allowed (the benchmark's baseline); never in production.
    public var enforced: Bool

    public init(bootstrapAdmins: Set<String> = [], groupRoles: [String: AccessRole] = [:],
                groupProjects: [String: [String]] = [:], enforced: Bool = true) {
        self.bootstrapAdmins = bootstrapAdmins
        self.groupRoles = groupRoles
        self.groupProjects = groupProjects
        self.enforced = enforced
    }

    /// Every role `principal` holds: bootstrap (certificates only), bindings, project membership and token groups.
    public func roles(of principal: Principal, in book: AccessBook) -> Set<AccessRole> {
        guard principal.kind == .user else { return [] }
        var roles: Set<AccessRole> = []
        if principal.proof == .certificate && bootstrapAdmins.contains(principal.name) { roles.insert(.admin) }
        for binding in book.bindings where binding.user == principal.name {
            if let role = AccessRole(name: binding.role, project: binding.project) { roles.insert(role) }
        }
        for project in book.projects.values where project.members.contains(principal.name) {
            roles.insert(.member(project: project.name))
        }
        for group in principal.groups {
            if let role = groupRoles[group] { roles.insert(role) }
            for project in groupProjects[group] ?? [] { roles.insert(.member(project: project)) }
        }
        return roles
    }

    /// The decision for one call, with the roles it was based on.
    public func authorize(_ principal: Principal, _ verb: Verb, _ resource: Resource, in book: AccessBook) -> Decision {
        if !enforced { return .allow }
        return Authorization.authorize(principal, roles: roles(of: principal, in: book), verb, resource)
    }

    /// The projects whose jobs `principal` sees in listings; nil: every project.
    public func readableProjects(of principal: Principal, in book: AccessBook) -> Set<String>? {
        enforced ? Authorization.readableProjects(principal, roles: roles(of: principal, in: book)) : nil
    }

    /// The configuration as text lines, for `specola access list`.
    public var describedLines: [String] {
        bootstrapAdmins.sorted().map { "user \($0): admin (bootstrap, coordinator config)" }
            + groupRoles.keys.sorted().map { "group \($0): \(groupRoles[$0]!.name) (coordinator config)" }
            + groupProjects.keys.sorted().map { "group \($0): member of \(groupProjects[$0]!.joined(separator: ", ")) (coordinator config)" }
    }
}

extension Set where Element == AccessRole {
    /// The projects these roles make the holder a member of.
    public var projects: [String] {
        compactMap { role in
            if case .member(let project) = role { return project }
            return nil
        }.sorted()
    }
}
