import Foundation
import SpecolaWire

/// The ids of the proposals the log applied lately, part of the replicated state (and of
/// every snapshot). A replica that caught up from a snapshot no longer has the entries its
/// clients' writes were in; the ledger still tells it which of those writes happened.
/// Bounded twice: by count, and by proposal time (a waiter gives up long before `window`).
public struct ProposalLedger: Sendable, Equatable {
    public static let defaultCapacity = 16_384
    public static let defaultWindowMs: Int64 = 120_000

    /// What the ledger can say about a proposal whose entry was at `index`.
    public enum Answer: Sendable, Equatable {
        case applied(at: UInt64)
        /// Its entry was replaced by another: it never committed and never will.
        case notApplied
        /// Too old for the ledger, or not yet reached: nothing certain can be said.
        case unknown
    }

    struct Record: Sendable, Equatable {
        var id: Data
        var index: UInt64
        var at: Int64
    }

    public let capacity: Int
    public let windowMs: Int64
    /// Oldest first; `head` records have been dropped and wait to be compacted away.
    private var records: [Record] = []
    private var head = 0
    private var indexByID: [Data: UInt64] = [:]
    /// Every proposal applied at or after this index is recorded.
    public private(set) var completeFrom: UInt64

    public init(capacity: Int = Self.defaultCapacity, windowMs: Int64 = Self.defaultWindowMs, completeFrom: UInt64 = 1) {
        self.capacity = capacity
        self.windowMs = windowMs
        self.completeFrom = completeFrom
    }

    /// The ledger a snapshot carries; one from before the ledger existed knows nothing up to its index.
    public init(snapshot: Specola_V1_ClusterSnapshot, capacity: Int = Self.defaultCapacity, windowMs: Int64 = Self.defaultWindowMs) {
        self.init(capacity: capacity, windowMs: windowMs,
                  completeFrom: snapshot.appliedProposalsCompleteFrom == 0 ? snapshot.appliedIndex + 1 : snapshot.appliedProposalsCompleteFrom)
        for proposal in snapshot.appliedProposals {
            records.append(Record(id: proposal.id, index: proposal.index, at: proposal.proposedAtUnixMs))
            indexByID[proposal.id] = proposal.index
        }
    }

    public var count: Int { records.count - head }

    public func write(into snapshot: inout Specola_V1_ClusterSnapshot) {
        snapshot.appliedProposals = records[head...].map { record in
            .with { $0.id = record.id; $0.index = record.index; $0.proposedAtUnixMs = record.at }
        }
        snapshot.appliedProposalsCompleteFrom = completeFrom
    }

    /// Notes that the command `id`, proposed at `at`, was applied at `index` (indexes only grow).
    public mutating func record(_ id: Data, index: UInt64, at: Int64) {
        guard !id.isEmpty else { return }
        records.append(Record(id: id, index: index, at: at))
        indexByID[id] = index
        while count > capacity || (count > 1 && records[head].at < at - windowMs) {
            forgetOldest()
        }
        if head > 1024 && head * 2 > records.count {
            records.removeFirst(head)
            head = 0
        }
    }

    private mutating func forgetOldest() {
        let oldest = records[head]
        if indexByID[oldest.id] == oldest.index { indexByID.removeValue(forKey: oldest.id) }
        completeFrom = max(completeFrom, oldest.index + 1)
        head += 1
    }

    /// Whether the proposal `id`, whose entry was at `index`, happened, given that the log was
    /// applied through `appliedThrough`.
    public func answer(for id: Data, proposedAt index: UInt64, appliedThrough: UInt64) -> Answer {
        if let applied = indexByID[id] { return .applied(at: applied) }
        if index >= completeFrom && index <= appliedThrough { return .notApplied }
        return .unknown
    }

    public static func == (lhs: ProposalLedger, rhs: ProposalLedger) -> Bool {
        lhs.completeFrom == rhs.completeFrom && lhs.records[lhs.head...] == rhs.records[rhs.head...]
    }
}
