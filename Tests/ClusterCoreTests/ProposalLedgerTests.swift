import CooperativePoolWatch
import Foundation
import SpecolaWire
import Testing
@testable import SpecolaClusterCore

/// The proposal ledger answers "did my write happen?" for a replica that lost the entries.
@Suite(.watchesCooperativePool) struct ProposalLedgerTests {
    static func id(_ n: Int) -> Data { Data("proposal-\(n)".utf8) }

    @Test func aRecordedProposalIsAppliedAndAReplacedOneIsNot() {
        var ledger = ProposalLedger()
        ledger.record(Self.id(1), index: 5, at: 1_000)
        ledger.record(Self.id(2), index: 7, at: 1_001)
        #expect(ledger.answer(for: Self.id(1), proposedAt: 5, appliedThrough: 9) == .applied(at: 5))
        // Proposed at 6, where another command (or none with an id) was applied instead.
        #expect(ledger.answer(for: Self.id(3), proposedAt: 6, appliedThrough: 9) == .notApplied)
        // Beyond what was applied nothing is decided yet.
        #expect(ledger.answer(for: Self.id(4), proposedAt: 10, appliedThrough: 9) == .unknown)
    }

    @Test func forgottenProposalsAreUnknownNeverNotApplied() {
        var ledger = ProposalLedger(capacity: 3, windowMs: 1_000_000)
        for n in 1...5 { ledger.record(Self.id(n), index: UInt64(10 + n), at: Int64(n)) }
        #expect(ledger.count == 3)
        #expect(ledger.completeFrom == 13)
        #expect(ledger.answer(for: Self.id(1), proposedAt: 11, appliedThrough: 15) == .unknown)
        #expect(ledger.answer(for: Self.id(9), proposedAt: 12, appliedThrough: 15) == .unknown)
        #expect(ledger.answer(for: Self.id(3), proposedAt: 13, appliedThrough: 15) == .applied(at: 13))
        #expect(ledger.answer(for: Self.id(9), proposedAt: 14, appliedThrough: 15) == .notApplied)
    }

    @Test func oldProposalsLeaveByProposalTime() {
        var ledger = ProposalLedger(capacity: 100, windowMs: 1_000)
        ledger.record(Self.id(1), index: 1, at: 0)
        ledger.record(Self.id(2), index: 2, at: 500)
        ledger.record(Self.id(3), index: 3, at: 1_600)
        #expect(ledger.count == 1)
        #expect(ledger.completeFrom == 3)
    }

    @Test func manyProposalsStayBoundedAndAnswerable() {
        var ledger = ProposalLedger(capacity: 1_000, windowMs: 1_000_000)
        for n in 1...20_000 { ledger.record(Self.id(n), index: UInt64(n), at: Int64(n)) }
        #expect(ledger.count == 1_000)
        #expect(ledger.answer(for: Self.id(20_000), proposedAt: 20_000, appliedThrough: 20_000) == .applied(at: 20_000))
        #expect(ledger.answer(for: Self.id(19_001), proposedAt: 19_001, appliedThrough: 20_000) == .applied(at: 19_001))
        #expect(ledger.answer(for: Self.id(19_000), proposedAt: 19_000, appliedThrough: 20_000) == .unknown)
    }

    @Test func theLedgerTravelsInTheSnapshot() throws {
        var state = ClusterState()
        let put = Specola_V1_Command.with {
            $0.proposalID = Self.id(1)
            $0.proposedAtUnixMs = 42
            $0.kvPut = .with { $0.key = "k"; $0.value = Data("v".utf8) }
        }
        _ = state.apply(put, at: 4)
        var image = state.snapshot()
        image.appliedIndex = 4
        let restored = try ClusterState(snapshot: Specola_V1_ClusterSnapshot(serializedBytes: image.serializedBytes() as [UInt8]))
        #expect(restored.proposals == state.proposals)
        #expect(restored.proposals.answer(for: Self.id(1), proposedAt: 4, appliedThrough: 4) == .applied(at: 4))
        #expect(restored.proposals.answer(for: Self.id(2), proposedAt: 3, appliedThrough: 4) == .notApplied)
    }

    @Test func aSnapshotFromBeforeTheLedgerKnowsNothingUpToItsIndex() throws {
        var image = ClusterState().snapshot()
        image.appliedIndex = 50
        image.appliedProposalsCompleteFrom = 0
        let restored = try ClusterState(snapshot: image)
        #expect(restored.proposals.answer(for: Self.id(1), proposedAt: 50, appliedThrough: 50) == .unknown)
        #expect(restored.proposals.completeFrom == 51)
    }
}
