/// The leader's view of one follower's log: what is known to match, what to send
/// next, and how aggressively to send it (flow control).
struct Progress: Sendable, Equatable {
    /// How the leader is currently replicating to this follower.
    enum State: Sendable, Equatable {
        /// Unknown match: one append per heartbeat until the follower accepts one.
        case probe
        /// Known match: pipeline appends optimistically, bounded by `inflights`.
        case replicate
        /// The follower needs the snapshot at this index; appends pause until it answers.
        case snapshot(pending: Index, elapsed: Int)
    }

    var match: Index = 0
    var next: Index
    var state: State = .probe
    /// In probe state, whether the one allowed append for this heartbeat went out.
    var probeSent = false
    var inflights: Inflights
    /// Heard from since the last check-quorum round.
    var recentActive = false
    /// The leader's tick count when this follower last answered (strict reconfiguration checks).
    var lastHeardTick = 0
    var isLearner: Bool

    init(next: Index, maxInflight: Int, maxInflightBytes: Int = .max, isLearner: Bool) {
        self.next = next
        self.inflights = Inflights(capacity: maxInflight, maxBytes: maxInflightBytes)
        self.isLearner = isLearner
    }

    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let pending, _) = state {
            // The snapshot was installed (we only leave this state on an answer), so
            // resume after it even if the answer reported less.
            next = max(match + 1, pending + 1)
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflights.reset()
    }

    mutating func becomeReplicate() {
        next = match + 1
        state = .replicate
        probeSent = false
        inflights.reset()
    }

    mutating func becomeSnapshot(_ index: Index) {
        state = .snapshot(pending: index, elapsed: 0)
        probeSent = false
        inflights.reset()
    }

    /// The snapshot message was probably lost: forget it and probe again from `match`.
    mutating func snapshotFailed() {
        state = .probe
        next = match + 1
        probeSent = false
        inflights.reset()
    }

    /// An append ending at `lastIndex` with `count` entries of `bytes` data was sent.
    mutating func sentAppend(lastIndex: Index, count: Int, bytes: Int = 0) {
        switch state {
        case .replicate:
            if count > 0 {
                next = lastIndex + 1
                inflights.add(lastIndex, bytes: bytes)
            }
        case .probe:
            probeSent = true
        case .snapshot:
            preconditionFailure("append sent while a snapshot is pending")
        }
    }

    /// A success acknowledgement through `index`; returns whether `match` grew.
    mutating func maybeUpdate(_ index: Index) -> Bool {
        var updated = false
        if match < index {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index + 1)
        return updated
    }

    /// A rejection of the append at `rejected`; returns false for stale rejections.
    mutating func maybeDecrease(rejected: Index, hint: Index) -> Bool {
        if state == .replicate {
            // Stale: that append was superseded by one the follower accepted.
            if rejected <= match { return false }
            next = match + 1
            return true
        }
        // In probe state only the last probe's rejection counts.
        if next - 1 != rejected { return false }
        next = max(min(rejected, hint + 1), match + 1, 1)
        probeSent = false
        return true
    }
}

/// The leader's bookkeeping for the whole group: membership, per-node `Progress`,
/// and the votes of the current election.
struct ProgressTracker: Sendable {
    var config: ConfigState
    var progress: [NodeID: Progress] = [:]
    var votes: [NodeID: Bool] = [:]

    init(config: ConfigState) { self.config = config }

    var quorum: Quorum { Quorum(voters: config.voters) }

    /// Highest index a quorum of voters has persisted.
    func committedIndex() -> Index {
        quorum.committedIndex { progress[$0]?.match }
    }

    func voteResult() -> Quorum.VoteResult { quorum.voteResult(votes) }

    /// Resets every member's progress for a fresh leader whose log ends at `lastIndex`.
    mutating func resetProgress(lastIndex: Index, maxInflight: Int, maxInflightBytes: Int = .max) {
        progress = [:]
        for id in config.members {
            progress[id] = Progress(
                next: lastIndex + 1, maxInflight: maxInflight, maxInflightBytes: maxInflightBytes,
                isLearner: config.learners.contains(id))
        }
    }

    /// Whether a quorum of voters (counting `leader`) was heard from recently; clears the marks.
    mutating func checkQuorumActive(leader: NodeID) -> Bool {
        var active: Set<NodeID> = [leader]
        for (id, pr) in progress where pr.recentActive { active.insert(id) }
        for id in progress.keys { progress[id]!.recentActive = false }
        return quorum.isQuorum(active)
    }
}
