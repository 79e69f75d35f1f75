import NIOCore
import NIOEmbedded
import Testing
@testable import SpecolaCoordinator

/// When the cluster port sends an answer without waiting for grpc's flush batching: on an
/// embedded channel, with HTTP/2 frames written byte for byte as a client and grpc write them.
@Suite struct FlushFinishedAnswersTests {
    static let endStream: UInt8 = 0x1

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: Int) -> [UInt8] {
        [UInt8(payload >> 16 & 0xff), UInt8(payload >> 8 & 0xff), UInt8(payload & 0xff), type, flags,
         UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
            + [UInt8](repeating: 0xab, count: payload)
    }

    static func request(stream: UInt32) -> [UInt8] {
        frame(type: HTTP2FrameHeaders.headers, flags: 0x4, stream: stream, payload: 40)
            + frame(type: HTTP2FrameHeaders.data, flags: endStream, stream: stream, payload: 30)
    }

    /// An answer as grpc writes it: headers, message, trailers that end the stream.
    static func answer(stream: UInt32) -> [[UInt8]] {
        [frame(type: HTTP2FrameHeaders.headers, flags: 0x4, stream: stream, payload: 20),
         frame(type: HTTP2FrameHeaders.data, stream: stream, payload: 300),
         frame(type: HTTP2FrameHeaders.headers, flags: 0x4 | endStream, stream: stream, payload: 12)]
    }

    func connection() throws -> (EmbeddedChannel, OutboundCounter) {
        let channel = EmbeddedChannel()
        let counter = OutboundCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(FlushFinishedAnswers())
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        try channel.writeInbound(ByteBuffer(bytes: preface + Self.frame(type: 0x4, stream: 0, payload: 18)))
        return (channel, counter)
    }

    func write(_ bytes: [UInt8], to channel: EmbeddedChannel) {
        channel.write(IOData.byteBuffer(ByteBuffer(bytes: bytes)), promise: nil)
    }

    @Test func theOnlyOpenCallsAnswerIsFlushedOnceItsLastFrameIsWritten() throws {
        let (channel, counter) = try connection()
        try channel.writeInbound(ByteBuffer(bytes: Self.request(stream: 1)))
        let parts = Self.answer(stream: 1)
        write(parts[0], to: channel)
        write(parts[1], to: channel)
        #expect(counter.flushes == 0, "the answer is not complete yet")
        // The trailers' header and block arrive in two writes: no flush between them.
        write(Array(parts[2].prefix(5)), to: channel)
        write(Array(parts[2][5..<11]), to: channel)
        #expect(counter.flushes == 0, "flushed in the middle of the last frame")
        write(Array(parts[2].dropFirst(11)), to: channel)
        #expect(counter.flushes == 1)
        _ = try channel.finish()
    }

    @Test func whileOtherCallsAreOpenBatchingIsLeftToGrpc() throws {
        let (channel, counter) = try connection()
        // Two requests in one read, the second split across reads.
        let both = Self.request(stream: 1) + Self.request(stream: 3)
        try channel.writeInbound(ByteBuffer(bytes: Array(both.prefix(100))))
        try channel.writeInbound(ByteBuffer(bytes: Array(both.dropFirst(100))))
        for part in Self.answer(stream: 3) { write(part, to: channel) }
        #expect(counter.flushes == 0, "stream 1 is still open")
        for part in Self.answer(stream: 1) { write(part, to: channel) }
        #expect(counter.flushes == 1, "the last open call finished")
        // Server frames that end no client call (settings, ping answers) never flush.
        write(Self.frame(type: 0x6, flags: 0x1, stream: 0, payload: 8), to: channel)
        #expect(counter.flushes == 1)
        _ = try channel.finish()
    }

    @Test func aCallTheClientCancelledNoLongerCountsAsOpen() throws {
        let (channel, counter) = try connection()
        try channel.writeInbound(ByteBuffer(bytes: Self.request(stream: 1) + Self.request(stream: 3)))
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(type: HTTP2FrameHeaders.resetStream, stream: 3, payload: 4)))
        for part in Self.answer(stream: 1) { write(part, to: channel) }
        #expect(counter.flushes == 1)
        _ = try channel.finish()
    }

    @Test func everyByteGoesThroughUnchangedAndInOrder() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(ByteBuffer(bytes: Self.request(stream: 1)))
        let written = Self.answer(stream: 1).flatMap { $0 }
        write(Array(written.prefix(7)), to: channel)
        write(Array(written.dropFirst(7)), to: channel)
        channel.flush()
        var sent: [UInt8] = []
        while let part = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = part else { Issue.record("not a byte buffer"); break }
            sent += buffer.readableBytesView
        }
        #expect(sent == written)
        var received: [UInt8] = []
        while let part = try channel.readInbound(as: ByteBuffer.self) { received += part.readableBytesView }
        #expect(received.suffix(Self.request(stream: 1).count) == ArraySlice(Self.request(stream: 1)))
        _ = try channel.finish()
    }
}
