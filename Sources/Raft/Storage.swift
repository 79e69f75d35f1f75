/// The state every node must persist before it sends any message: the Raft paper's
/// currentTerm, votedFor, plus the commit index so restarts re-apply less.
public struct HardState: Sendable, Equatable, Hashable {
    public var term: Term
    /// The candidate voted for in `term`, or nil.
    public var vote: NodeID?
    public var commit: Index

    public init(term: Term = 0, vote: NodeID? = nil, commit: Index = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// Describes the log prefix a snapshot replaces.
public struct SnapshotMeta: Sendable, Equatable, Hashable {
    /// Last log index covered by the snapshot.
    public var index: Index
    /// Term of the entry at `index`.
    public var term: Term
    /// Membership as of `index`.
    public var config: ConfigState

    public init(index: Index, term: Term, config: ConfigState) {
        self.index = index
        self.term = term
        self.config = config
    }
}

/// A state-machine image at `meta.index`, standing in for the log prefix it replaces.
public struct Snapshot: Sendable, Equatable, Hashable {
    public var meta: SnapshotMeta
    /// Opaque state-machine bytes produced by the driver.
    public var data: [UInt8]

    public init(meta: SnapshotMeta, data: [UInt8]) {
        self.meta = meta
        self.data = data
    }
}

/// What a node reloads from disk on restart: the hard state, the latest snapshot and
/// the log entries after it, exactly as the driver persisted them from `Ready`.
public struct PersistedState: Sendable, Equatable {
    public var hardState: HardState
    public var snapshot: Snapshot?
    /// Contiguous entries starting at `snapshot.meta.index + 1` (or 1 without snapshot).
    public var entries: [Entry]

    public init(hardState: HardState = HardState(), snapshot: Snapshot? = nil, entries: [Entry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    /// The state a brand-new group starts from: one committed `addVoter` entry per
    /// founding voter, in term 1. Every founding member persists the same value first.
    /// Keeping the founding membership in the log (not in a snapshot) means a node added
    /// later learns it by ordinary replication. A node that will be added later starts
    /// from `PersistedState()`.
    public static func bootstrap(voters: Set<NodeID>) -> PersistedState {
        precondition(!voters.isEmpty && !voters.contains(0), "bootstrap needs real voters")
        let entries = voters.sorted().enumerated().map { offset, id in
            Entry(term: 1, index: Index(offset + 1), kind: .configChange, data: ConfigChange.addVoter(id).wireBytes())
        }
        return PersistedState(hardState: HardState(term: 1, vote: nil, commit: Index(entries.count)), entries: entries)
    }
}
