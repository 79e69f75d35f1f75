import Foundation
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.runsOffThePool, .watchesCooperativePool) struct OutboxTests {
    @Test func sequenceNumbersNeverRepeatAcrossRestartsAndAcks() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let outbox = try Outbox(path: dir.file("outbox.sqlite"))
            for _ in 0..<3 { _ = try outbox.append(facts: .init(), full: false, collectedAtUnixMs: 1) }
            try outbox.acknowledge(through: 3)
            #expect(try outbox.pendingCount() == 0)
        }
        let reopened = try Outbox(path: dir.file("outbox.sqlite"))
        let next = try reopened.append(facts: .init(), full: true, collectedAtUnixMs: 2)
        #expect(next.seq == 4)
    }

    @Test func unacknowledgedReportsSurviveAndComeBackInOrder() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let outbox = try Outbox(path: dir.file("outbox.sqlite"))
            for i in 1...5 {
                _ = try outbox.append(facts: .with { $0.capacity.cpuCores = UInt32(i) }, full: i == 1, collectedAtUnixMs: Int64(i))
            }
            try outbox.acknowledge(through: 2)
        }
        let reopened = try Outbox(path: dir.file("outbox.sqlite"))
        let pending = try reopened.pending(after: 0)
        #expect(pending.map(\.seq) == [3, 4, 5])
        #expect(pending.map(\.facts.capacity.cpuCores) == [3, 4, 5])
        #expect(try reopened.pending(after: 4).map(\.seq) == [5])
    }

    @Test func anInstructionRunsAtMostOnce() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let outbox = try Outbox(path: dir.file("outbox.sqlite"))
        #expect(try outbox.claimInstruction("i-1") == nil)
        try outbox.recordInstruction(.with { $0.instructionID = "i-1"; $0.ok = true; $0.message = "done" })
        let again = try #require(try outbox.claimInstruction("i-1"))
        #expect(again.duplicate)
        #expect(again.message == "done")
        let reopened = try Outbox(path: dir.file("outbox.sqlite"))
        #expect(try reopened.claimInstruction("i-1") != nil)
    }
}
