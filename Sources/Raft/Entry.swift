/// Identifies one replica of the Raft group. Zero is reserved for "nobody".
public typealias NodeID = UInt64
/// A Raft term: a logical clock that increases with every election.
public typealias Term = UInt64
/// A position in the replicated log; the first real entry has index 1.
public typealias Index = UInt64

/// One record of the replicated log: either an opaque command or a membership change.
public struct Entry: Sendable, Equatable, Hashable {
    /// What an entry carries, which decides who interprets `data`.
    public enum Kind: UInt8, Sendable, Equatable, Hashable {
        /// Opaque state-machine command (empty data is the leader's no-op).
        case normal = 0
        /// A wire-encoded `ConfigChange`, interpreted by the core when committed.
        case configChange = 1
    }

    public var term: Term
    public var index: Index
    public var kind: Kind
    public var data: [UInt8]

    public init(term: Term, index: Index, kind: Kind = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }

    /// The membership change this entry carries, if it is a config-change entry.
    /// A config-change entry that does not decode means the log is corrupt, so trap.
    public var configChange: ConfigChange? {
        guard kind == .configChange else { return nil }
        do {
            return try ConfigChange(wire: data)
        } catch {
            preconditionFailure("config-change entry \(index) does not decode: \(error)")
        }
    }
}

/// The voting and non-voting members of the group at some point in the log.
public struct ConfigState: Sendable, Equatable, Hashable {
    public var voters: Set<NodeID>
    public var learners: Set<NodeID>

    public init(voters: Set<NodeID> = [], learners: Set<NodeID> = []) {
        self.voters = voters
        self.learners = learners
    }

    /// Every node that receives the log.
    public var members: Set<NodeID> { voters.union(learners) }

    /// The configuration after applying `change`; invalid changes leave it unchanged.
    public func applying(_ change: ConfigChange) -> ConfigState {
        var next = self
        switch change {
        case .addVoter(let id):
            next.learners.remove(id)
            next.voters.insert(id)
        case .addLearner(let id):
            // A voter is never silently demoted: that would be a two-step change.
            if !voters.contains(id) { next.learners.insert(id) }
        case .promoteLearner(let id):
            if learners.contains(id) {
                next.learners.remove(id)
                next.voters.insert(id)
            }
        case .removeNode(let id):
            next.voters.remove(id)
            next.learners.remove(id)
        }
        return next
    }

    /// Whether `change` does something and keeps at least one voter.
    public func accepts(_ change: ConfigChange) -> Bool {
        switch change {
        case .addVoter(let id): return !voters.contains(id)
        case .addLearner(let id): return !voters.contains(id) && !learners.contains(id)
        case .promoteLearner(let id): return learners.contains(id)
        case .removeNode(let id):
            if voters.contains(id) { return voters.count > 1 }
            return learners.contains(id)
        }
    }
}

/// A single-server membership change. Only one may be pending at a time; it takes
/// effect on every node when that node learns the entry is committed.
public enum ConfigChange: Sendable, Equatable, Hashable {
    /// Add a node as a voter (or promote it if it is a learner).
    case addVoter(NodeID)
    /// Add a node that receives the log but never votes and never counts toward a quorum.
    case addLearner(NodeID)
    /// Turn an existing learner into a voter.
    case promoteLearner(NodeID)
    /// Remove a voter or learner. A leader that removes itself steps down.
    case removeNode(NodeID)

    /// The node the change is about.
    public var node: NodeID {
        switch self {
        case .addVoter(let id), .addLearner(let id), .promoteLearner(let id), .removeNode(let id):
            return id
        }
    }
}
