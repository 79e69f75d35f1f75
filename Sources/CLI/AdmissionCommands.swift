import ArgumentParser
import Foundation
import SpecolaProtocol

/// `specola node accept NAME` and `specola node label NAME k=v k-`: an operator, not the agent,
/// lets a node in and says what its labels are.
enum NodeAdmissionCommand {
    /// `k=v` sets, `k-` removes.
    static func parse(labels: [String]) throws -> (set: [String: String], remove: [String]) {
        var set: [String: String] = [:]
        var remove: [String] = []
        for text in labels {
            if text.hasSuffix("-"), !text.contains("=") {
                remove.append(String(text.dropLast()))
            } else if let equals = text.firstIndex(of: "="), equals != text.startIndex {
                set[String(text[..<equals])] = String(text[text.index(after: equals)...])
            } else {
                throw ValidationError("'\(text)' is not a label: write KEY=VALUE to set it or KEY- to remove it (e.g. rack=r1 gpu-)")
            }
        }
        return (set, remove)
    }

    static func labelText(_ labels: [String: String]) -> String {
        labels.isEmpty ? "none" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "accept",
            abstract: "Let NAME join: its agent registered and waits (see `specola nodes`). Its labels are the operator's from now on.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Option(help: "A label KEY=VALUE to start with (repeatable); the agent's declared labels are not taken.")
        var label: [String] = []

        func run() async throws {
            let labels = try NodeAdmissionCommand.parse(labels: label)
            guard labels.remove.isEmpty else { throw ValidationError("--label takes KEY=VALUE only") }
            try await runReporting {
                let request = Specola_V1_AcceptNodeRequest.with { $0.name = name; $0.labels = labels.set }
                let node = try await connection.withAPI { try await $0.acceptNode(request) }
                if connection.json { return try JSONOutput.print(node) }
                print("node \(node.name) accepted; labels: \(NodeAdmissionCommand.labelText(node.facts.capacity.labels))")
            }
        }
    }

    struct Label: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "label", abstract: "Set (KEY=VALUE) or remove (KEY-) NAME's labels; the agent can no longer change them.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Argument(help: "KEY=VALUE or KEY-.") var labels: [String]

        func run() async throws {
            let change = try NodeAdmissionCommand.parse(labels: labels)
            try await runReporting {
                let request = Specola_V1_LabelNodeRequest.with { $0.name = name; $0.set = change.set; $0.remove = change.remove }
                let node = try await connection.withAPI { try await $0.labelNode(request) }
                if connection.json { return try JSONOutput.print(node) }
                print("node \(node.name) labels: \(NodeAdmissionCommand.labelText(node.facts.capacity.labels))")
            }
        }
    }
}

extension PKICommand {
    /// `specola pki revoke SERIAL|ROLE/NAME`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a certificate (by serial) or an identity (ROLE/NAME) on the cluster's deny list; open calls end at once.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "A serial as `openssl x509 -noout -serial` prints it, or ROLE/NAME such as node/node1 (every certificate of it).")
        var target: String
        @Option(help: "Why, for the audit trail and the refusal message.")
        var reason = ""

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_RevokeRequest.with { $0.target = target; $0.reason = reason }
                let response = try await connection.withAPI { try await $0.revoke(request) }
                if connection.json { return try JSONOutput.print(response) }
                print("revoked \(target); the deny list holds \(response.revoked.count) entr\(response.revoked.count == 1 ? "y" : "ies")")
            }
        }
    }
}
