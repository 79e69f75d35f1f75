import NIOCertificateReloading
import NIOSSL

extension TLSFiles {
    /// Server side of mutual TLS on the cluster plane's port and the direct Raft channel: a client
    /// certificate chaining to the CA file (which each listener also checks at every handshake).
    /// Who the client is, is read per connection by the listener.
    public func mutualTLSServerConfiguration(reloader: (any CertificateReloader)? = nil) throws -> TLSConfiguration {
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        config.minimumTLSVersion = .tlsv12
        config.trustRoots = .file(ca)
        config.certificateVerification = .noHostnameVerification
        if let reloader { config.setCertificateReloader(reloader) }
        return config
    }

    /// Client side of the direct Raft channel: this replica's certificate; the server is
    /// checked by `CoordinatorServerCheck` as on the gRPC path.
    public func peerChannelClientConfiguration(reloader: (any CertificateReloader)? = nil) throws -> TLSConfiguration {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
        config.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        config.minimumTLSVersion = .tlsv12
        config.trustRoots = .file(ca)
        config.certificateVerification = .fullVerification
        if let reloader { config.setCertificateReloader(reloader) }
        return config
    }
}
