import ArgumentParser
import Foundation
import GRPCNIOTransportHTTP2
import SpecolaJobs
import SpecolaProtocol

extension ConnectionOptions {
    func withAccess<T: Sendable>(
        _ body: @escaping @Sendable (Specola_V1_Access.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClient { try await body(Specola_V1_Access.Client(wrapping: $0)) }
    }
}

/// `specola access grant|revoke|list`: roles of certificate users (`specola whoami` shows your own).
struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access", abstract: "Who may do what: grant, revoke and list roles (admin, operator, viewer, member of a project).",
        subcommands: [Grant.self, Revoke.self, List.self])

    static func binding(_ user: String, _ role: String, _ project: String?) throws -> Specola_V1_RoleBinding {
        let name = user.hasPrefix("user/") ? String(user.dropFirst(5)) : user
        guard ["admin", "operator", "viewer", "member"].contains(role) else {
            throw ValidationError("'\(role)' is not a role; use admin, operator, viewer or member (with --project)")
        }
        if role == "member" && (project ?? "").isEmpty { throw ValidationError("member needs --project NAME") }
        return .with { $0.user = name; $0.role = role; $0.project = project ?? "" }
    }

    static func show(_ response: Specola_V1_ListRoleBindingsResponse) {
        var table = Table("USER", "ROLE", "PROJECT", "GRANTED BY", "AT")
        for binding in response.bindings {
            table.add(binding.user, binding.role, binding.project.isEmpty ? "-" : binding.project, binding.grantedBy,
                      Format.time(binding.grantedAtUnixMs))
        }
        print(table.rendered)
        if !response.configured.isEmpty {
            print("\nConfigured:")
            for line in response.configured { print("  \(line)") }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give USER a role (admins only).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "user/NAME or NAME.") var user: String
        @Argument(help: "admin, operator, viewer or member.") var role: String
        @Option(help: "The project, for member.") var project: String?

        func run() async throws {
            let binding = try AccessCommand.binding(user, role, project)
            let request = Specola_V1_RoleBindingRequest.with { $0.binding = binding }
            try await runReporting {
                let response = try await connection.withAccess { try await $0.grant(request) }
                if connection.json { return try JSONOutput.print(response) }
                AccessCommand.show(response)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a role from USER (admins only).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "user/NAME or NAME.") var user: String
        @Argument(help: "admin, operator, viewer or member.") var role: String
        @Option(help: "The project, for member.") var project: String?

        func run() async throws {
            let binding = try AccessCommand.binding(user, role, project)
            try await runReporting {
                let response = try await connection.withAccess { try await $0.revokeRole(.with { $0.binding = binding }) }
                if connection.json { return try JSONOutput.print(response) }
                AccessCommand.show(response)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Role bindings, and the bootstrap admins and group mappings from the configuration.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await runReporting {
                let response = try await connection.withAccess { try await $0.listBindings(.init()) }
                if connection.json { return try JSONOutput.print(response) }
                AccessCommand.show(response)
            }
        }
    }
}

/// Limits shared by `project create` and `project set`.
struct ProjectLimits: ParsableArguments {
    @Option(help: "Fair-share weight (default 1).") var weight: UInt32?
    @Option(help: "Cores the project's running tasks may hold, e.g. 8 or 0.5; 0 = no limit.") var maxCores: String?
    @Option(help: "Memory the project's running tasks may hold, e.g. 64Gi; 0 = no limit.") var maxMemory: String?
    @Option(help: "Tasks running at once; 0 = no limit.") var maxTasks: UInt32?
    @Option(help: "Highest priority a member may ask for (default 50).") var maxPriority: Int32?
    @Option(help: "Comma-separated image prefixes members may use; empty = any.") var images: String?
    @Option(help: "Comma-separated host paths members may mount read-only.") var mounts: String?
    @Option(help: "Comma-separated host paths members may mount read-write.") var writableMounts: String?
    @Option(help: "Comma-separated drivers members may use (podman, exec); default podman.") var drivers: String?

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func apply(to project: inout Specola_V1_Project) throws {
        if let weight { project.weight = weight }
        if let maxCores {
            guard let millicores = maxCores == "0" ? 0 : Quantity.millicores(maxCores) else { throw ValidationError("--max-cores '\(maxCores)' is not a number of cores") }
            project.maxCpuMillicores = millicores
        }
        if let maxMemory {
            guard let bytes = maxMemory == "0" ? 0 : Quantity.bytes(maxMemory) else { throw ValidationError("--max-memory '\(maxMemory)' is not a size such as 64Gi") }
            project.maxMemoryBytes = bytes
        }
        if let maxTasks { project.maxTasks = maxTasks }
        if let maxPriority {
            guard (0...100).contains(maxPriority) else { throw ValidationError("--max-priority must be 0 to 100") }
            project.maxPriority = maxPriority
        }
        if let images { project.imagePrefixes = Self.list(images) }
        if let mounts { project.archiveMounts = Self.list(mounts) }
        if let writableMounts { project.writableMounts = Self.list(writableMounts) }
        if let drivers {
            let names = Self.list(drivers)
            for name in names where name != "podman" && name != "exec" { throw ValidationError("'\(name)' is not a driver; use podman or exec") }
            project.drivers = names
        }
    }
}

enum ProjectText {
    static func describe(_ project: Specola_V1_Project) -> String {
        func limit(_ value: Int64, _ text: String) -> String { value == 0 ? "no limit" : text }
        func list(_ values: [String], _ none: String) -> String { values.isEmpty ? none : values.joined(separator: ", ") }
        return """
            Project \(project.name)
              Members:         \(list(project.members, "none"))
              Weight:          \(max(project.weight, 1))
              Cores:           \(limit(project.maxCpuMillicores, Quantity.formatCores(project.maxCpuMillicores)))
              Memory:          \(limit(project.maxMemoryBytes, Quantity.formatBytes(project.maxMemoryBytes)))
              Tasks at once:   \(limit(Int64(project.maxTasks), "\(project.maxTasks)"))
              Max priority:    \(project.maxPriority == 0 ? "\(JobMetadata.defaultPriority) (default)" : "\(project.maxPriority)")
              Images:          \(list(project.imagePrefixes, "any"))
              Drivers:         \(list(project.drivers, "podman (default)"))
              Archive mounts:  \(list(project.archiveMounts, "none")) (read-only)
              Writable mounts: \(list(project.writableMounts, "none"))
              Created:         \(Format.time(project.createdAtUnixMs)) by \(project.createdBy)
            """
    }
}

extension ProjectText {
    /// A project as `--json` or as text.
    static func show(_ project: Specola_V1_Project, _ connection: ConnectionOptions) throws {
        if connection.json { return try JSONOutput.print(project) }
        print(describe(project))
    }
}

/// `specola project create|show|list|set|add-member|remove-member`.
struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project", abstract: "Projects: members, fair-share weight, quotas, allowed images, mounts and drivers.",
        subcommands: [Create.self, Show.self, ProjectsCommand.self, Set.self, AddMember.self, RemoveMember.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project (admins only).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Option(help: "A member's user name (repeatable).") var member: [String] = []
        @OptionGroup var limits: ProjectLimits

        func run() async throws {
            var project = Specola_V1_Project.with { $0.name = name; $0.members = member }
            try limits.apply(to: &project)
            let request = project
            try await runReporting {
                let created = try await connection.withAccess { try await $0.createProject(request) }
                try ProjectText.show(created, connection)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A project's members and limits.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String

        func run() async throws {
            try await runReporting {
                let project = try await connection.withAccess { try await $0.getProject(.with { $0.name = name }) }
                try ProjectText.show(project, connection)
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a project's weight and limits (admins only); members stay.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @OptionGroup var limits: ProjectLimits

        func run() async throws {
            try await runReporting {
                var project = try await connection.withAccess { try await $0.getProject(.with { $0.name = name }) }
                try limits.apply(to: &project)
                let request = project
                let changed = try await connection.withAccess { try await $0.setProject(request) }
                try ProjectText.show(changed, connection)
            }
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Add users to a project (admins only).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Argument(help: "User names.") var users: [String]

        func run() async throws {
            try await ProjectCommand.changeMembers(connection, name) { $0.add = users }
        }
    }

    struct RemoveMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove-member", abstract: "Remove users from a project (admins only).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Argument(help: "User names.") var users: [String]

        func run() async throws {
            try await ProjectCommand.changeMembers(connection, name) { $0.remove = users }
        }
    }

    /// Sends one membership change of project `name` and prints the members after it.
    static func changeMembers(_ connection: ConnectionOptions, _ name: String,
                              _ change: (inout Specola_V1_ProjectMembers) -> Void) async throws {
        try await runReporting {
            var request = Specola_V1_ProjectMembersRequest.with { $0.name = name }
            change(&request.members)
            let sent = request
            let project = try await connection.withAccess { try await $0.changeProjectMembers(sent) }
            if connection.json { return try JSONOutput.print(project) }
            print("project \(project.name) members: \(project.members.isEmpty ? "none" : project.members.joined(separator: ", "))")
        }
    }
}

/// `specola projects` (also `specola project list`).
struct ProjectsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "projects", abstract: "List projects.", aliases: ["list"])
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Only the projects you are a member of.") var mine = false

    func run() async throws {
        try await runReporting {
            let response = try await connection.withAccess { [mine] in try await $0.listProjects(.with { $0.mine = mine }) }
            if connection.json { return try JSONOutput.print(response) }
            var table = Table("PROJECT", "MEMBERS", "WEIGHT", "CORES", "MEMORY", "TASKS", "MAX PRIO")
            for project in response.projects {
                table.add(project.name, project.members.isEmpty ? "-" : project.members.joined(separator: ","), "\(max(project.weight, 1))",
                          project.maxCpuMillicores == 0 ? "-" : Quantity.formatCoreNumber(project.maxCpuMillicores),
                          project.maxMemoryBytes == 0 ? "-" : Quantity.formatBytes(project.maxMemoryBytes),
                          project.maxTasks == 0 ? "-" : "\(project.maxTasks)",
                          project.maxPriority == 0 ? "\(JobMetadata.defaultPriority)" : "\(project.maxPriority)")
            }
            print(table.rendered)
        }
    }
}

/// `specola audit [--since 1h] [--user NAME] [--verb VERB] [--json]` (admins only).
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The audit log: every mutating call and every refusal (admins only).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only records newer than this, e.g. 30m, 2h, 7d.") var since: DurationArgument?
    @Option(help: "Only this user's records (NAME or kind/NAME).") var user = ""
    @Option(help: "Only this verb, or a prefix such as job.") var verb = ""
    @Option(help: "At most this many (the newest).") var limit: UInt32 = 1_000

    func run() async throws {
        let query = Specola_V1_AuditQuery.with {
            $0.sinceUnixMs = since.map { Int64(Date().timeIntervalSince1970 * 1000) - $0.milliseconds } ?? 0
            $0.user = user
            $0.verb = verb
            $0.limit = limit
        }
        try await runReporting {
            let response = try await connection.withAccess { try await $0.audit(query) }
            if connection.json {
                // One JSON object per line, as a SIEM reads them.
                for record in response.records { print(try record.jsonString()) }
                return
            }
            var table = Table("TIME", "WHO", "VERB", "RESOURCE", "OUTCOME", "DETAIL")
            for record in response.records {
                let repeats = record.repeats > 0 ? " (+\(record.repeats) more)" : ""
                table.add(Format.time(record.atUnixMs), record.principal, record.verb, record.resource, record.outcome + repeats,
                          String(record.detail.prefix(120)))
            }
            print(table.rendered)
        }
    }
}

/// `specola usage [--project P] [--since 30d]`: core-hours and memory-hours, like Slurm's sacct.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Core-hours and memory-hours per project and user, from ended allocations.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only this project.") var project = ""
    @Option(help: "Only days from this long ago, e.g. 30d (whole UTC days).") var since: DurationArgument?

    func run() async throws {
        let query = Specola_V1_UsageQuery.with {
            $0.project = project
            $0.sinceUnixMs = since.map { Int64(Date().timeIntervalSince1970 * 1000) - $0.milliseconds } ?? 0
        }
        try await runReporting {
            let response = try await connection.withAccess { try await $0.usage(query) }
            if connection.json { return try JSONOutput.print(response) }
            var table = Table("PROJECT", "USER", "TASKS", "CORE-HOURS", "MEMORY-GIB-HOURS")
            for row in response.rows {
                table.add(row.project, row.user, "\(row.tasks)", String(format: "%.3f", row.coreHours), String(format: "%.3f", row.memoryGibHours))
            }
            print(table.rendered)
        }
    }
}
