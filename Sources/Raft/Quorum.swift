/// Majority arithmetic over a set of voters: commit index and election outcome.
/// Learners are never part of `voters`, so they never count.
struct Quorum: Sendable, Equatable {
    let voters: Set<NodeID>

    /// The outcome of tallying an election.
    enum VoteResult: Sendable, Equatable { case pending, won, lost }

    var size: Int { voters.count / 2 + 1 }

    func isQuorum(_ nodes: Set<NodeID>) -> Bool {
        voters.intersection(nodes).count >= size
    }

    /// The largest index that a majority of voters has reached (unknown voters count 0).
    func committedIndex(_ match: (NodeID) -> Index?) -> Index {
        guard !voters.isEmpty else { return 0 }
        let matches = voters.map { match($0) ?? 0 }.sorted(by: >)
        return matches[size - 1]
    }

    func voteResult(_ votes: [NodeID: Bool]) -> VoteResult {
        guard !voters.isEmpty else { return .lost }
        var granted = 0
        var rejected = 0
        for id in voters {
            switch votes[id] {
            case true?: granted += 1
            case false?: rejected += 1
            case nil: break
            }
        }
        if granted >= size { return .won }
        if voters.count - rejected < size { return .lost }
        return .pending
    }
}
