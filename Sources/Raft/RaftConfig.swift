/// Static parameters of one node. Ticks are abstract: the driver decides their length.
public struct RaftConfig: Sendable, Equatable {
    public var id: NodeID
    /// Base election timeout; each wait is drawn uniformly from [electionTick, 2*electionTick).
    public var electionTick: Int
    /// Heartbeat interval; must be well below `electionTick`.
    public var heartbeatTick: Int
    /// Run a pre-vote round first, so a partitioned node cannot inflate terms.
    public var preVote: Bool
    /// Leaders step down without a quorum's contact, and followers honour a leader lease.
    public var checkQuorum: Bool
    /// Most entries in one append message (batching).
    public var maxEntriesPerMessage: Int
    /// Most append messages in flight to one follower (pipelining window).
    public var maxInflight: Int
    /// Most bytes of entry data in one append message; the first entry always goes, whatever its size.
    public var maxBytesPerMessage: Int
    /// Most bytes of entry data a leader holds uncommitted before it refuses new proposals
    /// (`DropReason.tooMuchUncommitted`), so a burst of large writes cannot outgrow memory.
    public var maxUncommittedBytes: Int
    /// Most bytes of entry data in append messages sent to one follower and not yet
    /// acknowledged; an empty window always lets one message out, however large.
    public var maxInflightBytes: Int
    /// Seed for the election-timeout jitter, so runs are reproducible.
    public var randomSeed: UInt64

    public init(
        id: NodeID, electionTick: Int = 10, heartbeatTick: Int = 1, preVote: Bool = true,
        checkQuorum: Bool = true, maxEntriesPerMessage: Int = 64, maxInflight: Int = 256,
        randomSeed: UInt64 = 0, maxBytesPerMessage: Int = 1 << 20, maxUncommittedBytes: Int = 64 << 20,
        maxInflightBytes: Int = 32 << 20
    ) {
        precondition(id != 0, "NodeID 0 means nobody")
        precondition(electionTick > heartbeatTick && heartbeatTick > 0, "need electionTick > heartbeatTick > 0")
        precondition(maxEntriesPerMessage > 0 && maxInflight > 0 && maxBytesPerMessage > 0 && maxUncommittedBytes > 0
                     && maxInflightBytes > 0)
        self.id = id
        self.electionTick = electionTick
        self.heartbeatTick = heartbeatTick
        self.preVote = preVote
        self.checkQuorum = checkQuorum
        self.maxEntriesPerMessage = maxEntriesPerMessage
        self.maxInflight = maxInflight
        self.maxBytesPerMessage = maxBytesPerMessage
        self.maxUncommittedBytes = maxUncommittedBytes
        self.maxInflightBytes = maxInflightBytes
        self.randomSeed = randomSeed
    }
}

/// A tiny deterministic PRNG (SplitMix64) so the core never touches global randomness.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
