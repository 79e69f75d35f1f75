import ArgumentParser
import Foundation
import SpecolaProtocol

/// `specola kv put|get|del|cas|ls`: the replicated key-value store.
struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv", abstract: "Read and write the replicated key-value store.",
        subcommands: [Put.self, Get.self, Delete.self, CompareAndSwap.self, List.self])

    static func text(_ value: Data) -> String { String(decoding: value, as: UTF8.self) }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set KEY to VALUE.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var key: String
        @Argument var value: String

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_KvPutRequest.with { $0.key = key; $0.value = Data(value.utf8) }
                let response = try await connection.withClient { try await Specola_V1_KV.Client(wrapping: $0).put(request) }
                if connection.json { return try JSONOutput.print(response) }
                print("OK revision \(response.revision)")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print KEY's value (exit 4 when absent).")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Serve from this replica without a linearizable read barrier.") var stale = false
        @Argument var key: String

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_KvGetRequest.with { $0.key = key; $0.stale = stale }
                let response = try await connection.withClient { try await Specola_V1_KV.Client(wrapping: $0).get(request) }
                if connection.json { try JSONOutput.print(response) }
                guard response.found else { throw CLIError("no key '\(key)'", exitCode: 4) }
                if !connection.json { print(KVCommand.text(response.kv.value)) }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete KEY (exit 4 when absent).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var key: String

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_KvDeleteRequest.with { $0.key = key }
                let response = try await connection.withClient { try await Specola_V1_KV.Client(wrapping: $0).delete(request) }
                if connection.json { try JSONOutput.print(response) }
                guard response.succeeded else { throw CLIError("no key '\(key)'", exitCode: 4) }
                if !connection.json { print("OK revision \(response.revision)") }
            }
        }
    }

    struct CompareAndSwap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cas",
            abstract: "Set KEY to NEW only if it currently holds --expect VALUE or --expect-revision N (0 = absent). Exit 6 when the comparison fails.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The value KEY must hold now.") var expect: String?
        @Option(help: "The mod revision KEY must have now (0: KEY must not exist).") var expectRevision: UInt64?
        @Argument var key: String
        @Argument var new: String

        func validate() throws {
            guard (expect == nil) != (expectRevision == nil) else {
                throw ValidationError("give exactly one of --expect or --expect-revision")
            }
        }

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_KvCasRequest.with {
                    $0.key = key
                    $0.newValue = Data(new.utf8)
                    if let expect { $0.expectedValue = Data(expect.utf8) }
                    if let expectRevision { $0.expectedModRevision = expectRevision }
                }
                let response = try await connection.withClient { try await Specola_V1_KV.Client(wrapping: $0).compareAndSwap(request) }
                if connection.json { try JSONOutput.print(response) }
                guard response.succeeded else {
                    let current = response.found ? "'\(KVCommand.text(response.kv.value))' at revision \(response.kv.modRevision)" : "absent"
                    throw CLIError("comparison failed; '\(key)' is \(current)", exitCode: 6)
                }
                if !connection.json { print("OK revision \(response.revision)") }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List keys under PREFIX.")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Serve from this replica without a linearizable read barrier.") var stale = false
        @Option(help: "At most this many keys (0 = all).") var limit: UInt32 = 0
        @Argument var prefix: String = ""

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_KvListRequest.with { $0.prefix = prefix; $0.stale = stale; $0.limit = limit }
                let response = try await connection.withClient { try await Specola_V1_KV.Client(wrapping: $0).list(request) }
                if connection.json { return try JSONOutput.print(response) }
                var table = Table("KEY", "VALUE", "REVISION", "VERSION")
                for entry in response.kvs {
                    table.add(entry.key, KVCommand.text(entry.value), "\(entry.modRevision)", "\(entry.version)")
                }
                print(table.rendered)
            }
        }
    }
}
