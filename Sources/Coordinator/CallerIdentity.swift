import SpecolaClusterCore
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol

/// Who is calling, taken from the client certificate that mutual TLS validated.
enum CallerIdentity {
    static func of(_ context: ServerContext) throws -> Identity {
        guard let posix = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = posix.peerCertificate
        else {
            throw RPCError(code: .unauthenticated,
                           message: "no client certificate; connect with a certificate from this cluster's CA (specola pki issue)")
        }
        guard let identity = PKI.identity(of: certificate) else {
            throw RPCError(code: .permissionDenied,
                           message: "client certificate carries no Specola identity; issue one with `specola pki issue`")
        }
        return identity
    }

    static func require(_ context: ServerContext, roles: Set<Role>) throws -> Identity {
        let identity = try of(context)
        guard roles.contains(identity.role) else {
            let allowed = roles.map(\.rawValue).sorted().joined(separator: " or ")
            throw RPCError(code: .permissionDenied,
                           message: "\(identity) may not call this; it needs a \(allowed) certificate")
        }
        return identity
    }
}
