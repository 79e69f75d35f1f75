import CooperativePoolWatch
import Foundation
import GRPCCore
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// What one replica queues for another: bounded in bytes, sent in byte-bounded batches.
@Suite(.watchesCooperativePool) struct PeerQueueTests {
    @Test func aBatchHoldsAtMostItsBytesButAlwaysOneMessage() {
        let queue = PeerQueue()
        let huge = [UInt8](repeating: 1, count: PeerQueue.batchBytes + 10)
        let small = [UInt8](repeating: 2, count: 1 << 20)
        queue.enqueue([huge, small, small])
        #expect(queue.takeBatch().map(\.count) == [huge.count], "a message over the batch size goes alone")
        #expect(queue.takeBatch().map(\.count) == [small.count, small.count])
        #expect(queue.takeBatch().isEmpty)
    }

    @Test func theOldestMessagesGoWhenThePeerFallsTooFarBehind() {
        let queue = PeerQueue()
        let megabyte = 1 << 20
        for index in 0..<(PeerQueue.bytesLimit / megabyte + 10) {
            queue.enqueue([[UInt8](repeating: UInt8(truncatingIfNeeded: index), count: megabyte)])
        }
        var kept: [[UInt8]] = []
        while true {
            let batch = queue.takeBatch()
            if batch.isEmpty { break }
            #expect(batch.reduce(0) { $0 + $1.count } <= PeerQueue.batchBytes)
            kept += batch
        }
        #expect(kept.count * megabyte <= PeerQueue.bytesLimit)
        #expect(kept.last?.first == UInt8(truncatingIfNeeded: PeerQueue.bytesLimit / megabyte + 9), "the newest must be kept")
    }

    /// A message over the batch size (a large snapshot) travels in pieces and is whole again on arrival.
    @Test(.cpuBoundOffThePool) func aMessageInPiecesIsJoinedExactlyOnce() async throws {
        var message = Data(count: (10 << 20) + 3)
        for offset in stride(from: 0, to: message.count, by: 4_099) { message[offset] = UInt8(truncatingIfNeeded: offset / 4_099 + 1) }
        let pieces = PeerQueue.pieces(of: message.count)
        #expect(pieces.count == 3)
        #expect(pieces.allSatisfy { $0.count <= PeerQueue.chunkBytes })
        var assembler = ChunkAssembler()
        var joined: [Data] = []
        for piece in pieces {
            if let whole = try assembler.add(message[piece], total: UInt64(message.count)) { joined.append(whole) }
        }
        #expect(joined == [message])
        // The assembler is ready for the next message.
        #expect(try assembler.add(Data([1, 2]), total: 2) == Data([1, 2]))
    }

    @Test func piecesThatDoNotAddUpAreRefused() throws {
        var assembler = ChunkAssembler()
        #expect(try assembler.add(Data(count: 10), total: 25) == nil)
        #expect(throws: RPCError.self) { try assembler.add(Data(count: 10), total: 30) }
        var overflow = ChunkAssembler()
        #expect(throws: RPCError.self) { try overflow.add(Data(count: 10), total: 5) }
        var huge = ChunkAssembler()
        #expect(throws: RPCError.self) { try huge.add(Data(count: 1), total: UInt64(ChunkAssembler.maxMessageBytes) + 1) }
    }

    /// A heartbeat queued behind megabytes of appends goes out first.
    @Test func controlMessagesOvertakeQueuedLogData() {
        let queue = PeerQueue()
        let append = [UInt8](repeating: 1, count: 1 << 20)
        queue.enqueue([append, append])
        queue.enqueue([[9]], urgent: true)
        #expect(queue.takeBatch() == [[9]])
        #expect(queue.takeBatch().count == 2)
        #expect(queue.takeBatch().isEmpty)
    }
}
