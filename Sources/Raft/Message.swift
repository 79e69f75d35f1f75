/// One Raft RPC between two nodes. The driver carries it; `Wire.swift` encodes it.
public struct Message: Sendable, Equatable {
    public var from: NodeID
    public var to: NodeID
    /// The sender's term, except where `Payload` documents otherwise (pre-vote).
    public var term: Term
    public var payload: Payload

    public init(from: NodeID, to: NodeID, term: Term, payload: Payload) {
        self.from = from
        self.to = to
        self.term = term
        self.payload = payload
    }

    /// The kinds of RPC, named after the Raft paper and its thesis.
    public enum Payload: Sendable, Equatable {
        /// Pre-vote request; `term` is the term the candidate *would* use, its own is unchanged.
        case preVote(lastIndex: Index, lastTerm: Term)
        /// Pre-vote answer: a grant echoes the request's term, a rejection carries the voter's.
        case preVoteResponse(granted: Bool)
        /// RequestVote; `transfer` marks a campaign started by `timeoutNow`, which
        /// overrides followers' leader lease.
        case vote(lastIndex: Index, lastTerm: Term, transfer: Bool)
        case voteResponse(granted: Bool)
        /// AppendEntries: `entries` follow (`prevIndex`, `prevTerm`); `commit` is the leader's commit.
        case append(prevIndex: Index, prevTerm: Term, entries: [Entry], commit: Index)
        /// Success: the follower's log matches the leader's through `index`.
        /// Reject: `index` is the rejected `prevIndex`, `hint` the follower's last index.
        case appendResponse(index: Index, reject: Bool, hint: Index)
        /// Keeps followers from campaigning; `context` is the newest pending ReadIndex
        /// request, so the answer doubles as a leadership confirmation.
        case heartbeat(commit: Index, context: [UInt8])
        case heartbeatResponse(context: [UInt8])
        /// InstallSnapshot for a follower whose next entry has been compacted away.
        case installSnapshot(Snapshot)
        /// The follower's last index after handling a snapshot.
        case snapshotResponse(index: Index)
        /// Leadership transfer: campaign now, skipping pre-vote and lease checks.
        case timeoutNow
        /// A follower forwards a client's ReadIndex request to the leader.
        case readIndex(context: [UInt8])
        /// The leader's confirmed read index for a forwarded request.
        case readIndexResponse(index: Index, context: [UInt8])
    }

    /// Whether this is log replication (an append, empty or not, or a snapshot). A transport keeps
    /// these in order among themselves (an empty append overtaking the entries before it would be
    /// rejected and break the pipeline) but may send other messages ahead of them: heartbeats
    /// carry only a commit index the follower already holds, so their order does not matter.
    public var carriesLogData: Bool {
        switch payload {
        case .append, .installSnapshot: return true
        default: return false
        }
    }

    /// Whether the driver may send this before persisting the Ready that carries it. Only a
    /// leader's messages about its own log qualify: its entries count toward a quorum only
    /// once `advance` reports them stored (Raft thesis §10.2.1). Everything else, votes and
    /// every answer, promises something about this node's disk and must wait for it.
    public var mayPrecedePersistence: Bool {
        switch payload {
        case .append, .heartbeat, .installSnapshot, .timeoutNow: return true
        case .preVote, .preVoteResponse, .vote, .voteResponse, .appendResponse, .heartbeatResponse,
             .snapshotResponse, .readIndex, .readIndexResponse:
            return false
        }
    }
}
