/// What a node is doing in the current term.
public enum Role: UInt8, Sendable, Equatable, Hashable {
    case follower, preCandidate, candidate, leader
}

/// Volatile state the driver may want to observe (leader hint, role); never persisted.
public struct SoftState: Sendable, Equatable, Hashable {
    public var leader: NodeID?
    public var role: Role

    public init(leader: NodeID?, role: Role) {
        self.leader = leader
        self.role = role
    }
}

/// A confirmed linearizable read: once the state machine has applied `index`, the
/// read tagged `context` may be served from it.
public struct ReadState: Sendable, Equatable, Hashable {
    public var index: Index
    public var context: [UInt8]

    public init(index: Index, context: [UInt8]) {
        self.index = index
        self.context = context
    }
}

/// The batch of work a node hands to its driver. Handle it in this order:
/// 0. `messagesBeforePersist` may go out at once;
/// 1. persist `snapshot` (replacing every stored entry), then `entries` (replacing any
///    stored entry at or after `entries.first.index`), then `hardState`, durably;
/// 2. send `messagesAfterPersist` (all of `messages` when nothing was sent early);
/// 3. apply `snapshot` (if any) and then `committedEntries` to the state machine;
/// 4. serve `readStates` once applied reaches their index;
/// 5. call `advance(_:)` with this same value.
public struct Ready: Sendable, Equatable {
    public var softState: SoftState?
    public var hardState: HardState?
    public var entries: [Entry]
    public var snapshot: Snapshot?
    public var committedEntries: [Entry]
    public var messages: [Message]
    public var readStates: [ReadState]

    /// The messages that need nothing of this Ready on disk (see `Message.mayPrecedePersistence`).
    public var messagesBeforePersist: [Message] { messages.filter(\.mayPrecedePersistence) }
    /// The messages that may leave only once this Ready is durable.
    public var messagesAfterPersist: [Message] { messages.filter { !$0.mayPrecedePersistence } }

    public init(
        softState: SoftState? = nil, hardState: HardState? = nil, entries: [Entry] = [],
        snapshot: Snapshot? = nil, committedEntries: [Entry] = [], messages: [Message] = [],
        readStates: [ReadState] = []
    ) {
        self.softState = softState
        self.hardState = hardState
        self.entries = entries
        self.snapshot = snapshot
        self.committedEntries = committedEntries
        self.messages = messages
        self.readStates = readStates
    }
}

/// The outcome of a proposal, configuration change or read request.
public enum ProposeResult: Sendable, Equatable {
    /// Appended to the leader's log at `index` in `term`; it is acknowledged only once
    /// an entry with this index *and term* shows up in `committedEntries`.
    case accepted(index: Index, term: Term)
    /// A ReadIndex request is on its way; its `ReadState` will come in a later `Ready`.
    case pending
    /// This node is not the leader; retry at `leaderHint` if known.
    case notLeader(leaderHint: NodeID?)
    /// Refused for a reason that retrying elsewhere would not fix right now.
    case dropped(DropReason)
}

/// Why a request was refused although this node leads (or could forward).
public enum DropReason: Sendable, Equatable {
    case leadershipTransferInProgress
    case configChangePending
    case invalidConfigChange
    case emptyReadContext
    case transferTargetNotVoter
    /// The leader holds `RaftConfig.maxUncommittedBytes` of uncommitted data already: retry shortly.
    case tooMuchUncommitted
    /// The membership change would leave fewer voters answering than its majority needs.
    case wouldLoseQuorum
    /// The learner to promote does not yet hold the committed log.
    case learnerBehind
}

/// Errors from driver-invoked operations that break a precondition the driver can check.
public enum RaftError: Error, Sendable, Equatable {
    /// `compact(through:)` was asked for an index not in (snapshot index, applied].
    case compactionOutOfRange(requested: Index, snapshotIndex: Index, applied: Index)
}
