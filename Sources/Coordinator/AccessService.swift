import Foundation
import GRPCCore
import Logging
import SpecolaClusterCore
import SpecolaProtocol

/// `specola access`, `specola project(s)`, `specola audit` and `specola usage`. Writes go
/// through Raft on the leader; reads are linearizable.
struct AccessService: Specola_V1_Access.SimpleServiceProtocol {
    let replica: Replica
    let access: AccessGate
    let logger: Logger

    private func propose(_ command: Specola_V1_Command) async throws {
        try await serving { try await replica.requireLeader() }
        let outcome = try await serving { try await replica.propose(command) }
        if case .rejected(let reason) = outcome { throw RPCError(code: .failedPrecondition, message: reason) }
    }

    private func book() async throws -> AccessBook {
        try await serving { try await replica.readBarrier() }
        return await replica.accessBook
    }

    func whoAmI(request: Specola_V1_WhoAmIRequest, context: ServerContext) async throws -> Specola_V1_WhoAmIResponse {
        let principal = try CallerIdentity.principal(context)
        let roles = await access.roles(of: principal)
        return .with {
            $0.kind = principal.kind.rawValue
            $0.name = principal.name
            $0.groups = principal.groups
            switch principal.proof {
            case .certificate: $0.proof = "certificate"
            case .token(let issuer):
                $0.proof = "token"
                $0.issuer = issuer
            }
            $0.roles = roles.sorted().map(\.description)
            $0.projects = roles.projects
        }
    }

    func grant(request: Specola_V1_RoleBindingRequest, context: ServerContext) async throws -> Specola_V1_ListRoleBindingsResponse {
        let binding = request.binding
        return try await access.audited(context, .accessChange, Resource(kind: "user", name: binding.user), request: request) { caller in
            try Self.validate(binding)
            try await propose(.roleBinding(.grant(binding.with(grantedBy: caller))))
            logger.notice("role granted", metadata: ["user": "\(binding.user)", "role": "\(binding.role)", "project": "\(binding.project)", "by": "\(caller)"])
            return try await bindings()
        }
    }

    func revokeRole(request: Specola_V1_RoleBindingRequest, context: ServerContext) async throws -> Specola_V1_ListRoleBindingsResponse {
        let binding = request.binding
        return try await access.audited(context, .accessChange, Resource(kind: "user", name: binding.user), request: request) { caller in
            try await propose(.roleBinding(.revoke(binding)))
            logger.notice("role revoked", metadata: ["user": "\(binding.user)", "role": "\(binding.role)", "project": "\(binding.project)", "by": "\(caller)"])
            return try await bindings()
        }
    }

    static func validate(_ binding: Specola_V1_RoleBinding) throws {
        guard !binding.user.isEmpty, AccessRole(name: binding.role, project: binding.project) != nil else {
            throw RPCError(code: .invalidArgument, message: "give a user and a role: admin, operator, viewer, or member with --project")
        }
    }

    private func bindings() async throws -> Specola_V1_ListRoleBindingsResponse {
        let book = try await book()
        return .with {
            $0.bindings = book.bindings
            $0.configured = access.policy.describedLines
        }
    }

    func listBindings(request: Specola_V1_ListRoleBindingsRequest, context: ServerContext) async throws -> Specola_V1_ListRoleBindingsResponse {
        try await access.check(context, .accessRead, .cluster)
        return try await bindings()
    }

    func createProject(request: Specola_V1_Project, context: ServerContext) async throws -> Specola_V1_Project {
        try await access.audited(context, .accessChange, .project(request.name), request: request) { caller in
            var project = request
            project.createdBy = caller.description
            try await propose(.project(request.name, .create(project)))
            logger.notice("project created", metadata: ["project": "\(request.name)", "by": "\(caller)"])
            return try await self.project(request.name)
        }
    }

    func setProject(request: Specola_V1_Project, context: ServerContext) async throws -> Specola_V1_Project {
        try await access.audited(context, .accessChange, .project(request.name), request: request) { caller in
            try await propose(.project(request.name, .set(request)))
            logger.notice("project changed", metadata: ["project": "\(request.name)", "by": "\(caller)"])
            return try await self.project(request.name)
        }
    }

    func changeProjectMembers(request: Specola_V1_ProjectMembersRequest, context: ServerContext) async throws -> Specola_V1_Project {
        try await access.audited(context, .accessChange, .project(request.name), request: request) { caller in
            try await propose(.project(request.name, .members(request.members)))
            logger.notice("project members changed", metadata: [
                "project": "\(request.name)", "added": "\(request.members.add)", "removed": "\(request.members.remove)", "by": "\(caller)",
            ])
            return try await self.project(request.name)
        }
    }

    private func project(_ name: String) async throws -> Specola_V1_Project {
        guard let project = try await book().projects[name] else {
            throw RPCError(code: .notFound, message: "no project '\(name)'; `specola projects` lists them")
        }
        return project
    }

    func getProject(request: Specola_V1_GetProjectRequest, context: ServerContext) async throws -> Specola_V1_Project {
        try await access.check(context, .accessRead, .project(request.name))
        return try await project(request.name)
    }

    func listProjects(request: Specola_V1_ListProjectsRequest, context: ServerContext) async throws -> Specola_V1_ListProjectsResponse {
        let caller = try await access.check(context, .accessRead, .cluster)
        let book = try await book()
        let mine = Set(await access.roles(of: caller).projects)
        return .with {
            $0.projects = book.projects.values.filter { !request.mine || mine.contains($0.name) }.sorted { $0.name < $1.name }
        }
    }

    func audit(request: Specola_V1_AuditQuery, context: ServerContext) async throws -> Specola_V1_AuditResponse {
        try await access.check(context, .auditRead, .cluster)
        // Records still waiting in this leader's batch are committed first.
        await access.audit.flush(replica: replica)
        let book = try await book()
        return .with {
            $0.records = book.auditRecords(since: request.sinceUnixMs, user: request.user, verb: request.verb,
                                           limit: request.limit == 0 ? 1_000 : Int(request.limit))
        }
    }

    func usage(request: Specola_V1_UsageQuery, context: ServerContext) async throws -> Specola_V1_UsageResponse {
        try await access.check(context, .usageRead, request.project.isEmpty ? .cluster : .project(request.project))
        try await serving { try await replica.readBarrier() }
        let jobs = await replica.replicatedState.jobs
        return .with { $0.rows = jobs.usage(project: request.project, since: request.sinceUnixMs) }
    }
}

extension Specola_V1_RoleBinding {
    func with(grantedBy caller: Principal) -> Self {
        var copy = self
        copy.grantedBy = caller.description
        return copy
    }
}
