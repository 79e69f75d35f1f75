import Crypto
import Foundation

/// The token `specola login` keeps, and what it needs to refresh it.
public struct StoredToken: Codable, Sendable, Equatable {
    public var issuer: String
    public var clientID: String
    public var tokenEndpoint: String?
    public var accessToken: String
    public var refreshToken: String?
    /// Unix seconds; nil when unknown (a token that is not a JWT).
    public var expiresAt: Double?
    /// The provider's CA file, for the refresh.
    public var caFile: String?

    public init(
        issuer: String, clientID: String, tokenEndpoint: String?, accessToken: String, refreshToken: String?, expiresAt: Double?,
        caFile: String?
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.tokenEndpoint = tokenEndpoint
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.caFile = caFile
    }

    /// Expired, or about to (within `margin` seconds).
    public func isExpired(now: Date = Date(), margin: Double = 30) -> Bool {
        guard let expiresAt else { return false }
        return now.timeIntervalSince1970 + margin >= expiresAt
    }

    /// The `exp` of a JWT, read without checking it (the coordinator checks).
    public static func expiry(ofJWT token: String) -> Double? {
        guard let (_, claims) = try? OIDCVerifier.decode(token) else { return nil }
        return OIDCVerifier.number(claims["exp"])
    }
}

/// Where the token lives: `$SPECOLA_TOKEN_FILE`, else `$XDG_CONFIG_HOME/specola/token.json`,
/// else `~/.config/specola/token.json`. Written 0600 through a temporary file and a rename.
public struct TokenStore: Sendable {
    public var path: String

    public init(path: String) { self.path = path }

    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> TokenStore {
        if let path = environment["SPECOLA_TOKEN_FILE"], !path.isEmpty { return TokenStore(path: path) }
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.config")
        return TokenStore(path: config + "/specola/token.json")
    }

    public func load() throws -> StoredToken? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw OIDCError(.configuration, "the token file \(path) is readable by others (mode \(String(mode, radix: 8))); run `chmod 600 \(path)` or `specola login` again")
        }
        do {
            return try JSONDecoder().decode(StoredToken.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw OIDCError(.configuration, "the token file \(path) cannot be read (\(error)); run `specola logout` and `specola login`")
        }
    }

    public func save(_ token: StoredToken) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(token)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw OIDCError(.configuration, "cannot write the token file in \(directory); check its permissions")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw OIDCError(.configuration, "cannot replace the token file \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// True when there was a token to remove.
    @discardableResult
    public func remove() throws -> Bool {
        guard FileManager.default.fileExists(atPath: path) else { return false }
        try FileManager.default.removeItem(atPath: path)
        return true
    }
}

/// The provider's token endpoint answer (RFC 6749 §5.1), or its error (§5.2).
public struct TokenResponse: Decodable, Sendable {
    public var accessToken: String?
    public var refreshToken: String?
    public var expiresIn: Double?
    public var error: String?
    public var errorDescription: String?
    // Device grant (RFC 8628 §3.2).
    public var deviceCode: String?
    public var userCode: String?
    public var verificationURI: String?
    public var verificationURIComplete: String?
    public var interval: Double?

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token", refreshToken = "refresh_token", expiresIn = "expires_in"
        case error, errorDescription = "error_description"
        case deviceCode = "device_code", userCode = "user_code", verificationURI = "verification_uri"
        case verificationURIComplete = "verification_uri_complete", interval
    }
}

/// The grants `specola login` uses, against one provider.
public struct OIDCClient: Sendable {
    public var issuer: String
    public var clientID: String
    public var scope: String
    public var caFile: String?
    let http: OIDCHTTP

    public init(issuer: String, clientID: String, scope: String = "openid profile groups", caFile: String? = nil) throws {
        self.issuer = issuer
        self.clientID = clientID
        self.scope = scope
        self.caFile = caFile
        http = try OIDCHTTP(caFile: caFile)
    }

    public func discover() async throws -> OIDCDiscovery {
        try await OIDCDiscovery.fetch(issuer: issuer, http: http)
    }

    /// Resource owner password grant: for service accounts and test providers; many sites disable it.
    public func passwordGrant(username: String, password: String, discovery: OIDCDiscovery) async throws -> StoredToken {
        try await tokenRequest(discovery, [
            ("grant_type", "password"), ("username", username), ("password", password), ("client_id", clientID), ("scope", scope),
        ], what: "password grant")
    }

    public func authorizationCodeGrant(code: String, redirectURI: String, verifier: String, discovery: OIDCDiscovery) async throws -> StoredToken {
        try await tokenRequest(discovery, [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("client_id", clientID),
            ("code_verifier", verifier),
        ], what: "authorization code exchange")
    }

    public func refresh(_ token: StoredToken) async throws -> StoredToken {
        guard let refreshToken = token.refreshToken else {
            throw OIDCError(.grantRefused, "the sign-in at \(token.issuer) expired and there is no refresh token; run `specola login`")
        }
        let endpoint: String
        if let stored = token.tokenEndpoint { endpoint = stored } else {
            guard let discovered = try await discover().tokenEndpoint else {
                throw OIDCError(.configuration, "the provider \(issuer) names no token endpoint")
            }
            endpoint = discovered
        }
        var refreshed = try await post(endpoint, [
            ("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", clientID),
        ], what: "token refresh")
        // A provider may keep the refresh token the same and not send it again.
        if refreshed.refreshToken == nil { refreshed.refreshToken = refreshToken }
        return refreshed
    }

    /// RFC 8628: asks for a user code, calls `show` with what the user must open, then polls.
    public func deviceGrant(discovery: OIDCDiscovery, show: @Sendable (String, String?, String) -> Void) async throws -> StoredToken {
        guard let deviceEndpoint = discovery.deviceAuthorizationEndpoint, let tokenEndpoint = discovery.tokenEndpoint else {
            throw OIDCError(.configuration, "the provider offers no device authorization")
        }
        let reply = try await http.postForm(deviceEndpoint, [("client_id", clientID), ("scope", scope)])
        let start = try decode(reply, what: "device authorization")
        guard let deviceCode = start.deviceCode, let userCode = start.userCode, let uri = start.verificationURI else {
            throw OIDCError(.grantRefused, "the provider's device authorization answer lacks device_code, user_code or verification_uri")
        }
        show(uri, start.verificationURIComplete, userCode)
        var interval = max(start.interval ?? 5, 1)
        let deadline = Date().addingTimeInterval(start.expiresIn ?? 600)
        while Date() < deadline {
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
            let poll = try await http.postForm(tokenEndpoint, [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode), ("client_id", clientID),
            ])
            let answer = try? JSONDecoder().decode(TokenResponse.self, from: poll.body)
            switch answer?.error {
            case "authorization_pending": continue
            case "slow_down": interval += 5
            default: return try stored(poll, tokenEndpoint: tokenEndpoint, what: "device grant")
            }
        }
        throw OIDCError(.grantRefused, "the device code expired before the sign-in was completed; run `specola login` again")
    }

    /// PKCE (RFC 7636) verifier and S256 challenge.
    public static func pkce() -> (verifier: String, challenge: String) {
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let verifier = base64URL(Data(bytes))
        let challenge = base64URL(Data(SHA256.hash(data: Data(verifier.utf8))))
        return (verifier, challenge)
    }

    public static func randomState() -> String {
        base64URL(Data((0..<16).map { _ in UInt8.random(in: 0...255) }))
    }

    public func authorizationURL(discovery: OIDCDiscovery, redirectURI: String, challenge: String, state: String) throws -> String {
        guard let endpoint = discovery.authorizationEndpoint else {
            throw OIDCError(.configuration, "the provider \(issuer) names no authorization endpoint")
        }
        let query = OIDCHTTP.formEncode([
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope),
            ("state", state), ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ])
        return endpoint + (endpoint.contains("?") ? "&" : "?") + query
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    func tokenRequest(_ discovery: OIDCDiscovery, _ fields: [(String, String)], what: String) async throws -> StoredToken {
        guard let endpoint = discovery.tokenEndpoint else {
            throw OIDCError(.configuration, "the provider \(issuer) names no token endpoint")
        }
        return try await post(endpoint, fields, what: what)
    }

    func post(_ endpoint: String, _ fields: [(String, String)], what: String) async throws -> StoredToken {
        try stored(try await http.postForm(endpoint, fields), tokenEndpoint: endpoint, what: what)
    }

    func decode(_ reply: OIDCReply, what: String) throws -> TokenResponse {
        guard let answer = try? JSONDecoder().decode(TokenResponse.self, from: reply.body) else {
            throw OIDCError(.grantRefused, "the provider's \(what) answered HTTP \(reply.status) without a JSON body")
        }
        if let error = answer.error {
            let detail = answer.errorDescription.map { ": \($0)" } ?? ""
            throw OIDCError(.grantRefused, "the provider refused the \(what) (\(error)\(detail))")
        }
        guard reply.status == 200 else { throw OIDCError(.grantRefused, "the provider's \(what) answered HTTP \(reply.status)") }
        return answer
    }

    func stored(_ reply: OIDCReply, tokenEndpoint: String, what: String) throws -> StoredToken {
        let answer = try decode(reply, what: what)
        guard let access = answer.accessToken else {
            throw OIDCError(.grantRefused, "the provider's \(what) answer has no access_token")
        }
        let expiresAt = StoredToken.expiry(ofJWT: access) ?? answer.expiresIn.map { Date().timeIntervalSince1970 + $0 }
        return StoredToken(
            issuer: issuer, clientID: clientID, tokenEndpoint: tokenEndpoint, accessToken: access, refreshToken: answer.refreshToken,
            expiresAt: expiresAt, caFile: caFile)
    }
}
