/// Who a call speaks for, however it proved it: a client certificate from the cluster CA,
/// or a bearer token from the site's OIDC provider. The authorization decision reads only this.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    /// The kind of party: a person (or script), an agent on a node, or a coordinator replica.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case user, node, coordinator
    }

    /// How the caller proved who it is.
    public enum Proof: Sendable, Hashable {
        case certificate
        case token(issuer: String)
    }

    public var kind: Kind
    public var name: String
    /// Groups from the token's configured claim; empty for a certificate.
    public var groups: [String]
    public var proof: Proof

    public init(kind: Kind, name: String, groups: [String] = [], proof: Proof = .certificate) {
        self.kind = kind
        self.name = name
        self.groups = groups
        self.proof = proof
    }

    /// `kind/name`, the form certificates and logs use (for example `user/alice`).
    public var description: String { "\(kind.rawValue)/\(name)" }
}
