import NIOCore

/// Counts the reads and flushes that pass it on their way to the socket, for pipeline tests on
/// an embedded channel.
final class OutboundCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0
    var flushes = 0

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}
