import CooperativePoolWatch
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
}
