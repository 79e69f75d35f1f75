/// One Raft replica as a pure state machine: feed it ticks, messages and requests,
/// collect the resulting work with `ready()`, carry it out, then `advance(_:)`.
///
/// It does no I/O, reads no clock and draws no global randomness, so the same inputs
/// always give the same outputs (which is what the simulation tests rely on).
///
/// Membership changes take effect on each node when it learns the change entry is
/// *committed* (not when appended). Together with "one pending change at a time" and
/// "a new leader commits an entry of its own term first", consecutive configurations
/// differ by one server and any two nodes are at most one change apart, so the
/// majorities they use always overlap.
public struct RaftNode: Sendable {
    public let id: NodeID
    public let config: RaftConfig

    public private(set) var term: Term = 0
    public private(set) var vote: NodeID?
    public private(set) var role: Role = .follower
    public private(set) var leader: NodeID?
    /// Node a leadership transfer is handing over to, while it is in progress.
    public private(set) var leadTransferee: NodeID?
    /// Leader only: bytes of entry data proposed in this term and not yet committed.
    private var uncommittedBytes = 0
    /// Ticks since this node started: the clock of `Progress.lastHeardTick`.
    private var ticks = 0

    var log: RaftLog
    var tracker: ProgressTracker
    var readOnly = ReadOnly()
    /// Reads that arrived before this leader committed an entry of its term.
    var deferredReads: [(from: NodeID, context: [UInt8])] = []
    /// Index of the latest config-change entry; a new one waits until it is committed.
    var pendingConfigIndex: Index = 0

    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var rng: SplitMix64

    var outbox: [Message] = []
    var readStates: [ReadState] = []
    var lastHardState: HardState
    var lastSoftState: SoftState

    // MARK: - Construction

    /// Starts (or restarts) a node from what its driver persisted.
    public init(config: RaftConfig, persisted: PersistedState) {
        self.id = config.id
        self.config = config
        self.rng = SplitMix64(seed: config.randomSeed ^ (config.id &* 0x9E37_79B9_7F4A_7C15))
        let snapshot =
            persisted.snapshot ?? Snapshot(meta: SnapshotMeta(index: 0, term: 0, config: ConfigState()), data: [])
        self.log = RaftLog(snapshot: snapshot, entries: persisted.entries, committed: persisted.hardState.commit)
        // Replay committed membership changes on top of the snapshot's configuration.
        var membership = snapshot.meta.config
        var index = log.firstIndex
        while index <= log.committed {
            if let change = log.entry(at: index)?.configChange { membership = membership.applying(change) }
            index += 1
        }
        self.tracker = ProgressTracker(config: membership)
        self.term = persisted.hardState.term
        self.vote = persisted.hardState.vote
        self.lastHardState = persisted.hardState
        self.lastSoftState = SoftState(leader: nil, role: .follower)
        becomeFollower(term: term, leader: nil)
        lastHardState = hardState
    }

    // MARK: - Observation

    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public var softState: SoftState { SoftState(leader: leader, role: role) }
    public var membership: ConfigState { tracker.config }
    public var commitIndex: Index { log.committed }
    public var appliedIndex: Index { log.applied }
    public var lastIndex: Index { log.lastIndex }
    public var firstIndex: Index { log.firstIndex }
    public var snapshotMeta: SnapshotMeta { log.snapshot.meta }
    public func term(at index: Index) -> Term? { log.term(at: index) }
    /// Leader only: how far `peer`'s log is known to match this leader's.
    public func match(of peer: NodeID) -> Index? { role == .leader ? tracker.progress[peer]?.match : nil }
    public func entry(at index: Index) -> Entry? { log.entry(at: index) }

    var isPromotable: Bool { tracker.config.voters.contains(id) }
    var electionTimeout: Int { config.electionTick }

    // MARK: - Role transitions

    private mutating func reset(term newTerm: Term) {
        if newTerm != term {
            precondition(newTerm > term, "term went backwards: \(term) -> \(newTerm)")
            term = newTerm
            vote = nil
        }
        leader = nil
        electionElapsed = 0
        heartbeatElapsed = 0
        randomizedElectionTimeout = electionTimeout + Int(rng.next() % UInt64(electionTimeout))
        leadTransferee = nil
        tracker.votes = [:]
        tracker.progress = [:]
        readOnly.reset()
        deferredReads = []
        pendingConfigIndex = 0
    }

    mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        reset(term: newTerm)
        role = .follower
        leader = newLeader
    }

    private mutating func becomePreCandidate() {
        precondition(role != .leader, "leader cannot become pre-candidate")
        // Pre-vote changes neither term nor vote: a lost pre-election leaves no trace.
        tracker.votes = [:]
        leader = nil
        role = .preCandidate
    }

    private mutating func becomeCandidate() {
        precondition(role != .leader, "leader cannot become candidate")
        reset(term: term + 1)
        vote = id
        role = .candidate
    }

    private mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate can become leader")
        reset(term: term)
        role = .leader
        leader = id
        tracker.resetProgress(lastIndex: log.lastIndex, maxInflight: config.maxInflight, maxInflightBytes: config.maxInflightBytes)
        for peer in tracker.progress.keys {
            tracker.progress[peer]!.recentActive = true
            tracker.progress[peer]!.lastHeardTick = ticks
        }
        uncommittedBytes = 0
        tracker.progress[id]?.match = log.persistedIndex
        // Entries of earlier terms may hold an uncommitted config change; no new one
        // until this term's first entry commits (which commits them too).
        pendingConfigIndex = log.lastIndex
        // The no-op lets this leader learn the commit index (Raft §8).
        appendAsLeader([Entry(term: term, index: log.lastIndex + 1)])
        broadcastAppend()
    }

    // MARK: - Inputs

    /// Advances the logical clock by one tick.
    public mutating func tick() {
        ticks += 1
        switch role {
        case .leader: tickLeader()
        case .follower, .preCandidate, .candidate: tickElection()
        }
    }

    private mutating func tickElection() {
        electionElapsed += 1
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            campaign(transfer: false)
        } else if role == .preCandidate {
            // A voter whose leader lease ran a tick behind ours ignored the first request;
            // asking again each tick (it changes nothing) saves a whole election timeout.
            askForPreVotes()
        }
    }

    private mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= electionTimeout {
            electionElapsed = 0
            if config.checkQuorum && !tracker.checkQuorumActive(leader: id) {
                // Lost contact with a quorum: stop acting as leader so clients go elsewhere.
                becomeFollower(term: term, leader: nil)
                return
            }
            leadTransferee = nil  // a transfer that took a whole election timeout failed
        }
        for (peer, pr) in tracker.progress {
            if case .snapshot(let pending, let elapsed) = pr.state {
                if elapsed + 1 >= electionTimeout {
                    tracker.progress[peer]!.snapshotFailed()
                } else {
                    tracker.progress[peer]!.state = .snapshot(pending: pending, elapsed: elapsed + 1)
                }
            }
        }
        if heartbeatElapsed >= config.heartbeatTick {
            heartbeatElapsed = 0
            broadcastHeartbeat()
        }
    }

    /// Proposes a state-machine command. Only the leader accepts.
    public mutating func propose(_ data: [UInt8]) -> ProposeResult {
        propose(batch: [data])
    }

    /// Proposes commands as consecutive entries that travel to followers together, so a
    /// burst of proposals costs one append per follower rather than one per command.
    /// When accepted, command `k` is at `index + k`, all in `term`.
    public mutating func propose(batch: [[UInt8]]) -> ProposeResult {
        guard role == .leader else { return .notLeader(leaderHint: leader) }
        if leadTransferee != nil { return .dropped(.leadershipTransferInProgress) }
        let first = log.lastIndex + 1
        guard !batch.isEmpty else { return .accepted(index: first, term: term) }
        // Always room for one batch when nothing is outstanding, however large.
        let size = batch.reduce(0) { $0 + $1.count }
        if uncommittedBytes > 0 && uncommittedBytes + size > config.maxUncommittedBytes {
            return .dropped(.tooMuchUncommitted)
        }
        uncommittedBytes += size
        var entries: [Entry] = []
        entries.reserveCapacity(batch.count)
        for (offset, data) in batch.enumerated() {
            entries.append(Entry(term: term, index: first + Index(offset), kind: .normal, data: data))
        }
        appendAsLeader(entries)
        broadcastAppend()
        return .accepted(index: first, term: term)
    }

    /// Proposes a single-server membership change; it takes effect once committed.
    public mutating func proposeConfigChange(_ change: ConfigChange) -> ProposeResult {
        guard role == .leader else { return .notLeader(leaderHint: leader) }
        if leadTransferee != nil { return .dropped(.leadershipTransferInProgress) }
        if pendingConfigIndex > log.committed { return .dropped(.configChangePending) }
        guard tracker.config.accepts(change) else { return .dropped(.invalidConfigChange) }
        if let refusal = strictReconfigurationRefusal(change) { return .dropped(refusal) }
        let entry = Entry(term: term, index: log.lastIndex + 1, kind: .configChange, data: change.wireBytes())
        appendAsLeader([entry])
        pendingConfigIndex = entry.index
        broadcastAppend()
        return .accepted(index: entry.index, term: entry.term)
    }

    /// etcd's strict reconfiguration check: no change may leave fewer voters answering than
    /// its new majority needs, and a learner becomes a voter only once it holds the committed log.
    private func strictReconfigurationRefusal(_ change: ConfigChange) -> DropReason? {
        let voters = tracker.config.voters
        func answering(_ ids: Set<NodeID>) -> Int {
            ids.filter { $0 == id || tracker.progress[$0].map { ticks - $0.lastHeardTick <= electionTimeout } == true }.count
        }
        switch change {
        case .removeNode(let target) where voters.contains(target):
            let remaining = voters.subtracting([target])
            return answering(remaining) > remaining.count / 2 ? nil : .wouldLoseQuorum
        case .addVoter(let target), .promoteLearner(let target):
            let grown = voters.union([target])
            if tracker.config.learners.contains(target) {
                guard (tracker.progress[target]?.match ?? 0) >= log.committed else { return .learnerBehind }
                return answering(grown) > grown.count / 2 ? nil : .wouldLoseQuorum
            }
            // A new voter answers nothing yet: the others alone must still form the larger majority.
            return answering(voters) > grown.count / 2 ? nil : .wouldLoseQuorum
        case .addLearner, .removeNode:
            return nil
        }
    }

    /// Asks the leader to hand leadership to `target` (Raft thesis §3.10).
    public mutating func transferLeadership(to target: NodeID) -> ProposeResult {
        guard role == .leader else { return .notLeader(leaderHint: leader) }
        if target == id { return .accepted(index: log.lastIndex, term: term) }
        guard tracker.config.voters.contains(target), tracker.progress[target] != nil else {
            return .dropped(.transferTargetNotVoter)
        }
        if leadTransferee == target { return .pending }
        leadTransferee = target
        // The transfer must finish within one election timeout.
        electionElapsed = 0
        if tracker.progress[target]!.match == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target)
        }
        return .pending
    }

    /// Starts a linearizable read tagged `context` (unique, non-empty). The answer comes
    /// as a `ReadState` once the leader has confirmed it still leads.
    public mutating func readIndex(context: [UInt8]) -> ProposeResult {
        guard !context.isEmpty else { return .dropped(.emptyReadContext) }
        switch role {
        case .leader:
            handleReadIndex(from: id, context: context)
            return .pending
        case .follower:
            guard let leader else { return .notLeader(leaderHint: nil) }
            send(to: leader, .readIndex(context: context))
            return .pending
        case .preCandidate, .candidate:
            return .notLeader(leaderHint: nil)
        }
    }

    /// Replaces the log prefix through `index` (which must be applied) with the driver's
    /// state-machine image. The driver stores the snapshot itself before calling this;
    /// it is not handed back in `Ready`.
    public mutating func compact(through index: Index, snapshotData: [UInt8]) throws(RaftError) {
        guard index > log.snapshotIndex, index <= log.applied, index <= log.persistedIndex else {
            throw .compactionOutOfRange(requested: index, snapshotIndex: log.snapshotIndex, applied: log.applied)
        }
        var membership = log.snapshot.meta.config
        var i = log.firstIndex
        while i <= index {
            if let change = log.entry(at: i)?.configChange { membership = membership.applying(change) }
            i += 1
        }
        let meta = SnapshotMeta(index: index, term: log.term(at: index)!, config: membership)
        log.compact(Snapshot(meta: meta, data: snapshotData))
    }

    /// Processes one message from a peer.
    public mutating func step(_ m: Message) {
        precondition(m.to == id, "message for \(m.to) delivered to \(id)")
        if m.from == id { return }

        if case .preVoteResponse(let granted) = m.payload {
            // A grant carries the term we asked for (term + 1); a rejection carries the
            // voter's own term, so we learn about newer terms and can win a later round.
            if granted {
                if role == .preCandidate && m.term == term + 1 { tally(from: m.from, granted: true) }
            } else if m.term > term {
                becomeFollower(term: m.term, leader: nil)
            } else if role == .preCandidate {
                tally(from: m.from, granted: false)
            }
            return
        }

        if m.term > term {
            switch m.payload {
            case .preVote, .vote(_, _, false):
                // Leader lease: while we hear from a live leader, a would-be candidate is
                // most likely partitioned or removed; don't let it disrupt us.
                if config.checkQuorum && leader != nil && electionElapsed < electionTimeout { return }
            default: break
            }
            switch m.payload {
            case .preVote:
                break  // answering a pre-vote never changes our term
            case .append, .heartbeat, .installSnapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: nil)
            }
        } else if m.term < term {
            switch m.payload {
            case .append, .heartbeat:
                // A stale leader cut off by check-quorum/pre-vote would never learn the new
                // term otherwise, since we no longer campaign against it.
                if config.checkQuorum || config.preVote {
                    send(to: m.from, .appendResponse(index: 0, reject: true, hint: 0))
                }
            case .preVote:
                send(to: m.from, .preVoteResponse(granted: false))
            default: break
            }
            return
        }

        switch m.payload {
        case .preVote(let lastIndex, let lastTerm):
            handleVoteRequest(m, preVote: true, lastIndex: lastIndex, lastTerm: lastTerm)
            return
        case .vote(let lastIndex, let lastTerm, _):
            handleVoteRequest(m, preVote: false, lastIndex: lastIndex, lastTerm: lastTerm)
            return
        default: break
        }

        switch role {
        case .leader: stepLeader(m)
        case .candidate, .preCandidate: stepCandidate(m)
        case .follower: stepFollower(m)
        }
    }

    // MARK: - Elections

    private mutating func campaign(transfer: Bool) {
        guard isPromotable else { return }
        if config.preVote && !transfer {
            becomePreCandidate()
            tracker.votes[id] = true
            if tracker.voteResult() == .won {
                startElection(transfer: false)
                return
            }
            askForPreVotes()
        } else {
            startElection(transfer: transfer)
        }
    }

    /// Sends a pre-vote request to every voter that has not answered this round.
    private mutating func askForPreVotes() {
        for voter in tracker.config.voters.sorted() where voter != id && tracker.votes[voter] == nil {
            outbox.append(
                Message(
                    from: id, to: voter, term: term + 1,
                    payload: .preVote(lastIndex: log.lastIndex, lastTerm: log.lastTerm)))
        }
    }

    private mutating func startElection(transfer: Bool) {
        becomeCandidate()
        tracker.votes[id] = true
        if tracker.voteResult() == .won {
            becomeLeader()
            return
        }
        for voter in tracker.config.voters.sorted() where voter != id {
            send(to: voter, .vote(lastIndex: log.lastIndex, lastTerm: log.lastTerm, transfer: transfer))
        }
    }

    private mutating func handleVoteRequest(_ m: Message, preVote: Bool, lastIndex: Index, lastTerm: Term) {
        // Two pre-candidates with equal logs would grant each other, both stand, and split
        // the vote; the lower id goes first instead. Pre-votes bind nobody, so this only
        // decides who may try first (a liveness choice), never who may win.
        let weGoFirst = preVote && role == .preCandidate && m.from > id
            && lastIndex == log.lastIndex && lastTerm == log.lastTerm
        let canVote =
            (vote == m.from || (vote == nil && leader == nil) || (preVote && m.term > term)) && !weGoFirst
        // Learners never vote, even if asked by a node with a newer configuration.
        let isLearner = tracker.config.learners.contains(id)
        if canVote && !isLearner && log.isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm) {
            if preVote {
                outbox.append(Message(from: id, to: m.from, term: m.term, payload: .preVoteResponse(granted: true)))
            } else {
                electionElapsed = 0
                vote = m.from
                send(to: m.from, .voteResponse(granted: true))
            }
        } else if preVote {
            send(to: m.from, .preVoteResponse(granted: false))
        } else {
            send(to: m.from, .voteResponse(granted: false))
        }
    }

    private mutating func tally(from voter: NodeID, granted: Bool) {
        if tracker.votes[voter] == nil { tracker.votes[voter] = granted }
        switch tracker.voteResult() {
        case .pending: break
        case .won:
            if role == .preCandidate { startElection(transfer: false) } else { becomeLeader() }
        case .lost:
            becomeFollower(term: term, leader: nil)
        }
    }

    private mutating func stepCandidate(_ m: Message) {
        switch m.payload {
        case .append, .heartbeat, .installSnapshot:
            // Someone already won this term.
            becomeFollower(term: m.term, leader: m.from)
            stepFollower(m)
        case .voteResponse(let granted):
            if role == .candidate { tally(from: m.from, granted: granted) }
        case .timeoutNow:
            break  // already campaigning
        default:
            break
        }
    }

    // MARK: - Follower

    private mutating func stepFollower(_ m: Message) {
        switch m.payload {
        case .append(let prevIndex, let prevTerm, let entries, let commit):
            electionElapsed = 0
            leader = m.from
            handleAppend(m, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case .heartbeat(let commit, let context):
            electionElapsed = 0
            leader = m.from
            // The leader sends min(match, commit), so we always hold that entry.
            advanceCommit(to: commit)
            send(to: m.from, .heartbeatResponse(context: context))
        case .installSnapshot(let snapshot):
            electionElapsed = 0
            leader = m.from
            handleSnapshot(m, snapshot)
        case .timeoutNow:
            campaign(transfer: true)
        case .readIndexResponse(let index, let context):
            readStates.append(ReadState(index: index, context: context))
        case .readIndex:
            // We lost leadership since the sender forwarded it. Passing it on would send a
            // message in another replica's name, which transports rightly refuse; the sender's
            // read times out and is retried at the leader it learns next.
            break
        default:
            break
        }
    }

    private mutating func handleAppend(
        _ m: Message, prevIndex: Index, prevTerm: Term, entries: [Entry], commit: Index
    ) {
        if prevIndex < log.committed {
            // Everything up to our commit is settled; just report where we are.
            send(to: m.from, .appendResponse(index: log.committed, reject: false, hint: 0))
            return
        }
        if let lastNew = log.maybeAppend(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries) {
            advanceCommit(to: min(commit, lastNew))
            send(to: m.from, .appendResponse(index: lastNew, reject: false, hint: 0))
        } else {
            // Skip back over our entries with terms above prevTerm: the leader's entries
            // there have terms <= prevTerm, so none of ours can match (one round trip
            // per divergent term instead of per entry).
            var hint = min(prevIndex, log.lastIndex)
            while hint > log.snapshotIndex, let t = log.term(at: hint), t > prevTerm { hint -= 1 }
            send(to: m.from, .appendResponse(index: prevIndex, reject: true, hint: hint))
        }
    }

    private mutating func handleSnapshot(_ m: Message, _ snapshot: Snapshot) {
        let meta = snapshot.meta
        if meta.index <= log.committed {
            send(to: m.from, .snapshotResponse(index: log.committed))
            return
        }
        if log.matchTerm(meta.index, meta.term) {
            // We already hold that prefix; the snapshot only tells us it is committed.
            // Entries after it are unverified, so report only the snapshot's index.
            advanceCommit(to: meta.index)
        } else {
            log.restore(snapshot)
            tracker.config = meta.config
        }
        send(to: m.from, .snapshotResponse(index: meta.index))
    }

    // MARK: - Leader

    private mutating func stepLeader(_ m: Message) {
        switch m.payload {
        case .appendResponse(let index, let reject, let hint):
            guard var pr = tracker.progress[m.from] else { return }
            pr.recentActive = true
            pr.lastHeardTick = ticks
            if reject {
                if pr.maybeDecrease(rejected: index, hint: hint) {
                    if pr.state == .replicate { pr.becomeProbe() }
                    tracker.progress[m.from] = pr
                    sendAppend(to: m.from)
                } else {
                    tracker.progress[m.from] = pr
                }
                return
            }
            let wasPaused = pr.isPaused
            if pr.maybeUpdate(index) {
                switch pr.state {
                case .probe: pr.becomeReplicate()
                case .snapshot(let pending, _) where pr.match >= pending: pr.becomeProbe()
                case .replicate: pr.inflights.free(through: index)
                case .snapshot: break
                }
                tracker.progress[m.from] = pr
                if !maybeCommit() && wasPaused { sendAppend(to: m.from) }
                // Keep the pipeline full while there is more to send.
                while sendAppend(to: m.from, sendIfEmpty: false) {}
                if m.from == leadTransferee && tracker.progress[m.from]?.match == log.lastIndex {
                    send(to: m.from, .timeoutNow)
                }
            } else {
                tracker.progress[m.from] = pr
            }
        case .snapshotResponse(let index):
            guard var pr = tracker.progress[m.from] else { return }
            pr.recentActive = true
            pr.lastHeardTick = ticks
            _ = pr.maybeUpdate(index)
            if case .snapshot = pr.state { pr.becomeProbe() }
            tracker.progress[m.from] = pr
            _ = maybeCommit()
            sendAppend(to: m.from)
        case .heartbeatResponse(let context):
            guard var pr = tracker.progress[m.from] else { return }
            pr.recentActive = true
            pr.lastHeardTick = ticks
            pr.probeSent = false
            if pr.state == .replicate && pr.inflights.isFull { pr.inflights.freeFirst() }
            tracker.progress[m.from] = pr
            if pr.match < log.lastIndex { sendAppend(to: m.from) }
            if !context.isEmpty, let acks = readOnly.recordAck(from: m.from, context: context),
                tracker.quorum.isQuorum(acks)
            {
                for request in readOnly.release(through: context) {
                    answerRead(from: request.from, index: request.index, context: request.context)
                }
            }
        case .readIndex(let context):
            handleReadIndex(from: m.from, context: context)
        case .append, .heartbeat, .installSnapshot:
            preconditionFailure("two leaders in term \(term): \(id) and \(m.from)")
        default:
            break
        }
    }

    private mutating func handleReadIndex(from: NodeID, context: [UInt8]) {
        // Until an entry of this term commits, our commit index may be behind what
        // earlier leaders acknowledged (Raft thesis §6.4, step 1).
        guard log.term(at: log.committed) == term else {
            deferredReads.append((from, context))
            return
        }
        if tracker.quorum.isQuorum([id]) {
            answerRead(from: from, index: log.committed, context: context)
            return
        }
        if readOnly.add(index: log.committed, from: from, context: context, leader: id) {
            broadcastHeartbeat()
        }
    }

    private mutating func answerRead(from: NodeID, index: Index, context: [UInt8]) {
        if from == id {
            readStates.append(ReadState(index: index, context: context))
        } else {
            send(to: from, .readIndexResponse(index: index, context: context))
        }
    }

    private mutating func appendAsLeader(_ entries: [Entry]) {
        log.append(entries)
        // Our own progress moves in `advance`, once the driver has persisted these.
    }

    /// Moves the commit index to what a quorum has persisted, if that entry is from
    /// this term (Raft §5.4.2). Returns whether it moved.
    @discardableResult
    private mutating func maybeCommit() -> Bool {
        guard role == .leader else { return false }
        var moved = false
        while role == .leader {
            let candidate = tracker.committedIndex()
            guard candidate > log.committed, log.term(at: candidate) == term else { break }
            advanceCommit(to: candidate)
            moved = true
        }
        if moved && role == .leader {
            // Followers learn the new commit index with the next append or heartbeat: an
            // append of its own would cost each follower a message and an answer per commit,
            // and nothing waits for it (the leader acknowledges clients on its own commit).
            // Measured (bench-raft, two interleaved pairs): sending it at once cost 8-16% more
            // CPU per write at 1 client and gave no steady gain at 64 clients.
            broadcastAppend(sendIfEmpty: false)
            if log.term(at: log.committed) == term && !deferredReads.isEmpty {
                let reads = deferredReads
                deferredReads = []
                for read in reads { handleReadIndex(from: read.from, context: read.context) }
            }
        }
        return moved
    }

    /// Raises the commit index and applies membership changes that became committed.
    private mutating func advanceCommit(to index: Index) {
        let old = log.committed
        guard index > old else { return }
        log.commit(to: index)
        var i = old + 1
        while i <= index {
            let entry = log.entry(at: i)
            if role == .leader, let entry { uncommittedBytes = max(0, uncommittedBytes - entry.data.count) }
            if let change = entry?.configChange { applyConfigChange(change) }
            i += 1
        }
    }

    private mutating func applyConfigChange(_ change: ConfigChange) {
        tracker.config = tracker.config.applying(change)
        guard role == .leader else { return }
        let members = tracker.config.members
        for node in tracker.progress.keys where !members.contains(node) {
            tracker.progress[node] = nil
        }
        for node in members {
            if tracker.progress[node] == nil {
                tracker.progress[node] = Progress(
                    next: log.lastIndex + 1, maxInflight: config.maxInflight, maxInflightBytes: config.maxInflightBytes,
                    isLearner: false)
                tracker.progress[node]!.recentActive = true
                tracker.progress[node]!.lastHeardTick = ticks
            }
            tracker.progress[node]!.isLearner = tracker.config.learners.contains(node)
        }
        if let transferee = leadTransferee, !tracker.config.voters.contains(transferee) {
            leadTransferee = nil
        }
        if !tracker.config.voters.contains(id) {
            // Removed ourselves: hand over to the most caught-up voter so the group does
            // not wait a full election timeout, then stop leading.
            let heir = tracker.config.voters.sorted().first { tracker.progress[$0]?.match == log.lastIndex }
            if let heir { send(to: heir, .timeoutNow) }
            becomeFollower(term: term, leader: nil)
        }
    }

    private mutating func broadcastAppend(sendIfEmpty: Bool = true) {
        for peer in tracker.progress.keys.sorted() where peer != id {
            sendAppend(to: peer, sendIfEmpty: sendIfEmpty)
        }
    }

    private mutating func broadcastHeartbeat() {
        let context = readOnly.lastContext ?? []
        for (peer, pr) in tracker.progress.sorted(by: { $0.key < $1.key }) where peer != id {
            send(to: peer, .heartbeat(commit: min(pr.match, log.committed), context: context))
        }
    }

    /// Sends the next append (or the snapshot) to `peer` unless flow control says wait.
    /// Returns whether a message with entries went out.
    @discardableResult
    private mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool = true) -> Bool {
        guard var pr = tracker.progress[peer], !pr.isPaused else { return false }
        let prevIndex = pr.next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            // The follower needs entries we compacted: send the snapshot instead.
            pr.becomeSnapshot(log.snapshotIndex)
            tracker.progress[peer] = pr
            send(to: peer, .installSnapshot(log.snapshot))
            return false
        }
        let entries = log.entries(from: pr.next, maxCount: config.maxEntriesPerMessage, maxBytes: config.maxBytesPerMessage)
        if entries.isEmpty && !sendIfEmpty { return false }
        pr.sentAppend(lastIndex: entries.last?.index ?? prevIndex, count: entries.count,
                      bytes: entries.reduce(0) { $0 + $1.data.count })
        tracker.progress[peer] = pr
        send(to: peer, .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: log.committed))
        return !entries.isEmpty
    }

    private mutating func send(to peer: NodeID, _ payload: Message.Payload) {
        outbox.append(Message(from: id, to: peer, term: term, payload: payload))
    }

    // MARK: - Ready

    /// Last index the driver has durably stored.
    public var persistedIndex: Index { log.persistedIndex }
    /// Whether every entry of this replica's log is durably stored (no write of it under way).
    public var ownLogIsDurable: Bool { log.persistedIndex >= log.lastIndex }

    /// A background write the driver handed off with `advance(_:writing:)` is on disk, through
    /// `index` written in `term`. A write of entries that a newer leader's have since replaced
    /// (the term differs) proves nothing and is ignored: the replacing write follows it.
    public mutating func persisted(through index: Index, term entryTerm: Term) {
        guard index >= log.unstable.offset, log.term(at: index) == entryTerm, index < log.unstable.handedOff else { return }
        log.unstable.stable(through: index)
        countOwnPersistence()
    }

    /// Leader: our own log counts toward the quorum only once it is durable.
    private mutating func countOwnPersistence() {
        guard role == .leader, var me = tracker.progress[id] else { return }
        _ = me.maybeUpdate(log.persistedIndex)
        tracker.progress[id] = me
        maybeCommit()
    }

    /// Whether `ready()` would return something.
    public var hasReady: Bool { ready() != nil }

    /// The work accumulated since the last `advance`, or nil if there is none.
    public func ready() -> Ready? {
        var ready = Ready()
        if softState != lastSoftState { ready.softState = softState }
        if hardState != lastHardState { ready.hardState = hardState }
        ready.snapshot = log.unstable.snapshot
        ready.entries = log.unstableEntries
        ready.committedEntries = log.entriesToApply
        ready.messages = outbox
        ready.readStates = readStates
        if ready.softState == nil && ready.hardState == nil && ready.snapshot == nil && ready.entries.isEmpty
            && ready.committedEntries.isEmpty && ready.messages.isEmpty && ready.readStates.isEmpty
        {
            return nil
        }
        return ready
    }

    /// Records that the driver carried out `ready` (persisted, sent, applied).
    public mutating func advance(_ ready: Ready) {
        advance(ready, writing: false)
    }

    /// Records that the driver carried out `ready`. With `writing`, its entries and hard state
    /// are still on their way to disk (a storage thread writes them in the background, in order):
    /// they are not handed out again, and they count toward a quorum only once the driver calls
    /// `persisted(through:term:)`. A Ready with a snapshot must be written in line (`writing` false).
    public mutating func advance(_ ready: Ready, writing: Bool) {
        precondition(!writing || ready.snapshot == nil, "a snapshot from the leader is written in line")
        if let hs = ready.hardState { lastHardState = hs }
        if let ss = ready.softState { lastSoftState = ss }
        if let snapshot = ready.snapshot, log.unstable.snapshot == snapshot {
            log.unstable.snapshot = nil
            log.applied(to: snapshot.meta.index)
        }
        if let last = ready.entries.last, log.term(at: last.index) == last.term {
            if writing {
                log.unstable.handedOff(through: last.index)
            } else {
                log.unstable.stable(through: last.index)
            }
        }
        if let last = ready.committedEntries.last { log.applied(to: last.index) }
        precondition(ready.messages.count <= outbox.count && ready.readStates.count <= readStates.count,
                     "advance called with a Ready this node did not produce")
        outbox.removeFirst(ready.messages.count)
        readStates.removeFirst(ready.readStates.count)
        countOwnPersistence()
    }
}
