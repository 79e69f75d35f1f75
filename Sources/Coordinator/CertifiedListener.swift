import GRPCCore
import Logging
import GRPCNIOTransportHTTP2
import NIOCertificateReloading
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SpecolaProtocol
import Synchronization
import X509

/// What a client certificate checked at a TLS handshake says, read once: the Specola identity
/// it names (nil if none) and its serial number as the deny list writes it.
struct PresentedCertificate: Sendable {
    let identity: Identity?
    let serial: String

    init(_ certificate: Certificate) {
        identity = PKI.identity(of: certificate)
        serial = DenyList.serial(of: certificate)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The certificate the peer presented in this connection's completed TLS handshake, if any.
    func presentedCertificate() -> PresentedCertificate? {
        guard let presented = (try? nioSSL_peerCertificate()) ?? nil,
            let certificate = try? Certificate(derEncoded: presented.toDERBytes())
        else { return nil }
        return PresentedCertificate(certificate)
    }
}

/// The client certificate of each open connection to the cluster plane's port, parsed once when
/// its TLS handshake completes. grpc's Posix transport fetched and parsed it again for every call,
/// with two hops to the connection's event loop: about 8% of a leader's CPU at 64 clients.
/// Calls find theirs by the connection's two addresses, which identify it among open ones.
enum ConnectionCertificates {
    private static let open = Mutex<[String: PresentedCertificate]>([:])

    /// The certificate the caller of this call presented, or nil (a bearer-token call, or none).
    static func of(_ context: ServerContext) -> PresentedCertificate? {
        if let presented = open.withLock({ $0[key(local: context.localPeer, remote: context.remotePeer)] }) {
            return presented
        }
        // A server on grpc's own transport (tests build one) carries it in the context.
        return (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate.map(PresentedCertificate.init)
    }

    static func record(_ presented: PresentedCertificate, for channel: any Channel) {
        guard let key = key(channel) else { return }
        open.withLock { $0[key] = presented }
        channel.closeFuture.whenComplete { _ in _ = open.withLock { $0.removeValue(forKey: key) } }
    }

    /// Written as grpc writes `ServerContext.localPeer` and `remotePeer` (TCP only).
    static func key(_ channel: any Channel) -> String? {
        guard let local = peerName(channel.localAddress), let remote = peerName(channel.remoteAddress) else { return nil }
        return key(local: local, remote: remote)
    }

    static func peerName(_ address: NIOCore.SocketAddress?) -> String? {
        switch address {
        case .v4(let v4)?: return address?.port.map { "ipv4:\(v4.host):\($0)" }
        case .v6(let v6)?: return address?.port.map { "ipv6:[\(v6.host)]:\($0)" }
        default: return nil
        }
    }

    private static func key(local: String, remote: String) -> String { "\(local) \(remote)" }

    static var openCount: Int { open.withLock { $0.count } }
}

/// Records a connection's client certificate in `ConnectionCertificates` once its handshake
/// completes, then leaves the pipeline.
final class ClientCertificateRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted = event as? TLSUserEvent else {
            return context.fireUserInboundEventTriggered(event)
        }
        let sync = context.pipeline.syncOperations
        if let presented = sync.presentedCertificate() {
            ConnectionCertificates.record(presented, for: context.channel)
        }
        context.fireUserInboundEventTriggered(event)
        sync.removeHandler(self, promise: nil)
    }
}

/// The cluster plane's listener: TLS that demands a client certificate from the cluster CA
/// (checked by `ClientChainCheck` at every handshake), then grpc's HTTP/2 for each connection.
struct CertifiedListener: HTTP2ServerTransport.ListenerFactory {
    let eventLoopGroup: any EventLoopGroup
    let host: String
    let port: Int
    let tls: TLSFiles
    let reloader: (any CertificateReloader)?
    let handshakeTimeout: TimeAmount
    let logger: Logger

    init(host: String, port: Int, tls: TLSFiles, reloader: (any CertificateReloader)?,
         handshakeTimeout: TimeAmount = TLSHandshakeDeadline.defaultTimeout, logger: Logger,
         eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.tls = tls
        self.reloader = reloader
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let context: NIOSSLContext
        do {
            var configuration = try tls.mutualTLSServerConfiguration(reloader: reloader)
            configuration.applicationProtocols = ["grpc-exp", "h2"]
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw RuntimeError(code: .transportError,
                               message: "cannot load the coordinator's TLS files (\(tls.cert), \(tls.key), CA \(tls.ca)): \(error)", cause: error)
        }
        let check = ClientChainCheck(caPath: tls.ca).callback()
        let (handshakeTimeout, logger) = (handshakeTimeout, logger)
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { listenerConfigurator.configure(channel: $0) }
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context, customVerificationCallbackWithMetadata: check))
                    try sync.addHandler(TLSHandshakeDeadline(timeout: handshakeTimeout, connection: "a connection to the cluster port", logger: logger))
                    try sync.addHandler(ClientCertificateRecorder())
                    try sync.addHandler(FlushFinishedAnswers())
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: false))
                }
            }
    }
}
