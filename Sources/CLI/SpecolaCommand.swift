import ArgumentParser

/// The `specola` command line.
public struct SpecolaCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "specola",
        abstract: "Operate a Specola cluster.",
        discussion: """
            Connection settings come from --addr/--cacert/--client-cert/--client-key or SPECOLA_ADDR, SPECOLA_CACERT, \
            SPECOLA_CLIENT_CERT, SPECOLA_CLIENT_KEY. Without a client certificate, the token of `specola login` is sent \
            (a configured certificate wins over a stored token; point SPECOLA_ADDR at the coordinators' token listeners, oidc.listen).
            """,
        version: "0.1.0-dev",
        subcommands: [
            StatusCommand.self, NodesCommand.self, NodeCommand.self, VolumesCommand.self, VolumeCommand.self, BrickCommand.self, KVCommand.self, MembersCommand.self,
            LeaderCommand.self, SnapshotCommand.self, JobCommand.self, JobsCommand.self, LogsCommand.self, VMCommand.self, PodCommand.self,
            AlertsCommand.self, AlertCommand.self, SilenceCommand.self, PKICommand.self, AccessCommand.self, ProjectCommand.self,
            ProjectsCommand.self, AuditCommand.self, UsageCommand.self, DevCommand.self,
            LoginCommand.self, LogoutCommand.self, WhoAmICommand.self,
        ])

    public init() {}
}

extension SpecolaCommand {
    /// Parses the process arguments and runs the chosen command, async commands included.
    public static func runFromCommandLine() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
