import SpecolaRaft

/// Where the leader is, for redirecting clients.
public struct LeaderHint: Sendable, CustomStringConvertible {
    public var id: NodeID
    public var name: String
    public var address: String
    public var description: String { "\(name) at \(address)" }
}

/// Why a replica could not serve a request.
public enum ReplicaError: Error, CustomStringConvertible {
    case notLeader(LeaderHint?)
    case superseded(index: Index)
    /// The write may or may not have been applied; a client must read before retrying it.
    case outcomeUnknown(index: Index, why: String)
    /// The write was applied at `index`, but this replica caught up from a snapshot and never saw its result.
    case appliedResultUnknown(index: Index)
    /// The leader holds as many uncommitted writes as it may; nothing was executed.
    case overloaded
    case timedOut
    case dropped(String)
    case storageFailed(String)
    /// A replica that stopped after a storage failure refuses new requests before doing anything.
    case stopped

    public var description: String {
        switch self {
        case .notLeader(let hint?): return "this replica is not the leader; the leader is \(hint)"
        case .notLeader(nil): return "no leader is known yet (election in progress); retry shortly"
        case .superseded(let index): return "the write at index \(index) was replaced after a leader change; it did not happen — retry"
        case .appliedResultUnknown(let index):
            return "the write was applied (log index \(index)), but this replica caught up from a snapshot and does not know its result; read the state to see it — do not retry the write"
        case .outcomeUnknown(let index, let why): return "the outcome of the write at index \(index) is unknown (\(why)); read the state before retrying it"
        case .overloaded: return "the leader holds as many writes waiting for a quorum as it may; this one was not executed — retry in a moment"
        case .timedOut: return "the write or read did not complete in time (no quorum?); its outcome is unknown"
        case .dropped(let reason): return "the request was dropped (\(reason)); retry"
        case .storageFailed(let problem): return "this replica cannot persist (\(problem)); use another replica"
        case .stopped: return "this replica stopped after a storage failure (see its log) and executed nothing; use another replica"
        }
    }
}
