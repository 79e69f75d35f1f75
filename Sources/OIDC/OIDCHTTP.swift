import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// An answer from the OIDC provider: the status and the body (bounded).
public struct OIDCReply: Sendable {
    public var status: Int
    public var body: Data
}

/// HTTP to the OIDC provider: GET for discovery and keys, form POST for the token grants.
/// TLS to an https provider is checked against the system roots, or only against `caFile`.
public struct OIDCHTTP: Sendable {
    static let bodyLimit = 1 << 20
    /// Nil: the system's roots.
    let tls: TLSConfiguration?
    let timeout: TimeAmount

    public init(caFile: String? = nil, timeout: Duration = .seconds(10)) throws {
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw OIDCError(.configuration, "the OIDC provider's CA file \(caFile) cannot be read; check oidc.caFile")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            self.tls = tls
        } else {
            tls = nil
        }
        self.timeout = .seconds(timeout.components.seconds)
    }

    public func get(_ url: String) async throws -> OIDCReply {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        return try await send(request, url: url)
    }

    /// `application/x-www-form-urlencoded` POST, as the token and device endpoints want.
    public func postForm(_ url: String, _ fields: [(String, String)]) async throws -> OIDCReply {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: Self.formEncode(fields)))
        return try await send(request, url: url)
    }

    func send(_ request: HTTPClientRequest, url: String) async throws -> OIDCReply {
        do {
            var request = request
            request.tlsConfiguration = tls
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: Self.bodyLimit)
            return OIDCReply(status: Int(response.status.code), body: Data(body.readableBytesView))
        } catch let error as OIDCError {
            throw error
        } catch {
            throw OIDCError(.providerUnreachable, "cannot reach the OIDC provider at \(Self.origin(url)): \(error)")
        }
    }

    /// Scheme, host and port only: paths and queries may carry codes.
    static func origin(_ url: String) -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host else { return "(invalid URL)" }
        return c.port.map { "\(scheme)://\(host):\($0)" } ?? "\(scheme)://\(host)"
    }

    public static func formEncode(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { key, value in
            "\(key.addingPercentEncoding(withAllowedCharacters: allowed) ?? key)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
    }
}

/// The parts of a provider's `.well-known/openid-configuration` Specola uses.
public struct OIDCDiscovery: Decodable, Sendable {
    public var issuer: String
    public var jwksURI: String
    public var tokenEndpoint: String?
    public var authorizationEndpoint: String?
    public var deviceAuthorizationEndpoint: String?
    public var grantTypesSupported: [String]?

    enum CodingKeys: String, CodingKey {
        case issuer
        case jwksURI = "jwks_uri"
        case tokenEndpoint = "token_endpoint"
        case authorizationEndpoint = "authorization_endpoint"
        case deviceAuthorizationEndpoint = "device_authorization_endpoint"
        case grantTypesSupported = "grant_types_supported"
    }

    public static func url(issuer: String) -> String {
        (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
    }

    /// Fetches the document and checks that it speaks for `issuer` (OpenID Connect Discovery §4.3).
    public static func fetch(issuer: String, http: OIDCHTTP) async throws -> OIDCDiscovery {
        let url = url(issuer: issuer)
        let reply = try await http.get(url)
        guard reply.status == 200 else {
            throw OIDCError(.providerUnreachable, "the OIDC provider's discovery document \(url) answered HTTP \(reply.status); check oidc.issuer")
        }
        let document: OIDCDiscovery
        do {
            document = try JSONDecoder().decode(OIDCDiscovery.self, from: reply.body)
        } catch {
            throw OIDCError(.providerUnreachable, "the discovery document at \(url) is not valid OpenID Connect discovery JSON: \(error)")
        }
        guard trimSlash(document.issuer) == trimSlash(issuer) else {
            throw OIDCError(.configuration, "the discovery document at \(url) names issuer \(document.issuer), not \(issuer); set oidc.issuer to the provider's exact issuer")
        }
        return document
    }
}

func trimSlash(_ s: String) -> String { s.hasSuffix("/") ? String(s.dropLast()) : s }

/// Why a token, or the provider, failed; `description` is for operators and never holds the token.
public struct OIDCError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case malformed, expired, notYetValid, wrongIssuer, wrongAudience, unknownKey, badSignature, missingClaim
        case providerUnreachable, configuration, grantRefused
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}
