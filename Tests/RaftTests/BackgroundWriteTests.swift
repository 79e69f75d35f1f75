import SpecolaRaft
import Testing
import CooperativePoolWatch

/// A driver that writes the log on a storage thread (`advance(_:writing:)`, then
/// `persisted(through:term:)`): the leader's own entries count toward a quorum only once
/// written, entries handed off are not handed out again, and a stale write report is ignored.
@Suite(.watchesCooperativePool) struct BackgroundWriteTests {
    /// Three nodes driven by hand; node 1 leads. Followers persist in line.
    struct Group {
        var nodes: [NodeID: RaftNode] = [:]
        /// Messages in flight, delivered only when a test says so.
        var wire: [Message] = []

        init() {
            for id: NodeID in [1, 2, 3] {
                nodes[id] = RaftNode(
                    config: RaftConfig(id: id, electionTick: 10, heartbeatTick: 1, randomSeed: id),
                    persisted: .bootstrap(voters: [1, 2, 3]))
            }
            // Only node 1 ticks, so it alone campaigns; everything is written in line until it leads.
            for _ in 0..<100 where nodes[1]!.role != .leader {
                nodes[1]!.tick()
                settleInLine()
            }
            settleInLine()
        }

        mutating func handleInLine(_ id: NodeID) {
            while let ready = nodes[id]!.ready() {
                wire += ready.messages
                nodes[id]!.advance(ready)
            }
        }

        mutating func settleInLine() {
            for _ in 0..<50 {
                for id: NodeID in [1, 2, 3] { handleInLine(id) }
                guard !wire.isEmpty else { return }
                let batch = wire
                wire = []
                for message in batch { nodes[message.to]!.step(message) }
            }
        }

        /// Delivers what is in flight to `id` only, and lets it answer (written in line).
        mutating func deliver(to id: NodeID) {
            let batch = wire.filter { $0.to == id }
            wire.removeAll { $0.to == id }
            for message in batch { nodes[id]!.step(message) }
            handleInLine(id)
        }

        /// Delivers the answers addressed to the leader.
        mutating func deliverToLeader() {
            let batch = wire.filter { $0.to == 1 }
            wire.removeAll { $0.to == 1 }
            for message in batch { nodes[1]!.step(message) }
        }

        /// The leader's Ready, handed to a (simulated) storage thread: advanced as writing.
        mutating func leaderHandsOff() -> Ready? {
            guard let ready = nodes[1]!.ready() else { return nil }
            wire += ready.messagesBeforePersist
            nodes[1]!.advance(ready, writing: true)
            return ready
        }
    }

    @Test func theLeadersOwnUnwrittenEntryDoesNotCountTowardTheQuorum() throws {
        var group = Group()
        try #require(group.nodes[1]!.role == .leader)
        let before = group.nodes[1]!.commitIndex
        guard case .accepted(let index, let term) = group.nodes[1]!.propose([7]) else {
            Issue.record("the leader refused a proposal")
            return
        }
        let handedOff = group.leaderHandsOff()
        let handed = try #require(handedOff)
        #expect(handed.entries.map(\.index) == [index])
        // Handed off: the next Ready does not carry the entry again.
        #expect(group.nodes[1]!.ready()?.entries.isEmpty ?? true)
        // One follower stores it; with the leader's write still under way that is one of three.
        group.deliver(to: 2)
        group.deliverToLeader()
        #expect(group.nodes[1]!.commitIndex == before)
        // A report for another term is about entries a newer log replaced: ignored.
        group.nodes[1]!.persisted(through: index, term: term + 1)
        #expect(group.nodes[1]!.commitIndex == before)
        #expect(group.nodes[1]!.persistedIndex < index)
        group.nodes[1]!.persisted(through: index, term: term)
        #expect(group.nodes[1]!.persistedIndex == index)
        #expect(group.nodes[1]!.commitIndex == index)
    }

    @Test func twoFollowersCommitWhileTheLeadersWriteIsUnderWay() throws {
        var group = Group()
        try #require(group.nodes[1]!.role == .leader)
        guard case .accepted(let index, _) = group.nodes[1]!.propose([8]) else {
            Issue.record("the leader refused a proposal")
            return
        }
        let handedOff = group.leaderHandsOff()
        try #require(handedOff != nil)
        group.deliver(to: 2)
        group.deliver(to: 3)
        group.deliverToLeader()
        #expect(group.nodes[1]!.commitIndex == index)
        #expect(group.nodes[1]!.persistedIndex < index)
        // Committed entries may be applied before the leader's own copy is on disk: a majority holds them.
        let ready = try #require(group.nodes[1]!.ready())
        #expect(ready.committedEntries.map(\.index).contains(index))
        #expect(ready.entries.isEmpty)
    }

    /// The driver's batching rule on a real core: commands wait while the leader's own write of
    /// the last batch is under way and go once it is on disk; a full batch goes at once.
    @Test func queuedCommandsWaitForTheLeadersOwnWriteThenGoAsOneBatch() throws {
        var group = Group()
        try #require(group.nodes[1]!.role == .leader)
        func mayPropose(queued: Int, bytes: Int = 10, inFlight: Int = 1) -> Bool {
            let leader = group.nodes[1]!
            return ProposalWindow.mayPropose(ownLogSynced: leader.ownLogIsDurable, batchesInFlight: inFlight,
                                             queued: queued, queuedBytes: bytes, isLeader: leader.role == .leader)
        }
        #expect(mayPropose(queued: 1), "nothing is being written: a command goes at once")
        guard case .accepted(let index, let term) = group.nodes[1]!.propose(batch: [[1], [2]]) else {
            Issue.record("the leader refused a batch")
            return
        }
        let handedOff = group.leaderHandsOff()
        try #require(handedOff != nil)
        #expect(!mayPropose(queued: 3), "commands queue while the leader's write is under way")
        #expect(mayPropose(queued: ProposalWindow.maxBatch), "a full batch goes at once")
        #expect(mayPropose(queued: 1, bytes: ProposalWindow.maxBatchBytes), "a batch full of bytes goes at once")
        group.nodes[1]!.persisted(through: index + 1, term: term)
        #expect(mayPropose(queued: 3), "the write is on disk: what queued goes as the next batch")
        #expect(!mayPropose(queued: 3, inFlight: ProposalWindow.maxBatchesInFlight), "the window of batches awaiting commit is full")
        #expect(ProposalWindow.mayPropose(ownLogSynced: false, batchesInFlight: 99, queued: 1, queuedBytes: 1, isLeader: false),
                "a replica that stopped leading hands commands to the core, which refuses them at once")
    }

    /// A write of entries stores the hard state only when term or vote moved: a commit that
    /// merely advanced rides along unstored, so the write touches the log alone.
    @Test func aWriteStoresTheHardStateOnlyWhenTermOrVoteMoved() {
        let durable = HardState(term: 4, vote: 2, commit: 10)
        let entry = Entry(term: 4, index: 12)
        func stored(_ hardState: HardState?, entries: [Entry] = [entry], snapshot: Snapshot? = nil) -> HardState? {
            PersistencePolicy.hardStateToStore(Ready(hardState: hardState, entries: entries, snapshot: snapshot), durable: durable)
        }
        #expect(stored(nil) == nil)
        #expect(stored(HardState(term: 4, vote: 2, commit: 11)) == nil, "only the commit moved")
        #expect(stored(HardState(term: 5, vote: nil, commit: 11)) == HardState(term: 5, vote: nil, commit: 11), "a new term")
        #expect(stored(HardState(term: 4, vote: 3, commit: 10)) == HardState(term: 4, vote: 3, commit: 10), "a new vote")
        let snapshot = Snapshot(meta: SnapshotMeta(index: 20, term: 4, config: ConfigState(voters: [1, 2, 3])), data: [])
        #expect(stored(HardState(term: 4, vote: 2, commit: 20), entries: [], snapshot: snapshot) == HardState(term: 4, vote: 2, commit: 20),
                "with a snapshot it is always stored")
        // A commit-only Ready without entries is not written at all.
        #expect(!PersistencePolicy.mustPersist(Ready(hardState: HardState(term: 4, vote: 2, commit: 11)), durable: durable))
    }
}
