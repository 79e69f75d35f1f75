import ArgumentParser
import Foundation
import SpecolaProtocol

/// `specola members [add|remove]`: the coordinator replicas.
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members", abstract: "List, add or remove coordinator replicas.",
        subcommands: [List.self, Add.self, Remove.self], defaultSubcommand: List.self)

    static func show(_ response: Specola_V1_ListMembersResponse, json: Bool) throws {
        if json { return try JSONOutput.print(response) }
        var table = Table("ID", "NAME", "ADDRESS", "RAFT CHANNEL", "KIND", "LEADER")
        for status in response.members {
            let channel = status.member.raftAddress.isEmpty ? "gRPC (no raftAddress)" : status.member.raftAddress
            table.add("\(status.member.id)", status.member.name, status.member.address, channel, status.kind, status.leader ? "*" : "")
        }
        print(table.rendered)
        print("term \(response.term), commit index \(response.commitIndex)")
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Show the replicas and the leader.")
        @OptionGroup var connection: ConnectionOptions
        func run() async throws {
            try await runReporting {
                let response = try await connection.withClient { try await Specola_V1_Membership.Client(wrapping: $0).listMembers(.init()) }
                try MembersCommand.show(response, json: connection.json)
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a replica. Start it first with `join: true` in its config, then run this.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Raft id, unique in the group.") var id: UInt64
        @Option(help: "Replica name (its certificate is coordinator/NAME).") var name: String
        @Option(help: "Its gRPC address HOST:PORT.") var address: String
        @Option(help: "Its direct Raft channel HOST:PORT (the raftAddress in its config); without it, Raft traffic to it goes over gRPC.")
        var raftAddress: String = ""
        @Flag(help: "Add as a non-voting learner.") var learner = false

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_AddMemberRequest.with {
                    $0.member = .with { $0.id = id; $0.name = name; $0.address = address; $0.raftAddress = raftAddress }
                    $0.learner = learner
                }
                let response = try await connection.withClient { try await Specola_V1_Membership.Client(wrapping: $0).addMember(request) }
                try MembersCommand.show(response, json: connection.json)
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the replica with Raft id ID.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: UInt64

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_RemoveMemberRequest.with { $0.id = id }
                let response = try await connection.withClient { try await Specola_V1_Membership.Client(wrapping: $0).removeMember(request) }
                try MembersCommand.show(response, json: connection.json)
            }
        }
    }
}

/// `specola leader transfer [--to ID]`.
struct LeaderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leader", abstract: "Move Raft leadership.", subcommands: [Transfer.self])

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hand leadership to another voter.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Target replica id (default: another up-to-date voter).") var to: UInt64 = 0

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_TransferLeadershipRequest.with { $0.toID = to }
                let response = try await connection.withClient {
                    try await Specola_V1_Membership.Client(wrapping: $0).transferLeadership(request)
                }
                if connection.json { return try JSONOutput.print(response) }
                print("leader is now replica \(response.leaderID)")
            }
        }
    }
}

/// `specola snapshot save FILE`: the whole replicated state, for disaster recovery.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Save the replicated state to a file.", subcommands: [Save.self])

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the whole replicated state to FILE; `specola-coordinator restore` rebuilds a group from it.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var file: String

        func run() async throws {
            try await runReporting {
                let snapshot = try await connection.withClient { try await Specola_V1_Membership.Client(wrapping: $0).saveSnapshot(.init()) }
                let data: Data = try snapshot.serializedData()
                do {
                    // Written whole or not at all: a crash never leaves half a snapshot under FILE.
                    try data.write(to: URL(fileURLWithPath: file), options: .atomic)
                } catch {
                    throw CLIError("cannot write \(file): \(error.localizedDescription)")
                }
                if connection.json {
                    print(#"{"file":"\#(file)","bytes":\#(data.count),"appliedIndex":"\#(snapshot.appliedIndex)"}"#)
                } else {
                    print("saved \(data.count) bytes at index \(snapshot.appliedIndex) (\(snapshot.nodes.count) nodes, \(snapshot.kv.count) keys) to \(file)")
                }
            }
        }
    }
}
