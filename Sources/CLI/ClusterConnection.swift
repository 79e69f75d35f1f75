import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import SwiftProtobuf

/// Connection flags shared by every command that talks to the cluster, with
/// Nomad-style environment fallbacks.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Coordinator address HOST:PORT (env SPECOLA_ADDR).")
    var addr: String?

    @Option(help: "CA certificate PEM (env SPECOLA_CACERT).")
    var cacert: String?

    @Option(name: .customLong("client-cert"), help: "Client certificate PEM (env SPECOLA_CLIENT_CERT).")
    var clientCert: String?

    @Option(name: .customLong("client-key"), help: "Client private key PEM (env SPECOLA_CLIENT_KEY).")
    var clientKey: String?

    @Flag(help: "Print machine-readable JSON instead of tables.")
    var json = false

    func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (HostPort, TLSFiles) {
        let addressText = addr ?? environment["SPECOLA_ADDR"] ?? "127.0.0.1:7450"
        guard let endpoint = HostPort(parsing: addressText, defaultPort: 7450) else {
            throw CLIError("'\(addressText)' is not a coordinator address; use HOST:PORT, e.g. --addr 127.0.0.11:7450")
        }
        func pick(_ flag: String?, _ env: String, _ what: String) throws -> String {
            if let value = flag ?? environment[env], !value.isEmpty { return value }
            throw CLIError("no \(what) given; pass --\(what) or set \(env) (`specola dev` prints the export lines)")
        }
        let tls = TLSFiles(
            ca: try pick(cacert, "SPECOLA_CACERT", "cacert"),
            cert: try pick(clientCert, "SPECOLA_CLIENT_CERT", "client-cert"),
            key: try pick(clientKey, "SPECOLA_CLIENT_KEY", "client-key"))
        try tls.validate()
        return (endpoint, tls)
    }

    /// Runs `body` against the coordinator's API, turning transport errors into advice.
    func withAPI<T: Sendable>(
        _ body: @escaping @Sendable (Specola_V1_ClusterAPI.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClient { try await body(Specola_V1_ClusterAPI.Client(wrapping: $0)) }
    }

    func withJobs<T: Sendable>(
        _ body: @escaping @Sendable (Specola_V1_Jobs.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClient { try await body(Specola_V1_Jobs.Client(wrapping: $0)) }
    }

    /// Runs `body` against the given replica; a follower's refusal that names the
    /// leader is followed once, so any replica's address works.
    func withClient<T: Sendable>(
        _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        let (first, tls) = try resolved()
        var endpoint = first
        for attempt in 0..<3 {
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: endpoint.host, port: endpoint.port),
                transportSecurity: tls.clientSecurity)
            do {
                return try await withGRPCClient(transport: transport, handleClient: body)
            } catch let error as RPCError {
                if error.code == .unavailable, attempt < 2,
                    let leader = error.metadata[stringValues: "specola-leader"].compactMap({ HostPort(parsing: $0) }).first
                {
                    endpoint = leader
                    continue
                }
                throw CLIError.from(error, endpoint: endpoint)
            }
        }
        throw CLIError("no leader answered; check `specola members` and the replicas' logs", exitCode: 3)
    }
}

/// A failure the CLI reports in one line, with the exit code scripts can test.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32

    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    var description: String { message }

    static func from(_ error: RPCError, endpoint: HostPort) -> CLIError {
        switch error.code {
        case .unavailable, .deadlineExceeded:
            return CLIError("cannot reach the coordinator at \(endpoint): \(error.message); check that it runs and that --addr/SPECOLA_ADDR is right", exitCode: 3)
        case .notFound:
            return CLIError(error.message, exitCode: 4)
        case .permissionDenied, .unauthenticated:
            return CLIError("refused by the coordinator at \(endpoint): \(error.message)", exitCode: 5)
        case .invalidArgument:
            return CLIError(error.message, exitCode: 2)
        case .failedPrecondition:
            return CLIError(error.message, exitCode: 8)
        default:
            return CLIError("coordinator at \(endpoint) failed: \(error.code): \(error.message)")
        }
    }
}

enum JSONOutput {
    static var options: JSONEncodingOptions {
        var options = JSONEncodingOptions()
        options.useDeterministicOrdering = true
        return options
    }

    static func print(_ message: some SwiftProtobuf.Message) throws {
        Swift.print(try message.jsonString(options: options))
    }
}

/// Runs a command body and maps failures to a message on stderr and an exit code.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        FileHandle.standardError.write(Data("specola: \(error.message)\n".utf8))
        throw ExitCode(error.exitCode)
    } catch let error as TLSFileError {
        FileHandle.standardError.write(Data("specola: \(error)\n".utf8))
        throw ExitCode(2)
    }
}
