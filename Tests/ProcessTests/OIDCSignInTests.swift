import CooperativePoolWatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaOIDC
import SpecolaProtocol
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// LemonLDAP::NG 2.16 (Debian) as the tests' OIDC provider, started from Tests/Fixtures/oidc.
/// Its demo users have password = username; dwho is in groups users and timelords.
final class LemonLDAP: @unchecked Sendable {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/oidc").path
    let host: String
    let port: Int
    let state: String
    /// The port of the CLI's authorization code redirect, registered with the provider.
    let redirectPort = freePort(host: "127.0.0.1")
    private(set) var process: ChildProcess?

    var issuer: String { "http://\(host):\(port)" }

    init(host: String, state: String) {
        self.host = host
        port = freePort(host: host)
        self.state = state
    }

    /// Starts (or restarts, for a key rotation) with signing key `kid`.
    func start(kid: String) async throws {
        try await stop()
        let process = try ChildProcess(
            name: "lemonldap-\(host)-\(kid)", executable: "/bin/sh",
            arguments: [Self.fixtures + "/start-lemonldap.sh", state, host, "\(port)", kid, "300", "\(redirectPort)"], logDirectory: state)
        self.process = process
        try await waitUntil("LemonLDAP::NG to serve its discovery document on \(issuer) (log: \(process.logPath))", timeout: .seconds(60)) {
            guard process.isRunning else { throw ProcessDied(log: process.log) }
            let probe = try await run("/usr/bin/curl", ["-sf", issuer + "/.well-known/openid-configuration"])
            return probe.status == 0 && probe.stdout.contains("\"issuer\"")
        }
    }

    func stop() async throws {
        try await process?.stop()
        process = nil
    }

    /// An access token by the password grant, fetched by curl (clients with a secret included).
    func token(user: String, client: String = "specola", secret: String? = nil) async throws -> String {
        var arguments = ["-sf", "-X", "POST", issuer + "/oauth2/token", "-d", "grant_type=password", "-d", "client_id=\(client)",
                         "-d", "username=\(user)", "-d", "password=\(user)", "-d", "scope=openid profile groups"]
        if let secret { arguments += ["-d", "client_secret=\(secret)"] }
        let result = try await run("/usr/bin/curl", arguments)
        guard result.status == 0, let body = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
            let token = body["access_token"] as? String
        else { throw CLIFailed(result: result) }
        return token
    }
}

/// Sign-in with a real OIDC provider against a real coordinator: `specola login`, `specola whoami`,
/// and each way a token is refused. Addresses 127.0.2.50-52 are this suite's own.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct OIDCSignInTests {
    static let coordinatorHost = "127.0.2.50"

    /// A coordinator trusting `provider` for audience specola-cluster, with 1 s skew and key refresh;
    /// its bearer-token listener is on `tokenPort`.
    func cluster(trusting provider: LemonLDAP) throws -> LocalCluster {
        try LocalCluster(coordinatorHost: Self.coordinatorHost, extraConfig: """
            oidc: {listen: "\(tokenListener)", issuer: "\(provider.issuer)", audience: specola-cluster, clockSkew: 1, keyRefreshInterval: 1}
            """, access: "{bootstrapAdmins: [admin], groupRoles: {timelords: operator}}")
    }

    let tokenListener = HostPort(host: OIDCSignInTests.coordinatorHost, port: freePort(host: OIDCSignInTests.coordinatorHost))

    /// A provider on 127.0.2.51 (signing key k1) and a coordinator trusting it, both started; stopped
    /// and removed after `body`, whether it threw or not.
    func withSignInCluster(_ body: (LemonLDAP, LocalCluster) async throws -> Void) async throws {
        let provider = LemonLDAP(host: "127.0.2.51", state: try TempDir("specola-oidc").path)
        let cluster = try cluster(trusting: provider)
        try await cluster.withCleanup { try await withProviders([provider]) {
            try await provider.start(kid: "k1")
            try await cluster.startCoordinator()
            try await body(provider, cluster)
        } }
    }

    /// Runs `body`, then stops the providers (by PID) and removes their state, whether `body` threw or not.
    func withProviders<T>(_ providers: [LemonLDAP], _ body: () async throws -> T) async throws -> T {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        for provider in providers {
            try? await provider.stop()
            try? FileManager.default.removeItem(atPath: provider.state)
        }
        return try result.get()
    }

    /// The CLI environment without a client certificate, with its own token file.
    func tokenEnvironment(_ cluster: LocalCluster) -> [String: String] {
        var env = cluster.cliEnvironment
        env["SPECOLA_CLIENT_CERT"] = ""
        env["SPECOLA_CLIENT_KEY"] = ""
        env["SPECOLA_TOKEN_FILE"] = cluster.dir.file("token.json")
        env["SPECOLA_ADDR"] = tokenListener.description
        return env
    }

    /// `specola ARGS` with `input` on standard input (through the environment, not the command line).
    func cli(_ arguments: [String], input: String, environment: [String: String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        var env = environment
        env["SPECOLA_TEST_INPUT"] = input
        env["SPECOLA_BIN"] = BuiltProducts.path("specola")
        let quoted = arguments.map { "'\($0)'" }.joined(separator: " ")
        return try await run("/bin/sh", ["-c", "printf '%s\\n' \"$SPECOLA_TEST_INPUT\" | \"$SPECOLA_BIN\" \(quoted)"], environment: env)
    }

    /// WhoAmI over server-authenticated TLS with `token` as the bearer, straight to the coordinator.
    func whoAmI(_ cluster: LocalCluster, token: String) async throws -> Specola_V1_WhoAmIResponse {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: tokenListener.host, port: tokenListener.port),
            transportSecurity: TLSFiles.serverAuthenticatedClientSecurity(ca: cluster.admin.ca, serverHost: tokenListener.host))
        return try await withGRPCClient(transport: transport) { client in
            try await Specola_V1_Access.Client(wrapping: client).whoAmI(.init(), metadata: ["authorization": "Bearer \(token)"])
        }
    }

    func expectRefused(_ cluster: LocalCluster, token: String, code: RPCError.Code = .unauthenticated, saying text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            let answer = try await whoAmI(cluster, token: token)
            Issue.record("expected a refusal, got \(answer)", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func signInShowsUserAndGroupsAndCertificatesWin() async throws {
        try await withSignInCluster { provider, cluster in
            let env = tokenEnvironment(cluster)

            let notSignedIn = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(notSignedIn.status != 0)
            #expect(notSignedIn.stderr.contains("not signed in; run `specola login`"), "\(notSignedIn.stderr)")

            let login = try await cli(["login", "--issuer", provider.issuer, "--username", "dwho", "--password-stdin"], input: "dwho", environment: env)
            #expect(login.status == 0, "\(login.stderr)")
            #expect(login.stdout.contains("signed in at \(provider.issuer)"))
            let mode = try FileManager.default.attributesOfItem(atPath: cluster.dir.file("token.json"))[.posixPermissions] as? Int
            #expect(mode == 0o600)

            let whoami = try await run(BuiltProducts.path("specola"), ["whoami", "--json"], environment: env)
            #expect(whoami.status == 0, "\(whoami.stderr)")
            let answer = try Specola_V1_WhoAmIResponse(jsonString: whoami.stdout)
            #expect(answer.kind == "user")
            #expect(answer.name == "dwho")
            #expect(Set(answer.groups) == ["users", "timelords"])
            #expect(answer.proof == "token")
            #expect(answer.issuer == provider.issuer)
            // The token's group maps to a role (access.groupRoles), and authorization follows it.
            #expect(answer.roles == ["operator"], "\(answer.roles)")
            let adminOnly = try await run(BuiltProducts.path("specola"), ["project", "create", "survey"], environment: env)
            #expect(adminOnly.status != 0)
            #expect(adminOnly.stderr.contains("user/dwho may not") && adminOnly.stderr.contains("needs admin")
                    && adminOnly.stderr.contains("holds operator"), "\(adminOnly.stderr)")

            // A configured client certificate wins over the stored token.
            var both = env
            both["SPECOLA_CLIENT_CERT"] = cluster.admin.cert
            both["SPECOLA_CLIENT_KEY"] = cluster.admin.key
            both["SPECOLA_ADDR"] = cluster.coordinator.description
            let byCertificate = try Specola_V1_WhoAmIResponse(jsonString: try await run(BuiltProducts.path("specola"), ["whoami", "--json"], environment: both).stdout)
            #expect(byCertificate.name == "admin")
            #expect(byCertificate.proof == "certificate")

            // On the token listener (TLS asks for no certificate) a call without a token is refused by the coordinator.
            let anonymous = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: tokenListener.host, port: tokenListener.port),
                transportSecurity: TLSFiles.serverAuthenticatedClientSecurity(ca: cluster.admin.ca, serverHost: tokenListener.host))
            do {
                _ = try await withGRPCClient(transport: anonymous) { client in
                    try await Specola_V1_ClusterAPI.Client(wrapping: client).status(.init())
                }
                Issue.record("a call without certificate or token must be refused")
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated)
                #expect(error.message.contains("no client certificate and no bearer token"), "\(error.message)")
            }

            // The cluster plane's port still demands a certificate in the handshake, token or not.
            let plane = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: cluster.coordinator.host, port: cluster.coordinator.port),
                transportSecurity: TLSFiles.serverAuthenticatedClientSecurity(ca: cluster.admin.ca, serverHost: cluster.coordinator.host))
            do {
                _ = try await withGRPCClient(transport: plane) { client in
                    try await Specola_V1_Access.Client(wrapping: client).whoAmI(.init(), metadata: ["authorization": "Bearer \(try TokenStore(path: cluster.dir.file("token.json")).load()!.accessToken)"])
                }
                Issue.record("the cluster plane's port must demand a client certificate")
            } catch let error as RPCError {
                #expect(String(describing: error.cause).contains("CERTIFICATE_REQUIRED"), "\(error)")
            }

            // The CLI says which port a token user needs.
            var wrongPort = env
            wrongPort["SPECOLA_ADDR"] = cluster.coordinator.description
            let refusedPort = try await run(BuiltProducts.path("specola"), ["whoami"], environment: wrongPort)
            #expect(refusedPort.status == 5)
            #expect(refusedPort.stderr.contains("use its token listener"), "\(refusedPort.stderr)")

            // The token never reaches the coordinator's log.
            let token = try TokenStore(path: cluster.dir.file("token.json")).load()!.accessToken
            #expect(!cluster.coordinatorProcess!.log.contains(token))

            let logout = try await run(BuiltProducts.path("specola"), ["logout"], environment: env)
            #expect(logout.status == 0)
            #expect(!FileManager.default.fileExists(atPath: cluster.dir.file("token.json")))
            let after = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(after.stderr.contains("not signed in"))
        }
    }

    @Test func signInWithAuthorizationCodeAndPKCE() async throws {
        try await withSignInCluster { provider, cluster in
            let env = tokenEnvironment(cluster)
            // LemonLDAP 2.16 offers no device grant, so login prints the authorization URL and listens on 127.0.0.1.
            let login = try ChildProcess(
                name: "login", executable: BuiltProducts.path("specola"),
                arguments: ["login", "--issuer", provider.issuer, "--redirect-port", "\(provider.redirectPort)"],
                logDirectory: cluster.dir.path, environment: env)
            defer { login.signal(SIGKILL) }
            let url = try await waitUntilValue("specola login to print the authorization URL (log: \(login.logPath))") {
                login.log.split(separator: "\n").first { $0.hasPrefix(provider.issuer + "/oauth2/authorize?") }.map(String.init)
            }
            #expect(url.contains("code_challenge_method=S256"))
            // The browser: LemonLDAP's login form, then its redirect to the CLI's listener.
            let browser = try await run("/bin/sh", ["-c", """
                jar=$(mktemp); form=$(curl -sf -c "$jar" -b "$jar" "$AUTH_URL") || exit 1
                url=$(printf '%s' "$form" | grep -o 'name="url" value="[^"]*"' | sed 's/.*value="//;s/"$//')
                token=$(printf '%s' "$form" | grep -o 'name="token" value="[^"]*"' | sed 's/.*value="//;s/"$//')
                curl -sf -o /dev/null -L -c "$jar" -b "$jar" -d user=dwho -d password=dwho --data-urlencode "url=$url" \\
                    --data-urlencode "token=$token" "$AUTH_URL"; status=$?; rm -f "$jar"; exit $status
                """], environment: ["AUTH_URL": url])
            #expect(browser.status == 0, "\(browser.stderr)")
            #expect(try await login.waitForExit() == 0, "\(login.log)")
            #expect(login.log.contains("signed in at \(provider.issuer)"))
            let whoami = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(whoami.stdout.contains("user/dwho"), "\(whoami.stderr)")
            #expect(whoami.stdout.contains("timelords"))
        }
    }

    @Test func anExpiredTokenIsRefreshedByTheCLIAndRefusedByTheCoordinator() async throws {
        try await withSignInCluster { provider, cluster in
            // Client "short" issues 2-second tokens.
            let token = try await provider.token(user: "msmith", client: "short")
            let exp = try #require(StoredToken.expiry(ofJWT: token))
            #expect(try await whoAmI(cluster, token: token).name == "msmith")
            // Past exp plus the coordinator's 1 s skew: refused, although it was accepted (and cached) before.
            try await waitUntil("the token's expiry plus skew to pass", timeout: .seconds(10)) { Date().timeIntervalSince1970 > exp + 1.5 }
            await expectRefused(cluster, token: token, saying: "the token expired at")

            // The CLI refreshes an expired token with its refresh token before sending it.
            let env = tokenEnvironment(cluster)
            let login = try await cli(["login", "--issuer", provider.issuer, "--client-id", "short", "--username", "msmith", "--password-stdin"],
                                      input: "msmith", environment: env)
            #expect(login.status == 0, "\(login.stderr)")
            let store = TokenStore(path: cluster.dir.file("token.json"))
            let before = try #require(try store.load())
            #expect(before.refreshToken != nil)
            let whoami = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(whoami.status == 0, "\(whoami.stderr)")
            #expect(whoami.stdout.contains("user/msmith"))
            let after = try #require(try store.load())
            #expect(after.accessToken != before.accessToken, "the 2 s token must have been refreshed (30 s margin)")

            // A stored token that expired without a refresh token: the CLI says to sign in again.
            let scripted = try await cli(["login", "--issuer", provider.issuer, "--token-stdin"], input: token, environment: env)
            #expect(scripted.status == 0, "\(scripted.stderr)")
            let stale = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(stale.status != 0)
            #expect(stale.stderr.contains("expired and cannot be refreshed; run `specola login`"), "\(stale.stderr)")
        }
    }

    /// A long poll opened with a token ends with UNAUTHENTICATED when the token expires (client
    /// "short" issues 2-second tokens), not when the poll would have answered (30 s).
    @Test func aLongPollIsCutWhenItsTokenExpires() async throws {
        try await withSignInCluster { provider, cluster in
            try cluster.writeAgentConfig("node1", address: "127.0.2.53", extra: "bmc: {mode: none}\nlibvirt: {uri: \"\"}\n" + TestPodman.agentConfig)
            try cluster.startAgent("node1")
            try await waitUntil("the agent to report", timeout: .seconds(60)) {
                try await cluster.nodes().contains { $0.reportsApplied > 0 && $0.facts.hasCapacity }
            }
            // A finished job: nothing changes it any more, so a poll on it waits its whole time.
            let file = try JobTests.spec(cluster, "quick.yaml", """
                apiVersion: specola/v1
                kind: Job
                metadata: {name: quick, owner: admin, project: ops}
                task: {name: t, driver: exec, command: /bin/true, resources: {cpu: 0.1, memory: 16MiB}}
                """)
            let submitted = try await cluster.cli(["job", "run", file])
            #expect(submitted.status == 0, "\(submitted.stderr)")
            let finished = try await JobTests.waitFinished(cluster, "ops/quick")

            let token = try await provider.token(user: "dwho", client: "short")
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: tokenListener.host, port: tokenListener.port),
                transportSecurity: TLSFiles.serverAuthenticatedClientSecurity(ca: cluster.admin.ca, serverHost: tokenListener.host))
            let start = ContinuousClock.now
            do {
                let answer = try await withGRPCClient(transport: transport) { client in
                    try await Specola_V1_Jobs.Client(wrapping: client).get(.with {
                        $0.id = "ops/quick"
                        $0.waitMs = 30_000
                        $0.afterRevision = finished.revision
                    }, metadata: ["authorization": "Bearer \(token)"])
                }
                Issue.record("expected the poll to be cut, got revision \(answer.revision)")
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated, "\(error)")
                #expect(error.message == "token expired, run specola login", "\(error.message)")
            }
            // 2 s token plus the coordinator's 1 s skew; far from the poll's 30 s.
            #expect(ContinuousClock.now - start < .seconds(15))
        }
    }

    @Test func tokensFromAnotherIssuerForAnotherAudienceOrGarbageAreRefused() async throws {
        let provider = LemonLDAP(host: "127.0.2.51", state: try TempDir("specola-oidc").path)
        let stranger = LemonLDAP(host: "127.0.2.52", state: try TempDir("specola-oidc").path)
        let cluster = try cluster(trusting: provider)
        try await cluster.withCleanup { try await withProviders([provider, stranger]) {
            try await provider.start(kid: "k1")
            try await stranger.start(kid: "k1")
            try await cluster.startCoordinator()

            let foreign = try await stranger.token(user: "dwho")
            await expectRefused(cluster, token: foreign, saying: "issued by \(stranger.issuer), but this cluster trusts \(provider.issuer)")

            // Same provider, but a client whose tokens are not for this cluster.
            let otherAudience = try await provider.token(user: "dwho", client: "other", secret: "other-secret")
            await expectRefused(cluster, token: otherAudience, saying: "the token is for other, not for specola-cluster")

            await expectRefused(cluster, token: "garbage", saying: "not a signed JWT")
            // A real token with its signature taken from another: the signature check refuses it.
            let good = try await provider.token(user: "dwho")
            let forged = good.split(separator: ".").prefix(2).joined(separator: ".") + "." + foreign.split(separator: ".")[2]
            await expectRefused(cluster, token: forged, saying: "signature does not verify")
            // And the CLI shows the coordinator's reason.
            let env = tokenEnvironment(cluster)
            _ = try await cli(["login", "--issuer", provider.issuer, "--token-stdin"], input: "garbage", environment: env)
            let whoami = try await run(BuiltProducts.path("specola"), ["whoami"], environment: env)
            #expect(whoami.status == 5)
            #expect(whoami.stderr.contains("bearer token refused: the bearer token is not a signed JWT"), "\(whoami.stderr)")
            #expect(try await whoAmI(cluster, token: good).name == "dwho")
        } }
    }

    @Test func aRotatedKeyIsAcceptedWithoutRestartAndAnUnreachableProviderIsReported() async throws {
        try await withSignInCluster { provider, cluster in
            let first = try await provider.token(user: "dwho")
            #expect(try await whoAmI(cluster, token: first).name == "dwho")
            let unused = try await provider.token(user: "rtyler")

            // The provider rotates to a new key; the coordinator keeps running.
            try await provider.start(kid: "k2")
            let rotated = try await provider.token(user: "rtyler")
            #expect(rotated != unused)
            try await waitUntil("the coordinator to accept a token signed with the new key k2", timeout: .seconds(15)) {
                (try? await whoAmI(cluster, token: rotated))?.name == "rtyler"
            }
            #expect(cluster.coordinatorProcess!.log.contains("k2"))
            // A token of the withdrawn key, never seen before, is refused by name of its key.
            await expectRefused(cluster, token: unused, saying: "signed with key k1, which the provider \(provider.issuer) does not publish")

            // The provider goes away: known keys still verify; an unknown key says the provider is unreachable.
            try await provider.stop()
            #expect(try await whoAmI(cluster, token: rotated).name == "rtyler")
            try await waitUntil("the key refresh interval to pass and the fetch to fail", timeout: .seconds(15)) {
                do {
                    _ = try await whoAmI(cluster, token: unused)
                    return false
                } catch let error as RPCError {
                    return error.code == .unavailable && error.message.contains("cannot reach the OIDC provider at \(provider.issuer)")
                }
            }
        }
    }
}
