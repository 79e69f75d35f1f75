import CooperativePoolWatch
import Foundation
import SpecolaProtocol
import Testing
import SpecolaProcesses

/// A task's output is kept as a rolling tail: memory stays bounded whatever the task prints.
@Suite(.watchesCooperativePool) struct RollingTailTests {
    @Test func aTailKeepsTheLastBytesAndCountsWhatItDropped() {
        var tail = RollingTail(limit: 64 * 1024)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024)
        for _ in 0..<1_600 { tail.append(chunk) }  // 100 MiB
        tail.append(Array("the-end\n".utf8))
        #expect(tail.bytes.count == 64 * 1024)
        #expect(tail.dropped == 1_600 * 64 * 1024 + 8 - 64 * 1024)
        #expect(String(decoding: tail.bytes.suffix(8), as: UTF8.self) == "the-end\n")
    }

    @Test func aChunkLargerThanTheLimitKeepsOnlyItsEnd() {
        var tail = RollingTail(limit: 4)
        tail.append(Array("abcdefgh".utf8))
        #expect(String(decoding: tail.bytes, as: UTF8.self) == "efgh")
        #expect(tail.dropped == 4)
    }
}
