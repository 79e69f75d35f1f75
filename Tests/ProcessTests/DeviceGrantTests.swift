import CooperativePoolWatch
import Foundation
import SpecolaOIDC
import SpecolaProtocol
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Glewlwyd 2.7.5 (Debian 12) as an OIDC provider offering the device authorization grant
/// (RFC 8628), which LemonLDAP::NG 2.16 does not; started and configured from Tests/Fixtures/oidc.
final class Glewlwyd: @unchecked Sendable {
    let host: String
    let port: Int
    let state: String
    private var process: ChildProcess?

    var base: String { "http://\(host):\(port)" }
    var issuer: String { base + "/api/oidc" }

    init(host: String, state: String) {
        self.host = host
        port = freePort(host: host)
        self.state = state
    }

    func start() async throws {
        let process = try ChildProcess(
            name: "glewlwyd-\(host)", executable: "/bin/sh",
            arguments: [LemonLDAP.fixtures + "/start-glewlwyd.sh", state, host, "\(port)"], logDirectory: state)
        self.process = process
        try await waitUntil("Glewlwyd to answer on \(base) (log: \(process.logPath))", timeout: .seconds(30)) {
            guard process.isRunning else { throw ProcessDied(log: process.log) }
            return try await run("/usr/bin/curl", ["-s", "-o", "/dev/null", base + "/api/mod/type/"]).status == 0
        }
        let setup = try await run("/bin/sh", [LemonLDAP.fixtures + "/setup-glewlwyd.sh", state, base])
        guard setup.status == 0 else { throw ProcessDied(log: "setup-glewlwyd.sh: \(setup.stderr)\n\(process.log)") }
    }

    func stop() async throws {
        try await process?.stop()
        process = nil
    }
}

/// `specola login` through the device authorization grant at a real provider: the test plays the
/// user who opens the verification page and approves the code; the token is stored 0600 and used.
/// Addresses 127.0.2.56-57 are this suite's own.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct DeviceGrantTests {
    static let coordinatorHost = "127.0.2.56"
    let tokenListener = HostPort(host: DeviceGrantTests.coordinatorHost, port: freePort(host: DeviceGrantTests.coordinatorHost))

    @Test func signInWithTheDeviceGrantStoresTheTokenPrivatelyAndUsesIt() async throws {
        let provider = Glewlwyd(host: "127.0.2.57", state: try TempDir("specola-glewlwyd").path)
        let cluster = try LocalCluster(coordinatorHost: Self.coordinatorHost, extraConfig: """
            oidc: {listen: "\(tokenListener)", issuer: "\(provider.issuer)", audience: specola-cluster}
            """, access: "{bootstrapAdmins: [admin]}")
        try await cluster.withCleanup {
            defer { try? FileManager.default.removeItem(atPath: provider.state) }
            do {
                try await provider.start()
                try await cluster.startCoordinator()
                try await signIn(provider, cluster)
            } catch {
                try? await provider.stop()
                throw error
            }
            try await provider.stop()
        }
    }

    func signIn(_ provider: Glewlwyd, _ cluster: LocalCluster) async throws {
        var env = cluster.cliEnvironment
        env["SPECOLA_CLIENT_CERT"] = ""
        env["SPECOLA_CLIENT_KEY"] = ""
        env["SPECOLA_TOKEN_FILE"] = cluster.dir.file("token.json")
        env["SPECOLA_ADDR"] = tokenListener.description
        // The provider's discovery names a device_authorization_endpoint, so login takes the device grant.
        let login = try ChildProcess(
            name: "login", executable: BuiltProducts.path("specola"),
            arguments: ["login", "--issuer", provider.issuer, "--client-id", "specola-cli", "--scope", "specola-cluster"],
            logDirectory: cluster.dir.path, environment: env)
        defer { login.signal(SIGKILL) }
        let code = try await waitUntilValue("specola login to print the user code (log: \(login.logPath))") {
            login.log.split(separator: "\n").first { $0.hasPrefix("and enter the code ") }.map { String($0.dropFirst("and enter the code ".count)) }
        }
        #expect(login.log.contains("To sign in, open \(provider.issuer)/device?code=\(code)"), "\(login.log)")
        // Before the user approves, the CLI keeps polling (authorization_pending).
        #expect(login.isRunning)
        #expect(!FileManager.default.fileExists(atPath: cluster.dir.file("token.json")))

        // The user: signs in at the provider, consents, and opens the verification page with the code.
        let user = try await run("/bin/sh", [LemonLDAP.fixtures + "/approve-device-code.sh", provider.base, code])
        #expect(user.status == 0, "\(user.stderr)")
        #expect(user.stdout.contains("prompt=deviceComplete"), "\(user.stdout)")
        #expect(try await login.waitForExit(timeout: .seconds(30)) == 0, "\(login.log)")
        #expect(login.log.contains("signed in at \(provider.issuer)"))

        // Stored 0600, with the refresh token the grant returned.
        let path = cluster.dir.file("token.json")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600, "mode \(String(mode, radix: 8))")
        let stored = try #require(try TokenStore(path: path).load())
        #expect(stored.issuer == provider.issuer && stored.refreshToken != nil)

        // Used for a call: the coordinator verified it (issuer, audience, signature) and names the user by `sub`.
        let whoami = try await run(BuiltProducts.path("specola"), ["whoami", "--json"], environment: env)
        #expect(whoami.status == 0, "\(whoami.stderr)")
        let answer = try Specola_V1_WhoAmIResponse(jsonString: whoami.stdout)
        #expect(answer.kind == "user" && answer.proof == "token" && answer.issuer == provider.issuer, "\(whoami.stdout)")
        #expect(!answer.name.isEmpty)
        // With a role granted by the admin, the token reaches an authorized call.
        let refused = try await run(BuiltProducts.path("specola"), ["jobs"], environment: env)
        #expect(refused.status == 5 && refused.stderr.contains("user/\(answer.name) holds no role"), "\(refused.stderr)")
        let grant = try await cluster.cli(["access", "grant", answer.name, "viewer"])
        #expect(grant.status == 0, "\(grant.stderr)")
        let jobs = try await run(BuiltProducts.path("specola"), ["jobs"], environment: env)
        #expect(jobs.status == 0, "\(jobs.stderr)")
    }
}
