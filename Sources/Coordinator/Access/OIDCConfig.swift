import Foundation
import SpecolaOIDC
import SpecolaProtocol

/// `oidc:` — sign-in with the site's OIDC provider. Without it the coordinator accepts
/// client certificates only; with it, also bearer tokens the provider signed for `audience`.
public struct OIDCConfig: Decodable, Sendable {
    public var settings: OIDCSettings
    /// HOST:PORT of the bearer-token listener (server-authenticated TLS); nil: the main
    /// listener's host, port 7451.
    public var listen: HostPort?

    public init(settings: OIDCSettings, listen: HostPort? = nil) {
        self.settings = settings
        self.listen = listen
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, issuer, audience, usernameClaim, groupsClaim, caFile, clockSkew, keyRefreshInterval
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(String.self, forKey: .listen) == nil ? nil : try c.decodeEndpoint(.listen, defaultPort: 7451)
        let issuer = try c.decode(String.self, forKey: .issuer)
        guard let url = URLComponents(string: issuer), let scheme = url.scheme, scheme == "https" || scheme == "http", url.host != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .issuer, in: c, debugDescription: "'\(issuer)' is not an issuer URL; write the provider's issuer exactly, e.g. https://iam.example.org/")
        }
        let audience = try c.decode(String.self, forKey: .audience)
        guard !audience.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .audience, in: c, debugDescription: "must name the audience tokens for this cluster carry")
        }
        let skew = try c.decodeIfPresent(Double.self, forKey: .clockSkew) ?? 60
        guard skew >= 0, skew <= 300 else {
            throw DecodingError.dataCorruptedError(forKey: .clockSkew, in: c, debugDescription: "must be between 0 and 300 seconds")
        }
        let refresh = try c.decodePositiveSeconds(.keyRefreshInterval, default: 30)
        let caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        if scheme == "http", !(url.host.map(Self.isLoopback) ?? false) {
            throw DecodingError.dataCorruptedError(
                forKey: .issuer, in: c, debugDescription: "must be https (plain http is accepted only for a provider on loopback, in tests)")
        }
        settings = OIDCSettings(
            issuer: issuer, audience: audience,
            usernameClaim: try c.decodeIfPresent(String.self, forKey: .usernameClaim),
            groupsClaim: try c.decodeIfPresent(String.self, forKey: .groupsClaim) ?? "groups",
            caFile: caFile, clockSkew: .milliseconds(Int64(skew * 1000)),
            keyRefreshInterval: .milliseconds(Int64(refresh * 1000)))
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}
