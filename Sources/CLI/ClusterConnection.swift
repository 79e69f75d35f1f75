import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaOIDC
import SpecolaProtocol
import SwiftProtobuf
import Synchronization

/// Connection flags shared by every command that talks to the cluster, with
/// Nomad-style environment fallbacks.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Coordinator replica addresses HOST:PORT, comma-separated; any replica will do (env SPECOLA_ADDR).")
    var addr: String?

    @Option(help: "CA certificate PEM (env SPECOLA_CACERT).")
    var cacert: String?

    @Option(name: .customLong("client-cert"), help: "Client certificate PEM (env SPECOLA_CLIENT_CERT).")
    var clientCert: String?

    @Option(name: .customLong("client-key"), help: "Client private key PEM (env SPECOLA_CLIENT_KEY).")
    var clientKey: String?

    @Flag(help: "Print machine-readable JSON instead of tables.")
    var json = false

    /// The addresses and the credential: a client certificate when one is configured (flag or
    /// environment), else the token `specola login` stored (refreshed when it expired).
    func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> ([HostPort], Credential) {
        let addressText = addr ?? environment["SPECOLA_ADDR"] ?? "127.0.0.1:7450"
        let endpoints = try addressText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map { text in
                guard let endpoint = HostPort(parsing: text, defaultPort: 7450) else {
                    throw CLIError("'\(text)' is not a coordinator address; use HOST:PORT, several comma-separated, e.g. --addr 127.0.0.11:7450,127.0.0.12:7450")
                }
                return endpoint
            }
        guard !endpoints.isEmpty else { throw CLIError("no coordinator address given; pass --addr HOST:PORT or set SPECOLA_ADDR") }
        func given(_ flag: String?, _ env: String) -> String? {
            if let value = flag ?? environment[env], !value.isEmpty { return value }
            return nil
        }
        func pick(_ flag: String?, _ env: String, _ what: String) throws -> String {
            if let value = given(flag, env) { return value }
            throw CLIError("no \(what) given; pass --\(what) or set \(env) (`specola dev` prints the export lines)")
        }
        let ca = try pick(cacert, "SPECOLA_CACERT", "cacert")
        if given(clientCert, "SPECOLA_CLIENT_CERT") == nil, let token = try await SignIn.current(environment: environment) {
            return (endpoints, .token(ca: ca, bearer: token.accessToken))
        }
        if given(clientCert, "SPECOLA_CLIENT_CERT") == nil {
            throw CLIError("no client certificate given and not signed in; run `specola login`, or pass --client-cert and --client-key (or set SPECOLA_CLIENT_CERT and SPECOLA_CLIENT_KEY; `specola dev` prints the export lines)")
        }
        let tls = TLSFiles(
            ca: ca,
            cert: try pick(clientCert, "SPECOLA_CLIENT_CERT", "client-cert"),
            key: try pick(clientKey, "SPECOLA_CLIENT_KEY", "client-key"))
        try tls.validate()
        return (endpoints, .certificate(tls))
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

    /// Runs `body` against the group: a follower's refusal that names the leader is followed,
    /// and a replica that cannot be reached is skipped for the next address given.
    func withClient<T: Sendable>(
        _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        let (given, credential) = try await resolved()
        var untried = given
        var endpoint = untried.removeFirst()
        var lastError: RPCError?
        var overloadRetries = 0
        var attempt = 0
        while attempt < given.count + 2 {
            attempt += 1
            let refused = Mutex<ServerRefusal?>(nil)
            let onRefusal: @Sendable (ServerRefusal) -> Void = { refusal in refused.withLock { $0 = refusal } }
            let security: HTTP2ClientTransport.Posix.TransportSecurity
            var interceptors: [any ClientInterceptor] = []
            switch credential {
            case .certificate(let tls):
                security = tls.clientSecurity(serverHost: endpoint.host, onRefusal: onRefusal)
            case .token(let ca, let bearer):
                security = TLSFiles.serverAuthenticatedClientSecurity(ca: ca, serverHost: endpoint.host, onRefusal: onRefusal)
                interceptors = [BearerTokenSender(token: bearer)]
            }
            let transport = try HTTP2ClientTransport.Posix(target: Self.target(endpoint), transportSecurity: security)
            do {
                return try await withGRPCClient(transport: transport, interceptors: interceptors, handleClient: body)
            } catch let error as RPCError {
                // The handshake error only says "certificate verify failed"; say what was wrong with it.
                if let refusal = refused.withLock({ $0 }) {
                    throw CLIError("\(refusal); nothing was sent", exitCode: 5)
                }
                if !credential.isCertificate, String(describing: error.cause).contains("CERTIFICATE_REQUIRED") {
                    throw CLIError("the coordinator at \(endpoint) demands a client certificate on this port; signed in with `specola login`, use its token listener instead (oidc.listen, port 7451 by default) in --addr/SPECOLA_ADDR", exitCode: 5)
                }
                // Another replica may get the request only when this one surely did not execute it:
                // it was never connected to, or it said so. A connection that broke mid-request
                // leaves the outcome unknown, and a write must not run twice.
                let notExecuted = error.metadata[stringValues: "specola-not-executed"].contains { _ in true }
                    || error.message.hasPrefix("Could not establish a connection")
                // A leader refusing for now says how long to wait; it executed nothing.
                if error.code == .resourceExhausted, notExecuted, overloadRetries < Self.maxOverloadRetries {
                    overloadRetries += 1
                    attempt -= 1
                    let pushback = error.metadata[stringValues: "grpc-retry-pushback-ms"].compactMap { Int($0) }.first ?? 200
                    try await Task.sleep(for: .milliseconds(min(max(pushback, 10), 5_000)))
                    continue
                }
                guard error.code == .unavailable, notExecuted else { throw CLIError.from(error, endpoint: endpoint) }
                lastError = error
                // The hint is the leader's cluster-plane address; a token client may follow it only
                // if it was given (token listeners are on other ports), else it tries the next one given.
                if let leader = error.metadata[stringValues: "specola-leader"].compactMap({ HostPort(parsing: $0) }).first,
                   leader != endpoint, credential.isCertificate || given.contains(leader) {
                    endpoint = leader
                    untried.removeAll { $0 == leader }
                } else if !untried.isEmpty {
                    endpoint = untried.removeFirst()
                } else {
                    break
                }
            }
        }
        if let lastError { throw CLIError.from(lastError, endpoint: endpoint, tried: given) }
        throw CLIError("no leader answered; check `specola members` and the replicas' logs", exitCode: 3)
    }

    /// Times a refusal for overload (RESOURCE_EXHAUSTED, not executed) is retried after its hint.
    static let maxOverloadRetries = 5

    /// An IP address is dialled as is; a host name is resolved.
    static func target(_ endpoint: HostPort) -> any ResolvableTarget {
        if endpoint.host.contains(":") { return .ipv6(host: endpoint.host, port: endpoint.port) }
        if endpoint.host.split(separator: ".").count == 4, endpoint.host.allSatisfy({ $0.isNumber || $0 == "." }) {
            return .ipv4(host: endpoint.host, port: endpoint.port)
        }
        return .dns(host: endpoint.host, port: endpoint.port)
    }
}

/// How the CLI proves who it is.
enum Credential: Sendable {
    /// Mutual TLS with a client certificate from the cluster CA.
    case certificate(TLSFiles)
    /// Server-authenticated TLS (the cluster CA checks the coordinator) and a bearer token.
    case token(ca: String, bearer: String)

    var isCertificate: Bool {
        if case .certificate = self { return true }
        return false
    }
}

/// Adds `authorization: Bearer TOKEN` to every call.
struct BearerTokenSender: ClientInterceptor {
    let token: String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
        return try await next(request, context)
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

    static func from(_ error: RPCError, endpoint: HostPort, tried: [HostPort] = []) -> CLIError {
        switch error.code {
        case .unavailable where tried.count > 1:
            return CLIError("no replica of \(tried.map(\.description).joined(separator: ",")) answered as leader (last, \(endpoint): \(error.message)); check that a majority runs (`specola members` against any of them) and that --addr/SPECOLA_ADDR lists them", exitCode: 3)
        case .unavailable, .deadlineExceeded:
            return CLIError("cannot reach the coordinator at \(endpoint): \(error.message); check that it runs and that --addr/SPECOLA_ADDR is right (several replicas may be given, comma-separated)", exitCode: 3)
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
