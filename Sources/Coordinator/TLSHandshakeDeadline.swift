import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Closes a connection whose TLS handshake has not finished within `timeout`, so silent or
/// stalled sockets cannot pile up on a listener. Sits right after the TLS handler and leaves
/// the pipeline once the handshake is done.
final class TLSHandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    static let defaultTimeout = TimeAmount.seconds(10)

    private let timeout: TimeAmount
    /// What was closed, for the log line: "a direct Raft connection".
    private let connection: String
    private let logger: Logger
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount = TLSHandshakeDeadline.defaultTimeout, connection: String, logger: Logger) {
        self.timeout = timeout
        self.connection = connection
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let channel = context.channel
        let (logger, connection, timeout) = (logger, connection, timeout)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            logger.warning("closed \(connection)", metadata: [
                "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                "reason": "no TLS handshake within \(timeout.nanoseconds / 1_000_000) ms",
            ])
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if case .handshakeCompleted = event as? TLSUserEvent {
            deadline?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }
}
