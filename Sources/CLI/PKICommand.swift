import Foundation
import ArgumentParser
import SpecolaProtocol

/// `specola pki`: create the cluster CA and issue role certificates.
public struct PKICommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Create the cluster CA and issue node, coordinator and user certificates.",
        subcommands: [InitCA.self, Issue.self, Revoke.self])

    public init() {}

    static func printPaths(_ paths: (certPath: String, keyPath: String), json: Bool) {
        if json {
            let object = ["cert": paths.certPath, "key": paths.keyPath]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(paths.certPath)
            print(paths.keyPath)
        }
    }
}

extension PKICommand {
    struct InitCA: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a new CA (ca.pem, ca-key.pem) in a directory.")

        @Option(help: "Directory for the CA files; created if missing.")
        var dir: String

        @Option(help: "CA common name.")
        var name: String = PKI.defaultCAName

        @Option(help: "Validity in days.")
        var days: Int = PKI.defaultCADays

        @Flag(help: "Print the written paths as JSON.")
        var json = false

        func run() throws {
            let paths = try PKI.initCA(directory: dir, commonName: name, validityDays: days)
            PKICommand.printPaths(paths, json: json)
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a certificate for role/name, signed by the CA in --dir.")

        @Option(help: "Directory holding the CA; the certificate and key are written there.")
        var dir: String

        @Option(help: "Role: \(CertificateRole.allCases.map(\.rawValue).joined(separator: ", ")).")
        var role: String

        @Option(help: "Name, e.g. the node's hostname ([a-z0-9][a-z0-9.-]{0,62}).")
        var name: String

        @Option(help: "Subject alternative name: an IP address or DNS name. Repeatable.")
        var san: [String] = []

        @Option(help: "Validity in days.")
        var days: Int = PKI.defaultLeafDays

        func validate() throws {
            guard CertificateRole(rawValue: role) != nil else {
                throw ValidationError(
                    "unknown role '\(role)'; use one of \(CertificateRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        @Flag(help: "Print the written paths as JSON.")
        var json = false

        func run() throws {
            let paths = try PKI.issue(
                directory: dir, role: CertificateRole(rawValue: role)!, name: name, sans: san, validityDays: days)
            PKICommand.printPaths(paths, json: json)
        }
    }
}
