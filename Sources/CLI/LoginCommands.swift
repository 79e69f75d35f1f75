import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SpecolaOIDC
import SpecolaProtocol

/// `specola login`: a token from the site's OIDC provider, kept 0600 for later commands.
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign in with the site's OIDC provider and keep the token for later commands.",
        discussion: """
            Uses the device authorization grant when the provider offers it, otherwise the \
            authorization code grant with PKCE: it prints a URL to open and waits for the provider to \
            redirect the browser to a listener on 127.0.0.1. --token-stdin stores a token a script \
            already has; --username with --password-stdin uses the password grant (service accounts, \
            test providers; many sites disable it).

            The token is kept in $SPECOLA_TOKEN_FILE, else $XDG_CONFIG_HOME/specola/token.json, else \
            ~/.config/specola/token.json (mode 0600), and refreshed with its refresh token when it \
            expires. Commands send it as `authorization: Bearer` only when no client certificate is \
            configured: a certificate (--client-cert or SPECOLA_CLIENT_CERT) wins over a stored token. \
            The cluster CA (--cacert or SPECOLA_CACERT) is still needed to check the coordinator, and \
            --addr/SPECOLA_ADDR must name the coordinators' token listeners (oidc.listen, port 7451 by \
            default), not their certificate port.
            """)

    @Option(help: "The provider's issuer URL (env SPECOLA_OIDC_ISSUER).")
    var issuer: String?

    @Option(name: .customLong("client-id"), help: "The OIDC client registered for the CLI (env SPECOLA_OIDC_CLIENT_ID; default specola).")
    var clientID: String?

    @Option(help: "Scopes to ask for.")
    var scope = "openid profile groups"

    @Option(name: .customLong("oidc-cacert"), help: "PEM CA bundle for an https provider with a private CA (env SPECOLA_OIDC_CACERT).")
    var oidcCACert: String?

    @Flag(name: .customLong("token-stdin"), help: "Read an access token from standard input and store it.")
    var tokenStdin = false

    @Option(help: "Password grant: the user name (the password is read with --password-stdin).")
    var username: String?

    @Flag(name: .customLong("password-stdin"), help: "Password grant: read the password from standard input.")
    var passwordStdin = false

    @Option(name: .customLong("redirect-port"), help: "Authorization code grant: the loopback port the provider redirects to (0 picks one; use the port registered with the provider).")
    var redirectPort = 0

    func run() async throws {
        try await runReporting {
            let environment = ProcessInfo.processInfo.environment
            let store = TokenStore.standard()
            guard let issuer = issuer ?? environment["SPECOLA_OIDC_ISSUER"], !issuer.isEmpty else {
                throw CLIError("no provider given; pass --issuer URL or set SPECOLA_OIDC_ISSUER (the issuer in the coordinators' oidc: section)", exitCode: 2)
            }
            let clientID = clientID ?? environment["SPECOLA_OIDC_CLIENT_ID"] ?? "specola"
            let caFile = oidcCACert ?? environment["SPECOLA_OIDC_CACERT"]
            let client = try OIDCClient(issuer: issuer, clientID: clientID, scope: scope, caFile: caFile)
            let token: StoredToken
            do {
                if tokenStdin {
                    guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else {
                        throw CLIError("--token-stdin: standard input held no token", exitCode: 2)
                    }
                    token = StoredToken(
                        issuer: issuer, clientID: clientID, tokenEndpoint: nil, accessToken: line, refreshToken: nil,
                        expiresAt: StoredToken.expiry(ofJWT: line), caFile: caFile)
                } else if let username {
                    guard passwordStdin, let password = readLine(strippingNewline: true), !password.isEmpty else {
                        throw CLIError("--username needs --password-stdin with the password on standard input", exitCode: 2)
                    }
                    token = try await client.passwordGrant(username: username, password: password, discovery: try await client.discover())
                } else {
                    let discovery = try await client.discover()
                    if discovery.deviceAuthorizationEndpoint != nil {
                        token = try await client.deviceGrant(discovery: discovery) { uri, complete, code in
                            print("To sign in, open \(complete ?? uri)")
                            print("and enter the code \(code)")
                            fflush(nil)
                        }
                    } else {
                        token = try await Self.authorizationCode(client: client, discovery: discovery, port: redirectPort)
                    }
                }
            } catch let error as OIDCError {
                throw CLIError("sign-in failed: \(error.message)", exitCode: error.kind == .providerUnreachable ? 3 : 5)
            }
            do {
                try store.save(token)
            } catch {
                throw CLIError("\(error)", exitCode: 1)
            }
            let expiry = token.expiresAt.map { " until \(Date(timeIntervalSince1970: $0).formatted(.iso8601))" } ?? ""
            print("signed in at \(issuer)\(expiry); token kept in \(store.path)")
        }
    }

    /// RFC 8252 native-app flow: a listener on 127.0.0.1 receives the provider's redirect.
    static func authorizationCode(client: OIDCClient, discovery: OIDCDiscovery, port: Int) async throws -> StoredToken {
        let (verifier, challenge) = OIDCClient.pkce()
        let state = OIDCClient.randomState()
        let listener = try await LoopbackRedirect.start(port: port)
        defer { listener.close() }
        let redirectURI = "http://127.0.0.1:\(listener.port)/callback"
        let url = try client.authorizationURL(discovery: discovery, redirectURI: redirectURI, challenge: challenge, state: state)
        print("Open this URL in a browser to sign in (waiting for the redirect to \(redirectURI)):")
        print(url)
        fflush(nil)
        let query = try await listener.waitForQuery(timeout: .seconds(300))
        guard query["state"] == state else {
            throw CLIError("the redirect carried the wrong state; someone else's sign-in reached this listener. Run `specola login` again", exitCode: 5)
        }
        if let error = query["error"] {
            throw CLIError("the provider refused the sign-in: \(error) \(query["error_description"] ?? "")", exitCode: 5)
        }
        guard let code = query["code"] else { throw CLIError("the redirect carried no authorization code", exitCode: 5) }
        return try await client.authorizationCodeGrant(code: code, redirectURI: redirectURI, verifier: verifier, discovery: discovery)
    }
}

/// `specola logout`: forgets the stored token.
struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout",
        abstract: "Remove the token `specola login` stored (the provider's session is not ended).")

    func run() async throws {
        try await runReporting {
            let store = TokenStore.standard()
            do {
                if try store.remove() { print("signed out; removed \(store.path)") } else { print("not signed in (no \(store.path))") }
            } catch {
                throw CLIError("cannot remove \(store.path): \(error)")
            }
        }
    }
}

/// `specola whoami`: who the coordinator takes this caller to be.
struct WhoAmICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami",
        abstract: "Show who the coordinator takes you to be (certificate or token, name, groups) and your roles and projects.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runReporting {
            let answer = try await connection.withAccess { try await $0.whoAmI(.init()) }
            if connection.json { return try JSONOutput.print(answer) }
            print("\(answer.kind)/\(answer.name)")
            print("proof:    \(answer.proof == "token" ? "token from \(answer.issuer)" : answer.proof)")
            print("groups:   \(answer.groups.isEmpty ? "-" : answer.groups.joined(separator: ", "))")
            print("roles:    \(answer.roles.isEmpty ? "none" : answer.roles.joined(separator: ", "))")
            print("projects: \(answer.projects.isEmpty ? "-" : answer.projects.joined(separator: ", "))")
        }
    }
}

/// A one-shot HTTP listener on 127.0.0.1 for the authorization code redirect.
final class LoopbackRedirect: Sendable {
    let channel: any Channel
    let port: Int
    let query: EventLoopPromise<[String: String]>

    private init(channel: any Channel, port: Int, query: EventLoopPromise<[String: String]>) {
        self.channel = channel
        self.port = port
        self.query = query
    }

    static func start(port: Int) async throws -> LoopbackRedirect {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [String: String].self)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(RedirectHandler(promise: promise))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return LoopbackRedirect(channel: channel, port: channel.localAddress?.port ?? port, query: promise)
    }

    func waitForQuery(timeout: Duration) async throws -> [String: String] {
        let scheduled = channel.eventLoop.scheduleTask(in: .seconds(timeout.components.seconds)) {
            self.query.fail(CLIError("no redirect from the provider within \(timeout); run `specola login` again", exitCode: 5))
        }
        defer { scheduled.cancel() }
        return try await query.futureResult.get()
    }

    func close() { channel.close(promise: nil) }
}

private final class RedirectHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let promise: EventLoopPromise<[String: String]>

    init(promise: EventLoopPromise<[String: String]>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let items = URLComponents(string: head.uri)?.queryItems ?? []
        let isCallback = head.uri.hasPrefix("/callback")
        let text = isCallback ? "Signed in to Specola; you can close this page.\n" : "Not found\n"
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(text.utf8.count)"), ("Connection", "close")])
        headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: isCallback ? .ok : .notFound, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        if isCallback {
            promise.succeed(Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first }))
        }
    }
}

/// The stored sign-in, refreshed when it expired.
enum SignIn {
    static func current(environment: [String: String]) async throws -> StoredToken? {
        let store = TokenStore.standard(environment: environment)
        let token: StoredToken
        do {
            guard let loaded = try store.load() else { return nil }
            token = loaded
        } catch {
            throw CLIError("\(error)", exitCode: 2)
        }
        guard token.isExpired() else { return token }
        guard token.refreshToken != nil else {
            throw CLIError("your sign-in at \(token.issuer) expired and cannot be refreshed; run `specola login` (or use a client certificate)", exitCode: 5)
        }
        do {
            let client = try OIDCClient(issuer: token.issuer, clientID: token.clientID, caFile: token.caFile)
            let refreshed = try await client.refresh(token)
            try store.save(refreshed)
            return refreshed
        } catch let error as OIDCError {
            throw CLIError("your sign-in at \(token.issuer) expired and the refresh failed: \(error.message); run `specola login`",
                           exitCode: error.kind == .providerUnreachable ? 3 : 5)
        }
    }
}
