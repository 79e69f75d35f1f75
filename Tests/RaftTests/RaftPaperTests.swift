import SpecolaRaft
import Testing
import CooperativePoolWatch

/// One test per safety claim of the Raft paper (Figure 3) plus the extensions we rely on.
/// Every scenario runs inside `Simulation`, whose checker also enforces election safety,
/// log matching, leader completeness and state-machine safety after every event.
@Suite(.watchesCooperativePool) struct RaftPaperTests {
    static func cluster(
        _ n: UInt64, spares: [NodeID] = [], preVote: Bool = true, checkQuorum: Bool = true, batch: Int = 64
    ) -> Simulation {
        Simulation(voters: Array(1...n), spares: spares, seed: 42) {
            $0.preVote = preVote
            $0.checkQuorum = checkQuorum
            $0.maxEntriesPerMessage = batch
        }
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Proposes at the current leader and settles the network; returns where it landed.
    @discardableResult
    static func write(_ sim: Simulation, _ s: String) throws -> Index {
        let leader = try #require(sim.leaders.first)
        guard case .accepted(let index, _)? = try sim.propose(at: leader, bytes(s)) else {
            Issue.record("proposal refused by \(leader)")
            return 0
        }
        try sim.deliverAll()
        try sim.tickAll()
        try sim.deliverAll()
        return index
    }

    // MARK: Flow control in bytes

    /// A lagging follower catches up through appends of at most `maxBytesPerMessage` of data,
    /// except that an entry larger than that travels alone rather than never.
    @Test func anAppendCarriesAtMostItsByteLimitButAlwaysOneEntry() throws {
        let sim = Simulation(voters: [1, 2, 3], seed: 42) { $0.maxBytesPerMessage = 100 }
        let leader = try #require(try sim.electLeader())
        let lagging = sim.ids.first { $0 != leader }!
        sim.isolate(lagging)
        for _ in 0..<3 { try Self.write(sim, String(repeating: "a", count: 60)) }
        try Self.write(sim, String(repeating: "b", count: 500))
        var appends: [[Entry]] = []
        sim.dropIf = { message in
            if message.to == lagging, case .append(_, _, let entries, _) = message.payload, !entries.isEmpty {
                appends.append(entries)
            }
            return false
        }
        sim.heal()
        for _ in 0..<40 where sim.raft(lagging).commitIndex < sim.raft(leader).commitIndex {
            try sim.tickAll()
            try sim.deliverAll()
        }
        #expect(sim.raft(lagging).commitIndex == sim.raft(leader).commitIndex)
        for entries in appends {
            let bytes = entries.reduce(0) { $0 + $1.data.count }
            #expect(bytes <= 100 || entries.count == 1, "an append carried \(entries.count) entries, \(bytes) bytes")
        }
        #expect(appends.contains { $0.count == 1 && $0[0].data.count == 500 }, "the 500-byte entry never went out")
    }

    /// Appends a follower has not acknowledged hold at most `maxInflightBytes` of data (the
    /// window always lets one out); once it answers, the rest follows.
    @Test func unacknowledgedAppendsToAFollowerStayWithinTheInflightBytes() throws {
        let sim = Simulation(voters: [1, 2, 3], seed: 42) {
            $0.maxBytesPerMessage = 400
            $0.maxInflightBytes = 1_000
        }
        let leader = try #require(try sim.electLeader())
        try Self.write(sim, "settle")
        let silent = sim.ids.first { $0 != leader }!
        var unacknowledged: [Int] = []
        sim.dropIf = { message in
            if message.to == silent, case .append(_, _, let entries, _) = message.payload, !entries.isEmpty {
                unacknowledged.append(entries.reduce(0) { $0 + $1.data.count })
            }
            return message.from == silent
        }
        for _ in 0..<6 {
            guard case .accepted? = try sim.propose(at: leader, [UInt8](repeating: 1, count: 400)) else {
                Issue.record("proposal refused")
                return
            }
            try sim.deliverAll()
        }
        #expect(unacknowledged == [400, 400, 400], "appends to a silent follower: \(unacknowledged)")
        sim.dropIf = nil
        for _ in 0..<40 where sim.raft(silent).commitIndex < sim.raft(leader).commitIndex {
            try sim.tickAll()
            try sim.deliverAll()
        }
        #expect(sim.raft(silent).commitIndex == sim.raft(leader).commitIndex)
    }

    /// A leader whose quorum does not answer takes proposals only up to `maxUncommittedBytes`,
    /// then refuses them (nothing appended) until what it holds commits.
    @Test func aLeaderRefusesProposalsBeyondItsUncommittedBytes() throws {
        let sim = Simulation(voters: [1, 2, 3], seed: 42) { $0.maxUncommittedBytes = 1_000 }
        let leader = try #require(try sim.electLeader())
        sim.isolate(leader)
        let big = [UInt8](repeating: 7, count: 600)
        guard case .accepted? = try sim.propose(at: leader, big) else {
            Issue.record("the first proposal must be taken while nothing is outstanding")
            return
        }
        let lastBefore = sim.raft(leader).lastIndex
        #expect(try sim.propose(at: leader, big) == .dropped(.tooMuchUncommitted))
        #expect(sim.raft(leader).lastIndex == lastBefore, "a refused proposal must not be appended")

        sim.heal()
        try sim.deliverAll()
        try sim.tickAll()
        try sim.deliverAll()
        #expect(sim.raft(leader).commitIndex == lastBefore)
        guard case .accepted? = try sim.propose(at: leader, big) else {
            Issue.record("once committed, the leader must take proposals again")
            return
        }
    }

    // MARK: Figure 3 claims

    /// Election safety: at most one leader can be elected in a given term.
    @Test func electionSafety() throws {
        let sim = Self.cluster(5, preVote: false, checkQuorum: false)
        var rng = Xoshiro(seed: 7)
        sim.faults = .init(drop: 0.2, duplicate: 0.1, maxDelay: 2)
        // Everyone times out at once, repeatedly, with a lossy network: split votes galore.
        for _ in 0..<600 {
            try sim.tickAll()
            try sim.processAllReadies()
            while try sim.deliverOne() {}
            if rng.chance(0.05), let l = sim.leaders.first { sim.isolate(l) }
            if rng.chance(0.1) { sim.heal() }
        }
        #expect(sim.leaderOfTerm.count > 3, "the scenario should produce several elections")
        // The checker would have thrown on a second leader; also check the final state.
        var seen: [Term: NodeID] = [:]
        for id in sim.leaders {
            let t = sim.raft(id).term
            #expect(seen[t] == nil)
            seen[t] = id
        }
    }

    /// A candidate whose votes are split never becomes leader.
    @Test func splitVoteElectsNobody() throws {
        let sim = Self.cluster(4, preVote: false, checkQuorum: false)
        // 1 and 3 campaign simultaneously; 2 votes for 1 and 4 votes for 3.
        sim.cut = [[1, 4], [3, 2]]
        for _ in 0..<25 where sim.raft(1).role == .follower { try sim.tick(1) }
        for _ in 0..<25 where sim.raft(3).role == .follower { try sim.tick(3) }
        try sim.deliverAll()
        #expect(sim.raft(1).role == .candidate)
        #expect(sim.raft(3).role == .candidate)
        #expect(sim.leaders.isEmpty)
    }

    /// Leader append-only: a leader never overwrites or deletes entries in its log.
    @Test func leaderAppendOnly() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        for i in 0..<5 { try Self.write(sim, "x\(i)") }
        let before = (1...sim.raft(leader).lastIndex).map { sim.raft(leader).entry(at: $0) }
        // A deposed leader's append with conflicting entries for the same indexes.
        let staleTerm = sim.raft(leader).term - 1
        let forged = Message(
            from: leader == 1 ? 2 : 1, to: leader, term: staleTerm,
            payload: .append(
                prevIndex: 3, prevTerm: 1,
                entries: [Entry(term: staleTerm, index: 4, data: Self.bytes("evil"))], commit: 4))
        sim.withRaft(leader) { $0.step(forged) }
        try sim.processAllReadies()
        let after = (1...before.count).map { sim.raft(leader).entry(at: Index($0)) }
        #expect(after == before)
        #expect(sim.raft(leader).role == .leader)
    }

    /// Log matching: if two logs hold an entry with the same index and term, they are
    /// identical up to it; a follower refuses an append whose predecessor does not match.
    @Test func logMatching() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let follower = sim.ids.first { $0 != leader }!
        for i in 0..<3 { try Self.write(sim, "x\(i)") }
        let last = sim.raft(follower).lastIndex
        let term = sim.raft(leader).term
        let wrongPrev = Message(
            from: leader, to: follower, term: term,
            payload: .append(
                prevIndex: last, prevTerm: term + 5, entries: [Entry(term: term, index: last + 1)], commit: 0))
        sim.withRaft(follower) { $0.step(wrongPrev) }
        let rd = try #require(sim.raft(follower).ready())
        #expect(rd.messages.contains { if case .appendResponse(_, true, _) = $0.payload { return true } else { return false } })
        #expect(sim.raft(follower).lastIndex == last)
        try sim.processAllReadies()
        // Diverge a minority, then heal: the leader's log wins everywhere.
        sim.isolate(leader)
        for i in 0..<3 { _ = try sim.propose(at: leader, Self.bytes("lost\(i)")) }
        try sim.deliverAll()
        sim.heal()
        for _ in 0..<200 { try sim.tickAll(); try sim.deliverAll() }
        try Self.write(sim, "after")
        try sim.checkLogMatchingFully()
        let logs = sim.ids.map { id in (1...sim.raft(id).lastIndex).map { sim.raft(id).entry(at: $0)! } }
        #expect(logs.allSatisfy { $0 == logs[0] })
    }

    /// Leader completeness: a node missing committed entries cannot win an election.
    @Test func leaderCompleteness() throws {
        let sim = Self.cluster(3, preVote: false, checkQuorum: false)
        try sim.campaign(1)
        #expect(sim.raft(1).role == .leader)
        sim.isolate(3)
        let index = try Self.write(sim, "committed")
        #expect(sim.raft(1).commitIndex >= index)
        #expect(sim.raft(3).lastIndex < index)
        // The leader dies; the stale node campaigns first but 2 refuses it.
        sim.crash(1)
        sim.heal()
        try sim.campaign(3)
        #expect(sim.raft(3).role != .leader)
        try sim.campaign(2)
        #expect(sim.raft(2).role == .leader)
        #expect(sim.raft(2).entry(at: index)?.data == Self.bytes("committed"))
    }

    /// State machine safety: every node applies the same entry at each index.
    @Test func stateMachineSafety() throws {
        let sim = Self.cluster(5)
        sim.faults = .init(drop: 0.05, duplicate: 0.05, maxDelay: 2)
        var rng = Xoshiro(seed: 99)
        for step in 0..<400 {
            try sim.tickAll()
            if let l = sim.leaders.first, rng.chance(0.5) { _ = try sim.propose(at: l, Self.bytes("w\(step)")) }
            if rng.chance(0.02), let victim = sim.ids.randomElement(using: &rng), sim.nodes[victim]!.raft != nil {
                try sim.processReady(victim)
                sim.crash(victim)
            }
            for id in sim.ids where sim.nodes[id]!.raft == nil && rng.chance(0.1) { try sim.restart(id) }
            while try sim.deliverOne() {}
        }
        for id in sim.ids where sim.nodes[id]!.raft == nil { try sim.restart(id) }
        sim.faults = .init()
        for _ in 0..<100 { try sim.tickAll(); try sim.deliverAll() }
        let machines = sim.ids.map { sim.nodes[$0]!.machine }
        #expect(machines.allSatisfy { $0 == machines[0] })
        #expect(machines[0].index > 50)
    }

    /// Figure 8: a leader must not commit an entry of an earlier term by counting
    /// replicas, because a later leader may still overwrite it.
    @Test func figure8() throws {
        // One entry per append, so S1 can ship the old entry without its own.
        let sim = Self.cluster(5, preVote: false, checkQuorum: false, batch: 1)
        // (a) S1 leads and replicates entry A to S2 only.
        try sim.campaign(1)
        #expect(sim.raft(1).role == .leader)
        sim.isolate(1)
        sim.cut.subtract([[1, 2], [2, 1]])
        guard case .accepted(let i, let termA)? = try sim.propose(at: 1, Self.bytes("A")) else {
            Issue.record("S1 refused A")
            return
        }
        try sim.deliverAll()
        #expect(sim.raft(2).term(at: i) == termA)
        // (b) S1 crashes; S5 wins with S3, S4 and appends B at the same index, alone.
        sim.crash(1)
        sim.heal()
        sim.isolate(2)
        sim.dropIf = { m in
            if m.from == 5, case .append = m.payload { return true }
            return false
        }
        try sim.campaign(5)
        #expect(sim.raft(5).role == .leader)
        let termB = sim.raft(5).term
        #expect(sim.raft(5).term(at: i) == termB, "S5's no-op sits at index \(i)")
        // (c) S5 crashes; S1 restarts and wins, and copies A to S3 but not its own entry.
        sim.crash(5)
        sim.heal()
        try sim.restart(1)
        let term1 = sim.raft(1).term
        sim.dropIf = { [unowned sim] m in
            guard m.from == 1, case .append(_, _, let entries, _) = m.payload else { return false }
            if m.to == 2 { return false }
            if m.to != 3 { return true }
            // S3 gets A, and S1's own entry only where it is refused anyway (probing).
            return entries.contains { $0.term > termA } && (sim.nodes[m.to]!.raft?.lastIndex ?? 0) >= i
        }
        try sim.campaign(1)
        #expect(sim.raft(1).role == .leader)
        #expect(sim.raft(1).term > term1)
        for _ in 0..<10 { try sim.tick(1); try sim.deliverAll() }
        #expect(sim.raft(3).term(at: i) == termA, "A is now on a majority: S1, S2, S3")
        #expect(sim.raft(1).commitIndex < i, "but it is from an old term, so it is not committed")
        #expect(sim.raft(3).lastIndex == i, "S1's own entry reached only S2")
        // (d) S1 crashes; S5 restarts and wins with S3, S4, overwriting A with B everywhere.
        sim.crash(1)
        try sim.restart(5)
        sim.dropIf = nil
        try sim.campaign(5)
        #expect(sim.raft(5).role == .leader)
        for _ in 0..<10 { try sim.tick(5); try sim.deliverAll() }
        for id: NodeID in [2, 3, 4] { #expect(sim.raft(id).term(at: i) == termB) }
        #expect(sim.raft(5).commitIndex >= i)
    }

    /// Figure 8, variant (e): once the new leader's own entry is on a majority, the
    /// old-term entry beneath it is committed and can no longer be lost.
    @Test func figure8CommitThroughCurrentTerm() throws {
        let sim = Self.cluster(5, preVote: false, checkQuorum: false)
        try sim.campaign(1)
        sim.isolate(1)
        sim.cut.subtract([[1, 2], [2, 1]])
        guard case .accepted(let i, let termA)? = try sim.propose(at: 1, Self.bytes("A")) else { return }
        try sim.deliverAll()
        sim.crash(1)
        sim.heal()
        sim.isolate(2)
        sim.dropIf = { m in
            if m.from == 5, case .append = m.payload { return true }
            return false
        }
        try sim.campaign(5)
        sim.crash(5)
        sim.heal()
        sim.dropIf = { m in m.to == 4 || m.from == 4 }
        try sim.restart(1)
        try sim.campaign(1)
        #expect(sim.raft(1).role == .leader)
        for _ in 0..<10 { try sim.tick(1); try sim.deliverAll() }
        #expect(sim.raft(1).commitIndex > i)
        #expect(sim.raft(1).term(at: i) == termA)
        // S5 can no longer win: S2 and S3 hold a newer last term.
        sim.crash(1)
        sim.dropIf = nil
        try sim.restart(5)
        try sim.campaign(5)
        #expect(sim.raft(5).role != .leader)
    }

    // MARK: Extensions

    /// Two followers that lose their leader and campaign in the same moment do not split the
    /// vote: with equal logs only the lower id gets a pre-vote, so the first round elects one.
    @Test func simultaneousPreCandidatesElectALeaderInOneRound() throws {
        let sim = Self.cluster(3)
        let old = try #require(try sim.electLeader())
        try Self.write(sim, "before the crash")
        sim.crash(old)
        let survivors = sim.ids.filter { $0 != old }
        // Each survivor ticks alone until it campaigns, so both are pre-candidates at once.
        for id in survivors {
            for _ in 0..<40 where sim.raft(id).role == .follower { try sim.tick(id) }
            #expect(sim.raft(id).role == .preCandidate)
        }
        try sim.deliverAll()
        #expect(sim.leaders.count == 1)
    }

    /// Pre-vote: a partitioned node keeps its term, so healing does not depose the leader.
    @Test func preVotePreventsTermInflation() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let loner = sim.ids.first { $0 != leader }!
        let term = sim.raft(leader).term
        sim.isolate(loner)
        for _ in 0..<200 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.raft(loner).term == term, "pre-vote never bumps the term")
        sim.heal()
        for _ in 0..<50 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.raft(leader).role == .leader)
        #expect(sim.raft(leader).term == term)
        #expect(sim.raft(loner).leader == leader)
    }

    /// Without pre-vote the same partition does inflate the term (the contrast case).
    @Test func withoutPreVoteTermsInflate() throws {
        let sim = Self.cluster(3, preVote: false)
        let leader = try #require(try sim.electLeader())
        let loner = sim.ids.first { $0 != leader }!
        let term = sim.raft(leader).term
        sim.isolate(loner)
        for _ in 0..<200 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.raft(loner).term > term + 3)
    }

    /// Check-quorum: a leader cut off from a quorum steps down within an election timeout.
    @Test func checkQuorumStepDown() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        sim.isolate(leader)
        for _ in 0..<(2 * 10) { try sim.tick(leader) }
        #expect(sim.raft(leader).role == .follower)
        #expect(try sim.propose(at: leader, [1]) == .notLeader(leaderHint: nil))
    }

    /// Leader lease: a follower that hears from its leader ignores a disruptive candidate.
    @Test func followersIgnoreVotesWhileLeaderAlive() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let follower = sim.ids.first { $0 != leader }!
        let other = sim.ids.first { $0 != leader && $0 != follower }!
        let term = sim.raft(follower).term
        let request = Message(
            from: other, to: follower, term: term + 1,
            payload: .vote(lastIndex: 1000, lastTerm: term, transfer: false))
        sim.withRaft(follower) { $0.step(request) }
        #expect(sim.raft(follower).term == term)
        #expect(sim.raft(follower).ready()?.messages.isEmpty ?? true)
    }

    /// Leadership transfer: the target catches up, campaigns at once and wins; the old
    /// leader refuses proposals meanwhile.
    @Test func leadershipTransfer() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let target = sim.ids.first { $0 != leader }!
        // Make the target lag so the leader must catch it up first.
        sim.isolate(target)
        for i in 0..<5 { try Self.write(sim, "lag\(i)") }
        sim.heal()
        let term = sim.raft(leader).term
        #expect(sim.withRaft(leader) { $0.transferLeadership(to: target) } == .pending)
        #expect(try sim.propose(at: leader, [9]) == .dropped(.leadershipTransferInProgress))
        try sim.deliverAll()
        #expect(sim.raft(target).role == .leader)
        #expect(sim.raft(target).term == term + 1)
        #expect(sim.raft(leader).role == .follower)
        try Self.write(sim, "after transfer")
    }

    /// A transfer to an unreachable node is abandoned after an election timeout.
    @Test func leadershipTransferTimesOut() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let target = sim.ids.first { $0 != leader }!
        sim.crash(target)
        _ = sim.withRaft(leader) { $0.transferLeadership(to: target) }
        #expect(sim.raft(leader).leadTransferee == target)
        for _ in 0..<12 { try sim.tick(leader); try sim.deliverAll() }
        #expect(sim.raft(leader).leadTransferee == nil)
        #expect(sim.raft(leader).role == .leader)
        if case .accepted? = try sim.propose(at: leader, [1]) {} else { Issue.record("leader should accept again") }
    }

    /// ReadIndex answers only after a heartbeat quorum, at the leader's commit index.
    /// A read forwarded to a replica that no longer leads is dropped there (the requester retries),
    /// never passed on under the requester's name, which the receiving transport would refuse.
    @Test func aForwardedReadThatMissedTheLeaderIsNotSentInAnotherName() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let follower = sim.ids.first { $0 != leader }!
        let requester = sim.ids.first { $0 != leader && $0 != follower }!
        let term = sim.raft(follower).term
        sim.withRaft(follower) { $0.step(Message(from: requester, to: follower, term: term, payload: .readIndex(context: [9]))) }
        let sent = sim.raft(follower).ready()?.messages ?? []
        #expect(sent.allSatisfy { $0.from == follower }, "sent in another replica's name: \(sent)")
    }

    @Test func readIndexWaitsForHeartbeatQuorum() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let index = try Self.write(sim, "v1")
        sim.isolate(leader)
        let served = sim.readsServed
        let context = try #require(try sim.read(at: leader))
        try sim.deliverAll()
        #expect(sim.readsServed == served, "no quorum confirmation, no read")
        sim.heal()
        for _ in 0..<3 { try sim.tick(leader); try sim.deliverAll() }
        #expect(sim.readsServed == served + 1)
        #expect(sim.readFloor[context]! >= index)
        // A follower's read is forwarded and answered the same way.
        let follower = sim.ids.first { $0 != leader }!
        _ = try #require(try sim.read(at: follower))
        try sim.deliverAll()
        #expect(sim.readsServed == served + 2)
    }

    /// A deposed leader that still believes it leads never serves a stale read.
    @Test func readIndexNeverStale() throws {
        let sim = Self.cluster(3)
        let old = try #require(try sim.electLeader())
        try Self.write(sim, "v1")
        sim.isolate(old)
        // The others elect a new leader and commit more writes.
        var newLeader: NodeID?
        for _ in 0..<100 {
            for id in sim.ids where id != old { try sim.tick(id) }
            try sim.deliverAll()
            newLeader = sim.leaders.first { $0 != old }
            if newLeader != nil { break }
        }
        let fresh = try #require(newLeader)
        for i in 0..<3 { _ = try sim.propose(at: fresh, Self.bytes("v\(i + 2)")); try sim.deliverAll() }
        #expect(sim.raft(old).role == .leader, "the old leader has not noticed yet")
        let served = sim.readsServed
        _ = try #require(try sim.read(at: old))
        sim.heal()
        try sim.deliverAll()
        for _ in 0..<5 { try sim.tickAll(); try sim.deliverAll() }
        // Either no answer, or (via the checker) an answer that includes the new writes.
        #expect(sim.readsServed == served)
        #expect(sim.raft(old).role == .follower)
    }

    /// A new leader defers reads until it has committed an entry of its own term.
    @Test func readIndexDeferredUntilLeaderCommitsInTerm() throws {
        let sim = Self.cluster(3, preVote: false, checkQuorum: false)
        try sim.campaign(1)
        sim.isolate(1)
        for _ in 0..<25 where sim.raft(2).role == .follower { try sim.tick(2) }
        // Let 2 win but hold back its no-op so it has not committed in its term yet.
        sim.heal()
        sim.isolate(1)
        sim.dropIf = { m in if case .append = m.payload { return true } else { return false } }
        try sim.deliverAll()
        #expect(sim.raft(2).role == .leader)
        let served = sim.readsServed
        _ = try sim.read(at: 2)
        for _ in 0..<3 { try sim.tick(2); try sim.deliverAll() }
        #expect(sim.readsServed == served)
        sim.dropIf = nil
        for _ in 0..<3 { try sim.tick(2); try sim.deliverAll() }
        #expect(sim.readsServed == served + 1)
    }

    /// InstallSnapshot: a follower behind the leader's compacted prefix catches up.
    @Test func snapshotCatchesUpFarBehindFollower() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        let laggard = sim.ids.first { $0 != leader }!
        sim.isolate(laggard)
        for i in 0..<40 { _ = try sim.propose(at: leader, Self.bytes("e\(i)")) }
        try sim.deliverAll()
        for _ in 0..<3 { try sim.tickAll(); try sim.deliverAll() }
        for id in sim.ids where id != laggard { try sim.compact(id) }
        #expect(sim.raft(leader).snapshotMeta.index > sim.raft(laggard).lastIndex)
        sim.heal()
        for _ in 0..<10 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.raft(laggard).snapshotMeta.index == sim.raft(leader).snapshotMeta.index)
        #expect(sim.raft(laggard).commitIndex == sim.raft(leader).commitIndex)
        #expect(sim.nodes[laggard]!.machine == sim.nodes[leader]!.machine)
        // And it survives a restart from what it persisted.
        try sim.processReady(laggard)
        sim.crash(laggard)
        try sim.restart(laggard)
        #expect(sim.raft(laggard).snapshotMeta.index == sim.raft(leader).snapshotMeta.index)
    }

    /// Learners get the log but never campaign, never vote and never count toward quorum.
    @Test func learnerNeverVotes() throws {
        let sim = Self.cluster(3, spares: [4])
        let leader = try #require(try sim.electLeader())
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.addLearner(4)) }.map { if case .accepted = $0 { true } else { false } } == true)
        try sim.deliverAll()
        try Self.write(sim, "to learner")
        #expect(sim.raft(4).membership.learners == [4])
        #expect(sim.raft(4).commitIndex == sim.raft(leader).commitIndex)
        // Asked directly, the learner refuses.
        let term = sim.raft(4).term
        sim.isolate(4)
        for _ in 0..<100 { try sim.tick(4) }
        #expect(sim.raft(4).role == .follower, "a learner never campaigns")
        #expect(sim.raft(4).term == term)
        let ask = Message(from: 2, to: 4, term: term + 1, payload: .vote(lastIndex: 999, lastTerm: term, transfer: true))
        sim.withRaft(4) { $0.step(ask) }
        let reply = try #require(sim.raft(4).ready()?.messages.first)
        #expect(reply.payload == .voteResponse(granted: false))
        try sim.processAllReadies()
        // Leader plus learner is not a quorum of three voters.
        sim.heal()
        let others = sim.ids.filter { $0 != leader && $0 != 4 }
        for id in others { sim.isolate(id) }
        guard case .accepted(let index, _)? = try sim.propose(at: leader, [7]) else { return }
        try sim.deliverAll()
        #expect(sim.raft(leader).commitIndex < index)
    }

    /// Strict reconfiguration: with one of three voters silent, removing another would leave a
    /// group that cannot form a majority, and adding a voter would raise the majority beyond
    /// what answers; both are refused, and both go through once the silent voter is back.
    @Test func aChangeThatWouldLeaveTooFewVotersAnsweringIsRefused() throws {
        let sim = Self.cluster(3, spares: [4])
        let leader = try #require(try sim.electLeader())
        let silent = sim.ids.first { $0 != leader && $0 != 4 }!
        let other = sim.ids.first { $0 != leader && $0 != silent && $0 != 4 }!
        sim.isolate(silent)
        for _ in 0..<(sim.raft(leader).config.electionTick + 2) {
            try sim.tick(leader)
            try sim.tick(other)
            try sim.deliverAll()
        }
        #expect(sim.raft(leader).role == .leader)
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.removeNode(other)) } == .dropped(.wouldLoseQuorum))
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.addVoter(4)) } == .dropped(.wouldLoseQuorum))

        sim.heal()
        for _ in 0..<3 {
            try sim.tickAll()
            try sim.deliverAll()
        }
        guard case .accepted? = sim.withRaft(leader, { $0.proposeConfigChange(.removeNode(other)) }) else {
            Issue.record("with every voter answering, the removal must be taken")
            return
        }
    }

    /// A learner becomes a voter only once it holds the committed log.
    @Test func aLearnerThatHasNotCaughtUpIsNotPromoted() throws {
        let sim = Self.cluster(3, spares: [4])
        let leader = try #require(try sim.electLeader())
        guard case .accepted? = sim.withRaft(leader, { $0.proposeConfigChange(.addLearner(4)) }) else {
            Issue.record("add learner refused")
            return
        }
        try sim.deliverAll()
        sim.isolate(4)
        for i in 0..<5 { try Self.write(sim, "while the learner is away \(i)") }
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.promoteLearner(4)) } == .dropped(.learnerBehind))
        sim.heal()
        for _ in 0..<5 {
            try sim.tickAll()
            try sim.deliverAll()
        }
        guard case .accepted? = sim.withRaft(leader, { $0.proposeConfigChange(.promoteLearner(4)) }) else {
            Issue.record("a caught-up learner must be promoted")
            return
        }
    }

    /// Membership: add a voter, then remove the leader itself; the group keeps going.
    @Test func membershipAddAndRemove() throws {
        let sim = Self.cluster(3, spares: [4])
        let leader = try #require(try sim.electLeader())
        guard case .accepted? = sim.withRaft(leader, { $0.proposeConfigChange(.addVoter(4)) }) else {
            Issue.record("add refused")
            return
        }
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.addLearner(4)) } == .dropped(.configChangePending))
        try sim.deliverAll()
        for _ in 0..<3 { try sim.tickAll(); try sim.deliverAll() }
        for id in sim.ids { #expect(sim.raft(id).membership.voters == [1, 2, 3, 4]) }
        try Self.write(sim, "four voters")
        #expect(sim.raft(4).commitIndex == sim.raft(leader).commitIndex)
        // The leader removes itself and steps down once that commits.
        guard case .accepted? = sim.withRaft(leader, { $0.proposeConfigChange(.removeNode(leader)) }) else {
            Issue.record("remove refused")
            return
        }
        try sim.deliverAll()
        for _ in 0..<3 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.raft(leader).role == .follower)
        let next = try #require(try sim.electLeader())
        #expect(next != leader)
        #expect(sim.raft(next).membership.voters == Set([1, 2, 3, 4]).subtracting([leader]))
        try Self.write(sim, "without the old leader")
        for _ in 0..<100 { try sim.tickAll(); try sim.deliverAll() }
        #expect(sim.leaders == [next], "the removed node does not disrupt the group")
    }

    /// Invalid or concurrent membership changes are refused.
    @Test func membershipChangeValidation() throws {
        let sim = Self.cluster(1)
        let leader = try #require(try sim.electLeader())
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.removeNode(1)) } == .dropped(.invalidConfigChange))
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.promoteLearner(9)) } == .dropped(.invalidConfigChange))
        #expect(sim.withRaft(leader) { $0.proposeConfigChange(.addVoter(1)) } == .dropped(.invalidConfigChange))
    }

    /// A single voter commits on its own once its log is durable.
    @Test func singleNodeCommits() throws {
        let sim = Self.cluster(1)
        let leader = try #require(try sim.electLeader())
        let index = try Self.write(sim, "solo")
        #expect(sim.raft(leader).commitIndex >= index)
        #expect(sim.nodes[leader]!.machine.index >= index)
    }

    /// Restart keeps exactly what was persisted: term, vote and log come back.
    @Test func restartRestoresPersistedState() throws {
        let sim = Self.cluster(3)
        let leader = try #require(try sim.electLeader())
        for i in 0..<5 { try Self.write(sim, "p\(i)") }
        let before = sim.raft(leader)
        sim.crash(leader)
        try sim.restart(leader)
        let after = sim.raft(leader)
        #expect(after.term == before.term)
        #expect(after.vote == before.vote)
        #expect(after.lastIndex == before.lastIndex)
        #expect(after.role == .follower)
    }

    /// Nothing unpersisted survives a crash: a Ready that was never handled is lost, and
    /// its vote was never sent.
    @Test func unpersistedStateIsLostOnCrash() throws {
        let sim = Self.cluster(3, preVote: false)
        let term = sim.raft(1).term
        for _ in 0..<25 where sim.raft(1).role == .follower { try sim.tick(1) }
        #expect(sim.raft(1).term == term + 1)
        sim.crash(1)  // before its Ready (vote for itself, vote requests) was handled
        try sim.restart(1)
        #expect(sim.raft(1).term == term)
        #expect(sim.inFlight.isEmpty)
    }
}
