import SpecolaAlerting
import NIOCore
import NIOPosix
import NIOSSL

/// Runs `operation`, failing with `timeoutError()` when it has not finished within `limit`.
/// The operation is cancelled then; NIO's async channels end their reads on cancellation.
func withDeadline<T: Sendable>(
    _ limit: Duration, timeoutError: @escaping @Sendable () -> DeliveryError,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw timeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A client TLS context that trusts the system roots, or only `caFile` when one is given.
func makeClientTLSContext(caFile: String?, purpose: String) throws(DeliveryError) -> NIOSSLContext {
    var configuration = TLSConfiguration.makeClientConfiguration()
    if let caFile, !caFile.isEmpty { configuration.trustRoots = .file(caFile) }
    do {
        return try NIOSSLContext(configuration: configuration)
    } catch {
        let source = caFile.map { "CA file \($0)" } ?? "the system trust store"
        throw DeliveryError(.configuration, "\(purpose): cannot load \(source): \(error)", retryable: false)
    }
}

/// SNI and certificate names take a DNS name; for an IP literal NIOSSL checks the peer's address instead.
func tlsServerName(_ host: String) -> String? {
    (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
}

/// Turns an error from NIO or NIOSSL into one an operator can act on, naming `peer`
/// (`smtp mail.example.org:587`, `webhook chat (hooks.example.org)`).
func deliveryError(_ error: any Error, peer: String) -> DeliveryError {
    switch error {
    case let error as DeliveryError:
        return error
    case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
        return DeliveryError(
            .tls, "\(peer): TLS handshake failed: \(error); check that the CA file trusts the server's certificate "
                + "and that the certificate names the configured host", retryable: false)
    case is NIOConnectionError, is IOError, ChannelError.connectTimeout:
        return DeliveryError(.connect, "\(peer): cannot connect: \(error)", retryable: true)
    case ChannelError.eof, ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed:
        return DeliveryError(.protocolViolation, "\(peer) closed the connection before answering", retryable: true)
    case is CancellationError:
        return DeliveryError(.cancelled, "\(peer): delivery cancelled", retryable: false)
    default:
        return DeliveryError(.protocolViolation, "\(peer): \(error)", retryable: true)
    }
}
