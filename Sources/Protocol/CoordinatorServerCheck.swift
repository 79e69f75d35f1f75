import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// Why a client hung up on the server it dialled, before sending anything.
public struct ServerRefusal: Error, Sendable, CustomStringConvertible {
    /// The host the client dialled.
    public var server: String
    /// What was wrong with the server's certificate, and what to do about it.
    public var reason: String

    public init(server: String, reason: String) {
        self.server = server
        self.reason = reason
    }

    public var description: String { "refused the server at \(server): \(reason)" }
}

/// The client's half of mutual TLS: the server must present a certificate from one of the
/// CAs in the CA file (a bundle may hold several), valid now, naming the host dialled, and
/// carrying a coordinator identity with serverAuth. Only coordinators serve; a node or user
/// certificate that answers on a coordinator's address is refused, whatever its chain.
///
/// It replaces BoringSSL's verification (NIOSSL's custom callback), so it checks the whole
/// chain itself with swift-certificates' RFC 5280 and RFC 6125 policies.
public struct CoordinatorServerCheck: Sendable {
    public let caPath: String
    public let serverHost: String

    public init(caPath: String, serverHost: String) {
        self.caPath = caPath
        self.serverHost = serverHost
    }

    /// The identity the server proved, or the reason it is refused.
    public func verify(presented: [Certificate], now: Date = Date()) async -> Result<(Identity, [Certificate]), ServerRefusal> {
        guard let leaf = presented.first else { return .failure(refusal("it presented no certificate")) }
        let roots: [Certificate]
        do {
            roots = try CertificateBundle.load(path: caPath)
        } catch {
            return .failure(refusal("cannot read the CA file: \(error)"))
        }
        let isIP = PKI.ipAddressBytes(serverHost) != nil
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(validationTime: now)
            ServerIdentityPolicy(serverHostname: isIP ? nil : serverHost, serverIP: isIP ? serverHost : nil)
        }
        let chain: [Certificate]
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(presented.dropFirst())) {
        case .validCertificate(let validated):
            chain = Array(validated)
        case .couldNotValidate(let failures):
            let why = failures.first.map { "\($0.policyFailureReason)" } ?? "no chain to a trusted CA"
            return .failure(refusal(
                "its certificate (subject \(leaf.subject)) does not verify against the CA in \(caPath): \(why); "
                    + "check --addr and that both sides use this cluster's CA"))
        }
        guard let identity = PKI.identity(of: leaf) else {
            return .failure(refusal("its certificate (subject \(leaf.subject)) carries no Specola identity; only coordinators serve"))
        }
        guard identity.role == .coordinator else {
            return .failure(refusal(
                "it presents \(identity), not a coordinator certificate; only coordinators serve, so check --addr or the agent's coordinators list"))
        }
        let serverAuth = (try? leaf.extensions.extendedKeyUsage)??.contains(.serverAuth) ?? false
        guard serverAuth else {
            return .failure(refusal("\(identity)'s certificate lacks the serverAuth usage; re-issue it with `specola pki issue --role coordinator`"))
        }
        return .success((identity, chain))
    }

    private func refusal(_ reason: String) -> ServerRefusal {
        ServerRefusal(server: serverHost, reason: reason)
    }

    /// The NIOSSL callback: runs `verify` off the event loop and reports a refusal to `onRefusal`.
    public func callback(onRefusal: @escaping @Sendable (ServerRefusal) -> Void)
        -> @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) -> Void
    {
        { presented, promise in
            promise.completeWithTask {
                let parsed: [Certificate]
                do {
                    parsed = try presented.map { try Certificate(derEncoded: $0.toDERBytes()) }
                } catch {
                    onRefusal(refusal("its certificate does not parse: \(error)"))
                    return .failed
                }
                switch await verify(presented: parsed) {
                case .success(let (_, chain)):
                    return .certificateVerified(VerificationMetadata(NIOSSL.ValidatedCertificateChain(try nioCertificates(chain))))
                case .failure(let refusal):
                    onRefusal(refusal)
                    return .failed
                }
            }
        }
    }
}

/// The server's half of mutual TLS: the client's chain must lead to one of the CAs in the CA file,
/// read at every handshake so a CA bundle swapped in during a rotation counts at once. Who the
/// client is, and what it may do, is decided per call (`CallerIdentity`, the deny list).
public struct ClientChainCheck: Sendable {
    public let caPath: String

    public init(caPath: String) { self.caPath = caPath }

    public func verify(presented: [Certificate], now: Date = Date()) async -> [Certificate]? {
        guard let leaf = presented.first, let roots = try? CertificateBundle.load(path: caPath) else { return nil }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy(validationTime: now) }
        guard case .validCertificate(let chain) = await verifier.validate(leaf: leaf, intermediates: CertificateStore(presented.dropFirst()))
        else { return nil }
        return Array(chain)
    }

    /// The NIOSSL callback. It hands no validated chain to the connection: gRPC would parse that
    /// whole chain again for every call on it, and callers are identified by their leaf alone.
    public func callback() -> @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResultWithMetadata>) -> Void {
        { presented, promise in
            promise.completeWithTask {
                guard let parsed = try? presented.map({ try Certificate(derEncoded: $0.toDERBytes()) }),
                    await verify(presented: parsed) != nil
                else { return .failed }
                return .certificateVerified(VerificationMetadata(nil))
            }
        }
    }
}

private func nioCertificates(_ chain: [Certificate]) throws -> [NIOSSLCertificate] {
    try chain.map { certificate in
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }
}

/// A PEM file of one or more certificates (a CA bundle holds the old and the new CA during a rotation).
public enum CertificateBundle {
    public static func load(path: String) throws -> [Certificate] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TLSFileError(path: path, problem: "cannot be read; check the path and permissions")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw TLSFileError(path: path, problem: "is not PEM (\(error)); it must hold one or more CERTIFICATE blocks")
        }
        var certificates: [Certificate] = []
        for (index, document) in documents.enumerated() {
            do {
                certificates.append(try Certificate(pemDocument: document))
            } catch {
                throw TLSFileError(path: path, problem: "block \(index + 1) is not a valid certificate (\(error))")
            }
        }
        guard !certificates.isEmpty else {
            throw TLSFileError(path: path, problem: "holds no certificate; it must hold one or more CERTIFICATE blocks")
        }
        return certificates
    }
}
