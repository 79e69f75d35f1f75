import SpecolaClusterCore
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol

/// Who is calling: the principal a bearer-token interceptor verified for this call, or else
/// the client certificate that mutual TLS validated.
enum CallerIdentity {
    /// Set around a call by the interceptor that verified its bearer token.
    @TaskLocal static var tokenPrincipal: Principal?

    /// The caller of this call, by token if one was verified, else by certificate.
    static func principal(_ context: ServerContext) throws -> Principal {
        if let principal = tokenPrincipal { return principal }
        let identity = try of(context)
        return Principal(kind: Principal.Kind(identity.role), name: identity.name)
    }

    static func of(_ context: ServerContext) throws -> Identity {
        guard let presented = ConnectionCertificates.of(context) else {
            throw RPCError(code: .unauthenticated,
                           message: "no client certificate; connect with a certificate from this cluster's CA (specola pki issue)")
        }
        guard let identity = presented.identity else {
            throw RPCError(code: .permissionDenied,
                           message: "client certificate carries no Specola identity; issue one with `specola pki issue`")
        }
        return identity
    }

    /// For the machine verbs (agent link, Raft), which never depend on replicated bindings: the
    /// certificate's identity if `Authorization` allows `verb`, else permissionDenied.
    static func require(_ context: ServerContext, _ verb: Verb) throws -> Identity {
        let principal = try principal(context)
        if case .deny(let message) = Authorization.authorize(principal, roles: [], verb, .cluster) {
            throw RPCError(code: .permissionDenied, message: message)
        }
        return try of(context)
    }
}

extension Principal.Kind {
    init(_ role: CertificateRole) {
        switch role {
        case .user: self = .user
        case .node: self = .node
        case .coordinator: self = .coordinator
        }
    }
}
