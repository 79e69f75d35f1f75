import NIOCore

/// Sends an answer the moment it is complete when no other call is open on its connection.
///
/// grpc holds every flush for up to 100 µs to batch the answers of many concurrent calls into
/// one write (`FlushCoalescing`). With one call at a time there is nothing to batch, and the
/// wait is added to every call (a CLI command, a lone writer). This handler sits between TLS and
/// HTTP/2 and reads only frame headers: streams the client opened, and the server's frames that
/// end a stream. When the last open call's answer has been written in full, it flushes at once;
/// while other calls are open it leaves batching to grpc. It never holds, drops or reorders
/// anything, so a mistake here costs at most a flush or a 100 µs wait.
final class FlushFinishedAnswers: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Calls the client started and the server has not finished.
    private var openStreams: Set<UInt32> = []
    private var inbound = HTTP2FrameHeaders(prefaceBytes: HTTP2FrameHeaders.clientPrefaceLength)
    private var outbound = HTTP2FrameHeaders(prefaceBytes: 0)
    /// A stream ended in what was written, so the connection may have fallen idle.
    private var answerFinished = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbound.scan(unwrapInboundIn(data)) { frame in
            switch frame.type {
            case HTTP2FrameHeaders.headers where frame.stream % 2 == 1: openStreams.insert(frame.stream)
            case HTTP2FrameHeaders.resetStream: openStreams.remove(frame.stream)
            default: break
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let bytes) = unwrapOutboundIn(data) {
            outbound.scan(bytes) { frame in
                let ends = frame.type == HTTP2FrameHeaders.resetStream
                    || ((frame.type == HTTP2FrameHeaders.headers || frame.type == HTTP2FrameHeaders.data) && frame.flags & 0x1 != 0)
                if ends, openStreams.remove(frame.stream) != nil { answerFinished = true }
            }
        } else {
            outbound.lost()  // a file region: frame boundaries unknown from here on
        }
        context.write(data, promise: promise)
        if answerFinished && openStreams.isEmpty && outbound.atFrameBoundary {
            answerFinished = false
            context.flush()
        }
    }
}

/// Follows the frame headers in one direction of an HTTP/2 connection's byte stream (RFC 9113
/// §4.1: 24-bit length, type, flags, 31-bit stream id), skipping payloads without copying.
struct HTTP2FrameHeaders {
    static let clientPrefaceLength = 24  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let resetStream: UInt8 = 0x3

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
    }

    private var prefaceLeft: Int
    private var header: [UInt8] = []
    private var payloadLeft = 0
    private var broken = false

    init(prefaceBytes: Int) {
        prefaceLeft = prefaceBytes
        header.reserveCapacity(9)
    }

    /// Whether everything scanned so far ends on a whole frame.
    var atFrameBoundary: Bool { !broken && prefaceLeft == 0 && payloadLeft == 0 && header.isEmpty }

    /// Stops following: nothing more is reported.
    mutating func lost() { broken = true }

    mutating func scan(_ buffer: ByteBuffer, _ onFrame: (Frame) -> Void) {
        guard !broken else { return }
        buffer.withUnsafeReadableBytes { bytes in
            var at = 0
            while at < bytes.count {
                if prefaceLeft > 0 {
                    let skip = min(prefaceLeft, bytes.count - at)
                    prefaceLeft -= skip
                    at += skip
                } else if payloadLeft > 0 {
                    let skip = min(payloadLeft, bytes.count - at)
                    payloadLeft -= skip
                    at += skip
                } else {
                    header.append(bytes[at])
                    at += 1
                    guard header.count == 9 else { continue }
                    payloadLeft = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                    let stream = (UInt32(header[5]) << 24 | UInt32(header[6]) << 16 | UInt32(header[7]) << 8 | UInt32(header[8])) & 0x7fff_ffff
                    onFrame(Frame(type: header[3], flags: header[4], stream: stream))
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
    }
}
