import Crypto
import Foundation
import JWTKit
import Logging

/// What the coordinator trusts: `oidc:` in its config.
public struct OIDCSettings: Sendable, Hashable {
    /// The provider's issuer URL, exactly as its tokens' `iss` says.
    public var issuer: String
    /// The `aud` value a token must carry to be accepted here.
    public var audience: String
    /// The claim naming the user; nil means `preferred_username`, then `sub`.
    public var usernameClaim: String?
    /// The claim listing the user's groups (a list of strings, or one string).
    public var groupsClaim: String
    /// A PEM CA bundle for an https provider with a private CA; nil uses the system roots.
    public var caFile: String?
    /// Tolerance on `exp`, `nbf` and `iat` for clocks that disagree; at most 5 minutes.
    public var clockSkew: Duration
    /// An unknown `kid` refetches the provider's keys at most this often.
    public var keyRefreshInterval: Duration

    public static let maxClockSkew: Duration = .seconds(300)

    public init(
        issuer: String, audience: String, usernameClaim: String? = nil, groupsClaim: String = "groups", caFile: String? = nil,
        clockSkew: Duration = .seconds(60), keyRefreshInterval: Duration = .seconds(30)
    ) {
        self.issuer = issuer
        self.audience = audience
        self.usernameClaim = usernameClaim
        self.groupsClaim = groupsClaim
        self.caFile = caFile
        self.clockSkew = clockSkew
        self.keyRefreshInterval = keyRefreshInterval
    }
}

/// A token that passed every check, and whom it speaks for.
public struct VerifiedToken: Sendable, Hashable {
    public var username: String
    public var groups: [String]
    public var issuer: String
    public var expiresAt: Date
    /// When the verifier stops accepting it: `expiresAt` plus the allowed clock skew. A call the
    /// token opened (a long poll, a stream) is cut then.
    public var acceptedUntil: Date

    public init(username: String, groups: [String], issuer: String, expiresAt: Date, acceptedUntil: Date? = nil) {
        self.username = username
        self.groups = groups
        self.issuer = issuer
        self.expiresAt = expiresAt
        self.acceptedUntil = acceptedUntil ?? expiresAt
    }
}

/// Checks a token the way the coordinator needs before a call runs.
public protocol TokenVerifying: Sendable {
    func verify(_ token: String) async throws(OIDCError) -> VerifiedToken
}

/// Verifies bearer tokens from one OIDC provider: signature against the provider's JWKS (found
/// through its discovery document), then `iss`, `aud`, `exp`, `nbf` with bounded skew. Keys are
/// refetched when a token names an unknown `kid` (the provider rotated), at most once per
/// `keyRefreshInterval`. Verified tokens are remembered by their SHA-256 until they expire.
public actor OIDCVerifier: TokenVerifying {
    public nonisolated let settings: OIDCSettings
    let http: OIDCHTTP
    let logger: Logger
    let now: @Sendable () -> Date

    var keys: JWTKeyCollection?
    var knownKIDs: Set<String> = []
    var lastFetch: ContinuousClock.Instant?
    var lastFetchError: OIDCError?
    var inFlight: Task<Void, Never>?
    var cache: [SHA256Digest: VerifiedToken] = [:]
    static let cacheLimit = 10_000
    static let acceptedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

    public init(settings: OIDCSettings, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) throws {
        self.settings = settings
        self.http = try OIDCHTTP(caFile: settings.caFile)
        self.logger = logger
        self.now = now
    }

    public func verify(_ token: String) async throws(OIDCError) -> VerifiedToken {
        let digest = SHA256.hash(data: Data(token.utf8))
        let skew = Self.seconds(settings.clockSkew)
        if let hit = cache[digest] {
            if now().timeIntervalSince(hit.expiresAt) <= skew { return hit }
            cache[digest] = nil
            throw OIDCError(.expired, "the token expired at \(Self.format(hit.expiresAt)); run `specola login` again")
        }
        let (header, claims) = try Self.decode(token)
        // The issuer first: a token from elsewhere gets a message that says so, not "unknown key".
        guard let iss = claims["iss"] as? String else { throw OIDCError(.missingClaim, "the token has no iss claim") }
        guard trimSlash(iss) == trimSlash(settings.issuer) else {
            throw OIDCError(.wrongIssuer, "the token was issued by \(iss), but this cluster trusts \(settings.issuer); sign in with that provider (`specola login`)")
        }
        guard let alg = header["alg"] as? String, Self.acceptedAlgorithms.contains(alg) else {
            throw OIDCError(.malformed, "the token's signature algorithm \(header["alg"] as? String ?? "(none)") is not accepted; the provider must sign with RS*, PS*, ES* or EdDSA")
        }
        guard let kid = header["kid"] as? String, !kid.isEmpty else {
            throw OIDCError(.unknownKey, "the token names no signing key (kid); the provider must put kid in its tokens' header")
        }
        let keys = try await keys(for: kid)
        do {
            _ = try await keys.verify(token, as: SignatureOnly.self)
        } catch {
            throw OIDCError(.badSignature, "the token's signature does not verify with the provider's key \(kid); it was altered or not issued by \(settings.issuer)")
        }
        let verified = try check(claims: claims, issuer: iss)
        if cache.count >= Self.cacheLimit { evictExpired() }
        if cache.count < Self.cacheLimit { cache[digest] = verified }
        return verified
    }

    func check(claims: [String: Any], issuer: String) throws(OIDCError) -> VerifiedToken {
        let now = now()
        let skew = Self.seconds(settings.clockSkew)
        let audiences: [String] = (claims["aud"] as? String).map { [$0] } ?? (claims["aud"] as? [Any])?.compactMap { $0 as? String } ?? []
        guard audiences.contains(settings.audience) else {
            throw OIDCError(.wrongAudience, "the token is for \(audiences.isEmpty ? "no audience" : audiences.joined(separator: ", ")), not for \(settings.audience); ask the provider's administrator to add \(settings.audience) to the client's audiences, or check oidc.audience")
        }
        guard let exp = Self.number(claims["exp"]) else { throw OIDCError(.missingClaim, "the token has no exp claim; tokens without an expiry are not accepted") }
        let expiresAt = Date(timeIntervalSince1970: exp)
        if now.timeIntervalSince(expiresAt) > skew {
            throw OIDCError(.expired, "the token expired at \(Self.format(expiresAt)); run `specola login` again")
        }
        if let nbf = Self.number(claims["nbf"]), Date(timeIntervalSince1970: nbf).timeIntervalSince(now) > skew {
            throw OIDCError(.notYetValid, "the token is not valid before \(Self.format(Date(timeIntervalSince1970: nbf))); check the clocks of the provider and this coordinator")
        }
        if let iat = Self.number(claims["iat"]), Date(timeIntervalSince1970: iat).timeIntervalSince(now) > skew {
            throw OIDCError(.notYetValid, "the token was issued in the future (\(Self.format(Date(timeIntervalSince1970: iat)))); check the clocks of the provider and this coordinator")
        }
        let username: String
        if let claim = settings.usernameClaim {
            guard let value = claims[claim] as? String, !value.isEmpty else {
                throw OIDCError(.missingClaim, "the token has no \(claim) claim (oidc.usernameClaim); ask the provider's administrator to release it to this client")
            }
            username = value
        } else if let value = (claims["preferred_username"] as? String) ?? (claims["sub"] as? String), !value.isEmpty {
            username = value
        } else {
            throw OIDCError(.missingClaim, "the token has neither preferred_username nor sub")
        }
        let groups: [String]
        switch claims[settings.groupsClaim] {
        case let list as [Any]: groups = list.compactMap { $0 as? String }
        case let one as String: groups = one.split(whereSeparator: { $0 == "," || $0 == " " || $0 == ";" }).map(String.init)
        default: groups = []
        }
        return VerifiedToken(username: username, groups: groups, issuer: issuer, expiresAt: expiresAt, acceptedUntil: expiresAt + skew)
    }

    /// The key set that knows `kid`, refetched when it does not (at most once per interval).
    func keys(for kid: String) async throws(OIDCError) -> JWTKeyCollection {
        if let keys, knownKIDs.contains(kid) { return keys }
        let interval = settings.keyRefreshInterval
        if let last = lastFetch, ContinuousClock.now - last < interval, inFlight == nil {
            if let error = lastFetchError { throw error }
            throw OIDCError(.unknownKey, "the token was signed with key \(kid), which the provider \(settings.issuer) does not publish; keys are refetched at most every \(interval), so a just-rotated key is accepted shortly")
        }
        if inFlight == nil {
            inFlight = Task { await self.fetchKeys() }
        }
        await inFlight?.value
        if let error = lastFetchError { throw error }
        guard let keys, knownKIDs.contains(kid) else {
            throw OIDCError(.unknownKey, "the token was signed with key \(kid), which the provider \(settings.issuer) does not publish; it was not issued by that provider or its key was withdrawn")
        }
        return keys
    }

    func fetchKeys() async {
        defer { inFlight = nil; lastFetch = .now }
        do {
            let discovery = try await OIDCDiscovery.fetch(issuer: settings.issuer, http: http)
            let reply = try await http.get(discovery.jwksURI)
            guard reply.status == 200 else {
                throw OIDCError(.providerUnreachable, "the OIDC provider's key set \(OIDCHTTP.origin(discovery.jwksURI)) answered HTTP \(reply.status)")
            }
            let jwks: JWKS
            do {
                jwks = try JSONDecoder().decode(JWKS.self, from: reply.body)
            } catch {
                throw OIDCError(.providerUnreachable, "the OIDC provider's key set is not a JWKS: \(error)")
            }
            let collection = JWTKeyCollection()
            var kids: Set<String> = []
            for jwk in jwks.keys where jwk.keyIdentifier != nil {
                guard let kid = jwk.keyIdentifier?.string else { continue }
                if (try? await collection.add(jwk: jwk, isDefault: false)) != nil { kids.insert(kid) }
            }
            if kids != knownKIDs {
                logger.info("OIDC signing keys loaded", metadata: ["oidc.issuer": "\(settings.issuer)", "oidc.kids": "\(kids.sorted())"])
            }
            keys = collection
            knownKIDs = kids
            lastFetchError = nil
        } catch let error as OIDCError {
            lastFetchError = error.kind == .providerUnreachable || error.kind == .configuration
                ? OIDCError(error.kind, "\(error.message); tokens with keys not seen before cannot be checked until the provider answers")
                : error
            logger.warning("OIDC key fetch failed", metadata: ["oidc.issuer": "\(settings.issuer)", "error": "\(error)"])
        } catch {
            lastFetchError = OIDCError(.providerUnreachable, "cannot fetch the OIDC provider's keys: \(error)")
        }
    }

    func evictExpired() {
        let now = now()
        cache = cache.filter { $0.value.expiresAt > now }
        if cache.count >= Self.cacheLimit { cache.removeAll() }
    }

    /// Header and claims of a compact JWS, without checking anything.
    static func decode(_ token: String) throws(OIDCError) -> ([String: Any], [String: Any]) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let header = base64URL(parts[0]).flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }),
            let claims = base64URL(parts[1]).flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] })
        else {
            throw OIDCError(.malformed, "the bearer token is not a signed JWT (header.claims.signature); use an access token from the cluster's OIDC provider (`specola login`)")
        }
        return (header, claims)
    }

    static func base64URL(_ part: Substring) -> Data? {
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text)
    }

    static func number(_ value: Any?) -> Double? {
        if let value = value as? Int { return Double(value) }
        if let value = value as? Double { return value }
        return (value as? NSNumber)?.doubleValue
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// Signature only: the claims are checked by `OIDCVerifier.check`, with messages of its own.
struct SignatureOnly: JWTPayload {
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
