import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SpecolaClusterCore
import SpecolaOIDC
import SpecolaProtocol

/// The first check of every call: a call with `authorization: Bearer TOKEN` runs, streams
/// included, as the principal the token names (`CallerIdentity.tokenPrincipal`); a call
/// without one must come with a client certificate. Nothing else gets through, so a coordinator
/// that does not demand a certificate in the TLS handshake still refuses anonymous calls.
struct BearerTokenInterceptor: ServerInterceptor {
    /// Nil when the coordinator has no `oidc:` section: tokens are refused.
    let verifier: (any TokenVerifying)?
    let logger: Logger

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let header = request.metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            guard Self.hasClientCertificate(context) else {
                throw RPCError(
                    code: .unauthenticated,
                    message: "no client certificate and no bearer token; sign in with `specola login`, or use a certificate from this cluster's CA")
            }
            return try await next(request, context)
        }
        let (principal, acceptedUntil) = try await verified(authorization: header, method: context.descriptor.fullyQualifiedMethod)
        // A call outliving its token (a long poll, a stream) ends when the token does.
        let expiry = TokenExpiry(acceptedUntil: acceptedUntil)
        var response = try await withoutActuallyEscaping(next) { next in
            try await expiry.cut {
                try await CallerIdentity.$tokenPrincipal.withValue(principal) { try await next(request, context) }
            }
        }
        // A server or bidirectional stream runs its handler in the producer, after this returns.
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in
                try await expiry.cut {
                    try await CallerIdentity.$tokenPrincipal.withValue(principal) { try await producer(writer) }
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    func verified(authorization header: String, method: String) async throws -> (principal: Principal, acceptedUntil: Date) {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            throw RPCError(code: .unauthenticated, message: "the authorization metadata is not `Bearer TOKEN`; sign in with `specola login`")
        }
        guard let verifier else {
            throw RPCError(
                code: .unauthenticated,
                message: "this coordinator accepts no bearer tokens (no oidc: section in its config); use a client certificate")
        }
        do {
            let token = try await verifier.verify(String(parts[1]))
            return (Principal(kind: .user, name: token.username, groups: token.groups, proof: .token(issuer: token.issuer)), token.acceptedUntil)
        } catch {
            // The reason only: never the token or its claims beyond what the message names.
            logger.notice("bearer token refused", metadata: ["oidc.refusal": "\(error.kind.rawValue)", "rpc.method": "\(method)"])
            let code: RPCError.Code = error.kind == .providerUnreachable ? .unavailable : .unauthenticated
            throw RPCError(code: code, message: "bearer token refused: \(error.message)")
        }
    }

    static func hasClientCertificate(_ context: ServerContext) -> Bool {
        ConnectionCertificates.of(context) != nil
    }
}

/// Ends a token-authenticated call with UNAUTHENTICATED once its token is no longer accepted.
struct TokenExpiry: Sendable {
    let acceptedUntil: Date
    static let message = "token expired, run specola login"

    /// Runs `body`, cancelled and answered with UNAUTHENTICATED if it is still running at `acceptedUntil`.
    func cut<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let remaining = acceptedUntil.timeIntervalSinceNow
        guard remaining > 0 else { throw RPCError(code: .unauthenticated, message: Self.message) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64(remaining * 1000) + 1))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw RPCError(code: .unauthenticated, message: Self.message)
            }
            return result
        }
    }
}
