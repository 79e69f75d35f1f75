import NIOCertificateReloading
import NIOSSL

extension TLSFiles {
    /// Server side of the direct Raft channel: the same mutual TLS as the gRPC port (a client
    /// certificate chaining to the CA file, read at every handshake; see `serverSecurity`).
    /// Who the client is, is checked per connection by the channel itself.
    public func peerChannelServerConfiguration(reloader: (any CertificateReloader)? = nil) throws -> TLSConfiguration {
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
