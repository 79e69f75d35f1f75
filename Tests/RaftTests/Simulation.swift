import SpecolaRaft

/// xoshiro256** seeded through SplitMix64: the simulation's only source of randomness.
struct Xoshiro: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s = (sm.next(), sm.next(), sm.next(), sm.next())
    }

    mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// An invariant violation, reported with enough context to replay.
struct SimFailure: Error, CustomStringConvertible {
    var description: String
}

/// The applied state of a simulated state machine: how far it got and a digest chain
/// of everything applied, so two replicas agree iff their digests agree.
struct StateMachine: Equatable {
    var index: Index = 0
    var digest: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func apply(_ e: Entry) {
        index = e.index
        var h = digest ^ e.term ^ (e.index &* 0x100_0000_01B3)
        for b in e.data { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        digest = h &* 0x9E37_79B9_7F4A_7C15
    }

    var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: index >> ($0 * 8)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: digest >> ($0 * 8)) }
    }

    init() {}
    init(bytes: [UInt8]) {
        if bytes.count == 16 {
            index = (0..<8).reduce(0) { $0 | UInt64(bytes[$1]) << ($1 * 8) }
            digest = (0..<8).reduce(0) { $0 | UInt64(bytes[$1 + 8]) << ($1 * 8) }
        }
    }
}

/// One simulated replica: the core (nil while crashed), its durable storage and its
/// state machine.
final class SimNode {
    let id: NodeID
    let config: RaftConfig
    var raft: RaftNode?
    var storage: PersistedState
    var machine = StateMachine()
    /// Highest commit index whose entries were checked against the global record.
    var checkedCommit: Index = 0
    /// Background writes (`Simulation.backgroundWrites`) not yet on disk, oldest first, each
    /// with the messages that leave once it is.
    var pendingWrites: [(hardState: HardState?, entries: [Entry], messages: [Message])] = []

    /// The hard state the driver last handed to storage: what the persistence policy compares with.
    var submittedHardState: HardState { pendingWrites.last { $0.hardState != nil }?.hardState ?? storage.hardState }

    init(id: NodeID, config: RaftConfig, storage: PersistedState) {
        self.id = id
        self.config = config
        self.storage = storage
        restart()
    }

    func restart() {
        raft = RaftNode(config: config, persisted: storage)
        machine = StateMachine(bytes: storage.snapshot?.data ?? [])
        checkedCommit = raft!.snapshotMeta.index
    }
}

/// A deterministic cluster: nodes, a lossy network and the invariant checker. Used both
/// by scripted paper tests (no faults, `deliverAll`) and by the seeded random runs.
final class Simulation {
    struct Envelope {
        var message: Message
        var deliverAt: Int
    }

    /// Knobs for the random network; all zero means a perfect network.
    struct Faults {
        var drop = 0.0
        var duplicate = 0.0
        var maxDelay = 0
        /// Chance that a node crashes after sending a Ready's early messages, before persisting it.
        var crashBeforePersist = 0.0
    }

    var nodes: [NodeID: SimNode] = [:]
    var ids: [NodeID] { nodes.keys.sorted() }
    var rng: Xoshiro
    var faults = Faults()
    var now = 0
    var inFlight: [Envelope] = []
    /// Nodes in different groups cannot talk; nil means fully connected.
    var partition: [NodeID: Int]? = nil
    /// Directed links cut by scripted tests.
    var cut: Set<[NodeID]> = []
    /// Scripted tests: drop any message this returns true for.
    var dropIf: ((Message) -> Bool)? = nil
    /// Whether `deliver` processes the receiver's Ready immediately (else it may pile up).
    var readyProbability = 1.0
    /// Makes the driver send every message before persisting (a bug the invariants must catch).
    var driverSendsBeforePersisting = false
    /// The driver writes as production's storage thread does: a Ready's writes and the messages
    /// that wait for them queue per node and land, in order and together, when `flushWrites`
    /// runs (group commit); the core learns of them through `persisted(through:term:)`. A crash
    /// loses what has not landed, as a power cut loses what was not synced.
    var backgroundWrites = false
    var trace: [String]? = nil

    // Invariant bookkeeping, global across crashes.
    var leaderOfTerm: [Term: NodeID] = [:]
    var committed: [Index: Entry] = [:]
    /// The term in which each index became committed (the committing leader's term): no leader
    /// of a later term may lack it.
    var committedTerm: [Index: Term] = [:]
    var maxCommitted: Index = 0
    var appliedDigest: [Index: UInt64] = [:]
    struct IndexTerm: Hashable { var index: Index; var term: Term }
    var entryAt: [IndexTerm: Entry] = [:]
    var prevTermOf: [IndexTerm: Term] = [:]
    /// ReadIndex context -> smallest index it may return (writes acknowledged before it).
    var readFloor: [[UInt8]: Index] = [:]
    var readsServed = 0
    var nextReadID: UInt64 = 1

    init(voters: [NodeID], spares: [NodeID] = [], seed: UInt64, tune: (inout RaftConfig) -> Void = { _ in }) {
        rng = Xoshiro(seed: seed)
        let boot = PersistedState.bootstrap(voters: Set(voters))
        for id in voters + spares {
            var config = RaftConfig(id: id, electionTick: 10, heartbeatTick: 2, randomSeed: seed)
            tune(&config)
            nodes[id] = SimNode(id: id, config: config, storage: voters.contains(id) ? boot : PersistedState())
        }
    }

    func note(_ s: @autoclosure () -> String) {
        if trace != nil { trace!.append("t=\(now) " + s()) }
    }

    func raft(_ id: NodeID) -> RaftNode { nodes[id]!.raft! }

    /// Every live node that believes it leads, newest term first.
    var leaders: [NodeID] {
        ids.filter { nodes[$0]!.raft?.role == .leader }.sorted { raft($0).term > raft($1).term }
    }

    // MARK: Driver actions

    func withRaft<T>(_ id: NodeID, _ body: (inout RaftNode) throws -> T) rethrows -> T? {
        guard let node = nodes[id], node.raft != nil else { return nil }
        return try body(&node.raft!)
    }

    func tick(_ id: NodeID) throws {
        withRaft(id) { $0.tick() }
        try check()
    }

    func tickAll() throws {
        now += 1
        for id in ids where nodes[id]!.raft != nil { try tick(id) }
    }

    func propose(at id: NodeID, _ data: [UInt8]) throws -> ProposeResult? {
        let result = withRaft(id) { $0.propose(data) }
        note("propose \(id) -> \(String(describing: result))")
        try check()
        return result
    }

    /// Proposes several commands as one batch, as the production driver does.
    func propose(at id: NodeID, batch: [[UInt8]]) throws -> ProposeResult? {
        let result = withRaft(id) { $0.propose(batch: batch) }
        note("propose \(batch.count) at \(id) -> \(String(describing: result))")
        try check()
        return result
    }

    func read(at id: NodeID) throws -> [UInt8]? {
        let context = (0..<8).map { UInt8(truncatingIfNeeded: nextReadID >> ($0 * 8)) }
        nextReadID += 1
        guard let result = withRaft(id, { $0.readIndex(context: context) }) else { return nil }
        note("read \(id) -> \(result)")
        guard result == .pending else { return nil }
        readFloor[context] = maxCommitted
        return context
    }

    func crash(_ id: NodeID) {
        note("crash \(id)")
        nodes[id]!.raft = nil
        nodes[id]!.pendingWrites = []
    }

    func restart(_ id: NodeID) throws {
        note("restart \(id)")
        nodes[id]!.restart()
        try check()
    }

    func compact(_ id: NodeID) throws {
        guard let node = nodes[id], let raft = node.raft else { return }
        let index = node.machine.index
        // Background writes: entries commit and apply once a majority stored them, perhaps before
        // this node's own write landed; the snapshot waits for it, as the production driver's does.
        guard index > raft.snapshotMeta.index, index <= raft.persistedIndex else { return }
        do {
            try node.raft!.compact(through: index, snapshotData: node.machine.bytes)
        } catch {
            throw SimFailure(description: "compaction at applied index \(index) refused: \(error)")
        }
        // The driver persists the snapshot it built, then may drop the entries it covers.
        node.storage.compact(to: Snapshot(meta: node.raft!.snapshotMeta, data: node.machine.bytes))
        note("compact \(id) through \(index)")
    }

    // MARK: Ready handling

    /// Sends, persists, sends, applies and advances one node's Ready, in the documented order,
    /// as the production driver does; it may crash between the early sends and the persist.
    func processReady(_ id: NodeID) throws {
        guard let node = nodes[id], let rd = node.raft?.ready() else { return }
        // A broken driver (for tests of this simulation): everything goes out before the write.
        let early = driverSendsBeforePersisting ? rd.messages : rd.messagesBeforePersist
        for m in early { send(m) }
        if faults.crashBeforePersist > 0 && rng.chance(faults.crashBeforePersist) {
            crash(id)
            return
        }
        if backgroundWrites && rd.snapshot != nil { try flushWrites(id) }
        var writing = false
        // The production policy decides what reaches the disk (a commit-only change does not).
        if PersistencePolicy.mustPersist(rd, durable: node.submittedHardState) {
            if backgroundWrites && rd.snapshot == nil {
                try checkNewEntries(node, rd.entries)
                let hardState = PersistencePolicy.hardStateToStore(rd, durable: node.submittedHardState)
                node.pendingWrites.append((hardState, rd.entries, driverSendsBeforePersisting ? [] : rd.messagesAfterPersist))
                writing = true
            } else {
                try checkNewEntries(node, rd.entries)
                try store(node, hardState: PersistencePolicy.hardStateToStore(rd, durable: node.submittedHardState),
                          entries: rd.entries, snapshot: rd.snapshot)
            }
        } else if backgroundWrites && !node.pendingWrites.isEmpty && !driverSendsBeforePersisting {
            // Nothing of its own to write, but its answers may promise what a queued write carries.
            node.pendingWrites.append((nil, [], rd.messagesAfterPersist))
            writing = true
        }
        if !driverSendsBeforePersisting && !writing {
            for m in rd.messagesAfterPersist { send(m) }
        }
        if let snap = rd.snapshot {
            let image = StateMachine(bytes: snap.data)
            if snap.meta.index > 0, appliedDigest[snap.meta.index] != image.digest {
                throw SimFailure(description: "node \(id) snapshot at \(snap.meta.index) has a digest nobody applied")
            }
            node.machine = image
        }
        for e in rd.committedEntries {
            guard e.index == node.machine.index + 1 else {
                throw SimFailure(description: "node \(id) applied \(e.index) after \(node.machine.index)")
            }
            node.machine.apply(e)
            if let d = appliedDigest[e.index] {
                if d != node.machine.digest {
                    throw SimFailure(description: "state machine safety: node \(id) diverged at \(e.index)")
                }
            } else {
                appliedDigest[e.index] = node.machine.digest
            }
        }
        for rs in rd.readStates {
            guard let floor = readFloor[rs.context] else {
                throw SimFailure(description: "node \(id) got a read state for an unknown context")
            }
            if rs.index < floor {
                throw SimFailure(
                    description: "stale read at node \(id): index \(rs.index) < acknowledged \(floor)")
            }
            readsServed += 1
        }
        node.raft!.advance(rd, writing: writing && rd.snapshot == nil)
        try check()
    }

    /// Writes what a Ready asks for to the node's durable storage, checking the driver's contract.
    private func store(_ node: SimNode, hardState: HardState?, entries: [Entry], snapshot: Snapshot?) throws {
        if let first = entries.first {
            let kept = snapshot.map { $0.meta.index } ?? node.storage.entries.last(where: { $0.index < first.index })?.index
                ?? node.storage.snapshot?.meta.index ?? 0
            guard first.index == kept + 1 else {
                throw SimFailure(description: "node \(node.id) persisted entries at \(first.index), storage expects \(kept + 1)")
            }
        }
        if let hs = hardState, hs.term < node.storage.hardState.term {
            throw SimFailure(description: "node \(node.id) persisted term going backwards")
        }
        node.storage.persist(hardState: hardState, entries: entries, snapshot: snapshot)
    }

    /// Background writes: everything queued on `id` lands (one group commit), then the messages
    /// that waited for it leave and the core learns what is durable.
    func flushWrites(_ id: NodeID) throws {
        guard let node = nodes[id], node.raft != nil, !node.pendingWrites.isEmpty else { return }
        let writes = node.pendingWrites
        node.pendingWrites = []
        for write in writes where write.hardState != nil || !write.entries.isEmpty {
            try store(node, hardState: write.hardState, entries: write.entries, snapshot: nil)
        }
        note("flush \(id): \(writes.count) writes")
        for write in writes { for m in write.messages { send(m) } }
        if let last = writes.last(where: { !$0.entries.isEmpty })?.entries.last {
            node.raft!.persisted(through: last.index, term: last.term)
        }
        try check()
    }

    func flushAllWrites() throws {
        for id in ids { try flushWrites(id) }
    }

    func processAllReadies() throws {
        var progress = true
        var rounds = 0
        while progress && rounds < 50 {
            progress = false
            rounds += 1
            for id in ids where nodes[id]!.raft?.ready() != nil || !nodes[id]!.pendingWrites.isEmpty {
                try processReady(id)
                try flushWrites(id)
                progress = true
            }
        }
    }

    // MARK: Network

    func connected(_ a: NodeID, _ b: NodeID) -> Bool {
        if cut.contains([a, b]) { return false }
        guard let partition else { return true }
        return partition[a] == partition[b]
    }

    func send(_ m: Message) {
        // Every message must survive the wire format the real transport will use.
        if rng.below(64) == 0, (try? Message(wire: m.wireBytes())) != m {
            preconditionFailure("wire round trip changed \(m)")
        }
        guard connected(m.from, m.to), !rng.chance(faults.drop), !(dropIf?(m) ?? false) else { return }
        let copies = rng.chance(faults.duplicate) ? 2 : 1
        for _ in 0..<copies {
            let delay = faults.maxDelay > 0 ? rng.below(faults.maxDelay + 1) : 0
            inFlight.append(Envelope(message: m, deliverAt: now + delay))
        }
    }

    /// Delivers one due message, chosen at random so delivery order is shuffled.
    func deliverOne() throws -> Bool {
        let due = inFlight.indices.filter { inFlight[$0].deliverAt <= now }
        guard !due.isEmpty else { return false }
        let i = due[rng.below(due.count)]
        let m = inFlight.remove(at: i).message
        guard connected(m.from, m.to), let node = nodes[m.to], node.raft != nil else { return true }
        note("deliver \(m.from)->\(m.to) t\(m.term) \(m.payload)")
        // The leader sends a heartbeat's commit only up to what this node acknowledged; beyond its
        // log, the node lost entries it had acknowledged (the core would stop the process, as etcd does).
        if case .heartbeat(let commit, _) = m.payload, m.term >= node.raft!.term, commit > node.raft!.lastIndex {
            throw SimFailure(description: "durability: node \(m.to) acknowledged entries through \(commit) but holds \(node.raft!.lastIndex)")
        }
        node.raft!.step(m)
        try check()
        if rng.chance(readyProbability) { try processReady(m.to) }
        if backgroundWrites, rng.chance(0.3) { try flushWrites(ids[rng.below(ids.count)]) }
        return true
    }

    /// Scripted tests: deliver and process until the network is quiet.
    func deliverAll(limit: Int = 100_000) throws {
        var n = 0
        try processAllReadies()
        while n < limit {
            if try !deliverOne() {
                try processAllReadies()
                if inFlight.allSatisfy({ $0.deliverAt > now }) { break }
            }
            n += 1
        }
        try processAllReadies()
    }

    /// Scripted tests: cut every link to and from `id`.
    func isolate(_ id: NodeID) {
        for other in ids where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    func heal() {
        cut = []
        partition = nil
    }

    /// Scripted tests: tick only `id` (settling the network after each tick) until it
    /// leads or `maxTicks` pass. Other nodes do not tick, so they never compete.
    func campaign(_ id: NodeID, maxTicks: Int = 60) throws {
        for _ in 0..<maxTicks where raft(id).role != .leader {
            try tick(id)
            try deliverAll()
        }
    }

    /// Ticks every node until one leads or `maxTicks` pass; returns the leader.
    @discardableResult
    func electLeader(maxTicks: Int = 200) throws -> NodeID? {
        for _ in 0..<maxTicks {
            try deliverAll()
            if let l = leaders.first, raft(l).term(at: raft(l).commitIndex) == raft(l).term {
                return l
            }
            try tickAll()
        }
        try deliverAll()
        return leaders.first
    }

    // MARK: Invariants

    /// Checked after every event.
    func check() throws {
        // Leaders first: the leader that commits an index is its first observer, so the
        // record holds its term, the commit term, not a follower's possibly later term.
        for id in leaders + ids.filter({ nodes[$0]!.raft?.role != .leader }) {
            guard let node = nodes[id], let raft = node.raft else { continue }
            if raft.role == .leader {
                if let other = leaderOfTerm[raft.term] {
                    if other != id {
                        throw SimFailure(description: "election safety: \(other) and \(id) both lead term \(raft.term)")
                    }
                } else {
                    leaderOfTerm[raft.term] = id
                    try checkLeaderCompleteness(id)
                }
            }
            if raft.commitIndex > node.checkedCommit {
                try checkCommitted(node, raft)
            } else if raft.commitIndex < node.checkedCommit {
                node.checkedCommit = raft.commitIndex  // restarted with an older commit
            }
        }
    }

    /// Committed entries never change: every node's committed prefix matches the record.
    private func checkCommitted(_ node: SimNode, _ raft: RaftNode) throws {
        var i = max(node.checkedCommit + 1, raft.firstIndex)
        while i <= raft.commitIndex {
            guard let e = raft.entry(at: i) else {
                throw SimFailure(description: "node \(node.id) committed \(i) but has no entry there")
            }
            if let known = committed[i] {
                if known != e {
                    throw SimFailure(
                        description: "state machine safety: node \(node.id) committed \(e) at \(i), earlier \(known)")
                }
            } else {
                committed[i] = e
                // Followers learn a commit from their current term's leader, so their term is
                // an upper bound (a weaker check), used only if no leader observed it first.
                let commitTerm = raft.term
                committedTerm[i] = commitTerm
                if i > maxCommitted { maxCommitted = i }
                // Any leader of a later term must already hold this entry.
                for l in leaders where self.raft(l).term > commitTerm {
                    let leader = self.raft(l)
                    if i > leader.snapshotMeta.index && leader.entry(at: i) != e {
                        throw SimFailure(description: "leader completeness: leader \(l) of term \(leader.term) lacks committed \(i)")
                    }
                }
            }
            i += 1
        }
        node.checkedCommit = raft.commitIndex
    }

    private func checkLeaderCompleteness(_ id: NodeID) throws {
        let raft = self.raft(id)
        var i = raft.snapshotMeta.index + 1
        while i <= maxCommitted {
            if let e = committed[i], let t = committedTerm[i], t < raft.term, raft.entry(at: i) != e {
                throw SimFailure(description: "leader completeness: leader \(id) of term \(raft.term) lacks committed \(i)")
            }
            i += 1
        }
    }

    /// Log matching: an (index, term) pair names exactly one entry and one predecessor term.
    private func checkNewEntries(_ node: SimNode, _ entries: [Entry]) throws {
        guard let raft = node.raft else { return }
        for e in entries {
            let key = IndexTerm(index: e.index, term: e.term)
            if let known = entryAt[key] {
                if known != e { throw SimFailure(description: "log matching: two entries at \(key)") }
            } else {
                entryAt[key] = e
            }
            if e.index > 1, let prev = raft.term(at: e.index - 1) {
                if let known = prevTermOf[key] {
                    if known != prev {
                        throw SimFailure(description: "log matching: node \(node.id) differs before \(key)")
                    }
                } else {
                    prevTermOf[key] = prev
                }
            }
        }
    }

    /// Full pairwise log-matching check; too slow for every step, run at the end.
    func checkLogMatchingFully() throws {
        let live = ids.compactMap { nodes[$0]!.raft }
        for a in live {
            for b in live where a.id < b.id {
                let lo = max(a.firstIndex, b.firstIndex)
                let hi = min(a.lastIndex, b.lastIndex)
                guard lo <= hi else { continue }
                var i = hi
                while i >= lo, a.term(at: i) != b.term(at: i) { i -= 1 }
                while i >= lo {
                    if a.entry(at: i) != b.entry(at: i) {
                        throw SimFailure(description: "log matching: nodes \(a.id), \(b.id) differ at \(i)")
                    }
                    if i == 0 { break }
                    i -= 1
                }
            }
        }
    }
}
