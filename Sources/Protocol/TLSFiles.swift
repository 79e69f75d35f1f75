import Foundation
import GRPCNIOTransportHTTP2
import NIOCertificateReloading
import X509

/// The three PEM files every Specola program needs for mutual TLS: the cluster
/// CA, its own certificate and its own private key.
public struct TLSFiles: Sendable, Hashable, Decodable {
    public var ca: String
    public var cert: String
    public var key: String

    public init(ca: String, cert: String, key: String) {
        self.ca = ca
        self.cert = cert
        self.key = key
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case ca, cert, key }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ca = try c.decode(String.self, forKey: .ca)
        cert = try c.decode(String.self, forKey: .cert)
        key = try c.decode(String.self, forKey: .key)
    }

    /// Reads and checks all three files, so a bad file fails at start-up with
    /// a message naming it instead of failing later inside a handshake.
    @discardableResult
    public func validate(now: Date = Date()) throws -> Identity {
        let caCerts = try CertificateBundle.load(path: ca)
        let leaf = try Self.loadCertificate(cert, what: "certificate")
        guard FileManager.default.isReadableFile(atPath: key),
            let keyPEM = try? String(contentsOfFile: key, encoding: .utf8),
            keyPEM.contains("PRIVATE KEY")
        else {
            throw TLSFileError(path: key, problem: "is not a readable PEM private key; re-issue with `specola pki issue`")
        }
        if leaf.notValidAfter < now {
            throw TLSFileError(path: cert, problem: "expired at \(leaf.notValidAfter); issue a new one with `specola pki issue`")
        }
        // A CA's name is no proof: another CA may carry the same one. Its key must have signed the leaf.
        if !caCerts.contains(where: { $0.subject == leaf.issuer && $0.publicKey.isValidSignature(leaf.signature, for: leaf) }) {
            throw TLSFileError(path: cert, problem: "was not issued by the CA in \(ca) (issuer \(leaf.issuer)); use a certificate from this cluster's CA")
        }
        guard let identity = PKI.identity(of: leaf) else {
            throw TLSFileError(path: cert, problem: "has no Specola identity (subject \(leaf.subject)); issue it with `specola pki issue`")
        }
        return identity
    }

    static func loadCertificate(_ path: String, what: String) throws -> Certificate {
        guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TLSFileError(path: path, problem: "\(what) cannot be read; check the path and permissions")
        }
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw TLSFileError(path: path, problem: "\(what) is not a valid PEM certificate (\(error))")
        }
    }

    /// Server side: a client certificate from a CA in the CA file is required. The file is read at
    /// every handshake (`ClientChainCheck`), so a CA bundle swapped in during a rotation takes
    /// effect at once; with `reloader`, so does a re-issued server certificate.
    public func serverSecurity(reloader: (any CertificateReloader)? = nil) -> HTTP2ServerTransport.Posix.TransportSecurity {
        let check = ClientChainCheck(caPath: ca)
        return .mTLS(
            certificateChain: [.file(path: cert, format: .pem)],
            privateKey: .file(path: key, format: .pem)
        ) { config in
            config.trustRoots = .certificates([.file(path: ca, format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
            config.customVerificationCallback = check.callback()
            config.certificateReloader = reloader
        }
    }

    public var serverSecurity: HTTP2ServerTransport.Posix.TransportSecurity { serverSecurity() }

    /// Server side of the bearer-token listener: server-authenticated TLS only; no client
    /// certificate is asked for, so every call there must carry a token (`BearerTokenInterceptor`).
    public func tokenServerSecurity(reloader: (any CertificateReloader)? = nil) -> HTTP2ServerTransport.Posix.TransportSecurity {
        .tls(certificateChain: [.file(path: cert, format: .pem)], privateKey: .file(path: key, format: .pem)) { config in
            config.clientCertificateVerification = .noVerification
            config.certificateReloader = reloader
        }
    }

    /// Client side: the server must present a coordinator certificate from the cluster CA
    /// that names `serverHost` (see `CoordinatorServerCheck`); `onRefusal` hears why one was refused,
    /// because the handshake failure the caller sees does not say.
    public func clientSecurity(
        serverHost: String, reloader: (any CertificateReloader)? = nil,
        onRefusal: @escaping @Sendable (ServerRefusal) -> Void = { _ in }
    ) -> HTTP2ClientTransport.Posix.TransportSecurity {
        let check = CoordinatorServerCheck(caPath: ca, serverHost: serverHost)
        return .mTLS(
            certificateChain: [.file(path: cert, format: .pem)],
            privateKey: .file(path: key, format: .pem)
        ) { config in
            config.trustRoots = .certificates([.file(path: ca, format: .pem)])
            config.serverCertificateVerification = .fullVerification
            config.customVerificationCallback = check.callback(onRefusal: onRefusal)
            config.certificateReloader = reloader
        }
    }
}

extension TLSFiles {
    /// Client side without a client certificate (a user signed in with a bearer token): the
    /// server is checked exactly as with `clientSecurity`; only the CA file is read.
    public static func serverAuthenticatedClientSecurity(
        ca: String, serverHost: String, onRefusal: @escaping @Sendable (ServerRefusal) -> Void = { _ in }
    ) -> HTTP2ClientTransport.Posix.TransportSecurity {
        let check = CoordinatorServerCheck(caPath: ca, serverHost: serverHost)
        return .tls { config in
            config.trustRoots = .certificates([.file(path: ca, format: .pem)])
            config.serverCertificateVerification = .fullVerification
            config.customVerificationCallback = check.callback(onRefusal: onRefusal)
        }
    }
}

/// A TLS file that cannot be used, and why.
public struct TLSFileError: Error, CustomStringConvertible {
    public var path: String
    public var problem: String
    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
    public var description: String { "TLS file \(path) \(problem)" }
}
