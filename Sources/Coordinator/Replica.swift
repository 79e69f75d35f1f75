import SpecolaClusterCore
import Foundation
import Logging
import SpecolaProtocol
import SpecolaRaft
import SpecolaProcesses

/// One coordinator replica: drives the pure Raft core (persist, send, apply),
/// owns the replicated `ClusterState`, and answers proposals and
/// linearizable reads once they are committed and applied.
public actor Replica: DirectPeerInbox {
    /// Timing and identity of this replica.
    public struct Settings: Sendable {
        public var id: NodeID
        public var name: String
        public var tick: Duration = .milliseconds(30)
        public var electionTicks = 10
        public var heartbeatTicks = 1
        /// Take a snapshot and compact the log after this many applied entries.
        public var snapshotEvery: UInt64 = 20_000
        public var requestTimeout: Duration = .seconds(10)

        public init(id: NodeID, name: String) {
            self.id = id
            self.name = name
        }
    }

    struct Proposal {
        var term: Term
        /// The command's proposal id; empty for membership changes, which are matched by term.
        var id: Data = Data()
        var startedAt: ContinuousClock.Instant
        /// When the core took it (for `WritePhases`).
        var proposedAt: ContinuousClock.Instant = .now
        var continuation: CheckedContinuation<ApplyOutcome, any Error>
    }

    /// A command waiting for room in the batch window, where it joins the others queued with it.
    struct QueuedProposal {
        var id: Data
        var data: [UInt8]
        var startedAt: ContinuousClock.Instant
        var continuation: CheckedContinuation<ApplyOutcome, any Error>
    }

    /// One ReadIndex round: every read barrier that joined it gets its answer.
    struct ReadRound {
        var startedAt: ContinuousClock.Instant
        var waiters: [CheckedContinuation<Index, any Error>]

        func fail(_ error: any Error) { for waiter in waiters { waiter.resume(throwing: error) } }
    }

    public let settings: Settings
    private var raft: RaftNode
    private let storage: RaftStorage
    /// Writes the log, snapshots included, on its own thread (group commit). This actor never
    /// waits for the disk, so it runs on the cooperative pool with the gRPC handlers that call
    /// it: a call and its answer need no switch between threads.
    private let writer: RaftLogWriter
    private let transport: PeerTransport
    private let logger: Logger
    private let staticPeers: [NodeID: Specola_V1_Member]
    /// Where every replica is: derived from `staticPeers` and the replicated members, kept current.
    private var addressBook: [NodeID: Specola_V1_Member] = [:]
    /// The applied deny list, for the interceptor that checks every call.
    nonisolated let denyList = DenyList()
    /// Projects and role bindings as applied, for authorizing calls without waiting on this actor.
    nonisolated let accessView = AccessView()
    private(set) var state: ClusterState
    private var applied: Index
    private var appliedTerm: Term = 0
    private var proposals: [Index: Proposal] = [:]
    private var queuedProposals: [QueuedProposal] = []
    /// Last index of each proposal batch replicated but not yet committed, oldest first
    /// (`ProposalWindow` decides when the next batch goes).
    private var batchesInFlight: [Index] = []
    /// Bytes of commands waiting for the window beyond which new ones are refused at once
    /// (RESOURCE_EXHAUSTED, not executed), so a burst of large writes cannot outgrow memory.
    static let maxQueuedBytes = 64 << 20
    private var queuedBytes = 0
    /// The ReadIndex round under way, by context (at most one is started at a time).
    private var readRequests: [[UInt8]: ReadRound] = [:]
    /// Read barriers that arrived while a round was under way. They need a round that starts
    /// after they did, so they wait and share the next one: one heartbeat round per batch of
    /// concurrent reads, not per read.
    private var readsForNextRound: [CheckedContinuation<Index, any Error>] = []
    /// ReadIndex rounds started since this replica began (for tests and metrics).
    private(set) var readRoundsStarted = 0
    private var readsAwaitingApply: [(index: Index, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Starts at random in each process, so a ReadIndex context never repeats one sent before a
    /// restart (a late answer to that one would release a read too early).
    private var readCounter = UInt64.random(in: 0...(UInt64.max / 2))
    /// Proposal ids are this process's random half followed by a counter: unique across restarts.
    private let proposalNonce = UInt64.random(in: 0...UInt64.max)
    private var proposalCounter: UInt64 = 0
    private var processScheduled = false
    /// The hard state last written to disk (its commit index may lag the real one).
    private var durableHardState: HardState
    /// A Ready with a leader's snapshot, on its way to disk: no further Ready is taken until the
    /// writer stored it (the core wants a snapshot durable before it is advanced past).
    private var readyAwaitingSnapshot: (ready: Ready, readyAt: ContinuousClock.Instant)?
    private var stopped = false
    /// Callers of `waitForProgress`, resumed when an entry is applied or leadership changes.
    private var progressWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextProgressWaiter: UInt64 = 0
    private var phases = WritePhases()

    /// Soft state, leader only: when each agent was last heard from.
    private(set) var contact = NodeContact()
    public let thresholds: LivenessThresholds
    public nonisolated let startedAtUnixMs = WallClock.nowUnixMs()

    public init(settings: Settings, storage: RaftStorage, peers: [Specola_V1_Member], initialVoters: Set<NodeID>,
                transport: PeerTransport, thresholds: LivenessThresholds, logger: Logger) throws {
        self.settings = settings
        self.storage = storage
        writer = RaftLogWriter(storage: storage, name: settings.name) { [transport] messages in transport.send(messages) }
        self.transport = transport
        self.thresholds = thresholds
        self.logger = logger
        staticPeers = Dictionary(peers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let persisted: PersistedState
        if let stored = try storage.load() {
            persisted = stored
        } else {
            // A founding member stores the founding membership before anything else;
            // a joining one starts empty and learns everything from the leader.
            persisted = initialVoters.isEmpty ? PersistedState() : .bootstrap(voters: initialVoters)
            try storage.persist(hardState: persisted.hardState, entries: persisted.entries, snapshot: persisted.snapshot)
        }
        if let snapshot = persisted.snapshot, !snapshot.data.isEmpty {
            let image = try Specola_V1_ClusterSnapshot(serializedBytes: snapshot.data)
            state = try ClusterState(snapshot: image)
        } else {
            state = ClusterState()
        }
        durableHardState = persisted.hardState
        applied = persisted.snapshot?.meta.index ?? 0
        var config = RaftConfig(
            id: settings.id, electionTick: settings.electionTicks, heartbeatTick: settings.heartbeatTicks,
            randomSeed: UInt64.random(in: 1...UInt64.max))
        config.maxEntriesPerMessage = 256
        raft = RaftNode(config: config, persisted: persisted)
        addressBook = Self.addressBook(configured: staticPeers, replicated: state.members)
        transport.update(addresses: addressBook)
        denyList.replace(with: state.revoked)
        accessView.replace(with: state.access)
        writer.report(
            written: { [weak self] written in Task { await self?.logWritten(written) } },
            failed: { [weak self] error in Task { await self?.storageFailed(error) } })
    }

    deinit { writer.close() }

    /// Rebuilds the address book (config peers, overridden by replicated members) and repoints the transport.
    private func refreshAddressBook() {
        addressBook = Self.addressBook(configured: staticPeers, replicated: state.members)
        transport.update(addresses: addressBook)
    }

    /// Replicated members override configured ones, except that a configured direct-channel
    /// address stays for a member replicated without one (added before it had one).
    static func addressBook(configured: [NodeID: Specola_V1_Member], replicated: [NodeID: Specola_V1_Member])
        -> [NodeID: Specola_V1_Member] {
        configured.merging(replicated) { configured, replicated in
            var member = replicated
            if member.raftAddress.isEmpty && member.name == configured.name { member.raftAddress = configured.raftAddress }
            return member
        }
    }

    // MARK: - Driving

    /// Advances Raft's clock until the task is cancelled.
    public func runTicker() async {
        let clock = ContinuousClock()
        var deadline = clock.now + settings.tick
        while !Task.isCancelled && !stopped {
            try? await Task.sleep(until: deadline, clock: clock)
            // Ticks keep a fixed schedule, so time spent handling them (or waiting for a
            // core) does not stretch election timeouts; a replica that fell far behind
            // (stopped, starved) resumes the schedule rather than ticking in a burst.
            deadline += settings.tick
            if deadline < clock.now { deadline = clock.now + settings.tick }
            raft.tick()
            expireStaleRequests()
            process()
            phases.reportIfDue(logger)
        }
    }

    /// Steps a peer's batch, unless `sender` is not in the address book or the sender's
    /// certificate names another replica than the one the book has for it; then returns why not.
    public func receive(_ messages: [Message], from sender: NodeID, certifiedAs certificateName: String) -> String? {
        guard let member = addressBook[sender] else {
            let known = addressBook.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value.name))" }.joined(separator: ", ")
            return "replica id \(sender) is not a member of this group (members: \(known)); add it with `specola members add` first"
        }
        guard member.name == certificateName else {
            return "replica id \(sender) is \(member.name), not \(certificateName)"
        }
        receive(messages)
        return nil
    }

    /// Steps a direct channel's batches as they arrive (each resumes this actor once: one hop).
    func consume(_ batches: AsyncStream<DirectPeerBatch>, certifiedAs certificateName: String) async -> String? {
        for await batch in batches {
            batch.release()
            if let reason = receive(batch.messages, from: batch.from, certifiedAs: certificateName) { return reason }
        }
        return nil
    }

    public func receive(_ messages: [Message]) {
        for message in messages where message.to == settings.id {
            raft.step(message)
        }
        // A batch from a peer is already a batch: handle it now rather than one task hop later.
        process()
    }

    /// Lets concurrent proposals pile up so they share one fsync and one round trip.
    private func scheduleProcess() {
        guard !processScheduled else { return }
        processScheduled = true
        Task { self.processNow() }
    }

    private func processNow() {
        processScheduled = false
        process()
    }

    private func process() {
        guard !stopped else { return }
        proposeQueued()
        handleReadies()
        // A batch that committed during this pass frees the window for what queued behind it.
        if !queuedProposals.isEmpty && !stopped && mayProposeNow() {
            proposeQueued()
            handleReadies()
        }
        guard !stopped else { return }
        if readRequests.isEmpty { startReadRound() }
        releaseReads()
        compactIfDue()
    }

    private func handleReadies() {
        while !stopped, readyAwaitingSnapshot == nil, let ready = raft.ready() {
            let readyAt = ContinuousClock.now
            // The core says which messages need nothing on disk: a leader replicates its new
            // entries while writing them itself (Raft thesis §10.2.1).
            let early = ready.messagesBeforePersist
            if !early.isEmpty { transport.send(early); phases.sent(early.count) }
            // The commit index alone need not be durable (a restarted replica relearns it
            // from the leader), so a Ready that changes nothing else skips the fsync.
            let mustWrite = PersistencePolicy.mustPersist(ready, durable: durableHardState)
            let late = ready.messagesAfterPersist
            var writing = false
            if ready.snapshot != nil {
                // A leader's snapshot replaces the whole log: the writer stores it after every
                // write before it and then sends `late`; this Ready is finished once it reports.
                writer.submit(.init(hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot, messages: late))
                phases.sent(late.count)
                readyAwaitingSnapshot = (ready, readyAt)
                return
            } else if mustWrite {
                // The writer stores it after everything handed in before, then sends `late`.
                let hardState = PersistencePolicy.hardStateToStore(ready, durable: durableHardState)
                writer.submit(.init(hardState: hardState, entries: ready.entries, messages: late))
                if let hardState { durableHardState = hardState }
                writing = true
                phases.sent(late.count)
            } else if !late.isEmpty {
                // Nothing to store, but these answers may promise what a queued write still carries.
                if writer.isIdle { transport.send(late) } else { writer.submit(.init(messages: late)) }
                phases.sent(late.count)
            }
            finish(ready, readyAt: readyAt, writing: writing)
        }
    }

    /// Applies what a Ready committed, answers its reads and hands it back to the core.
    private func finish(_ ready: Ready, readyAt: ContinuousClock.Instant, writing: Bool) {
        if let snapshot = ready.snapshot, snapshot.meta.index > applied {
            restore(from: snapshot)
        }
        for entry in ready.committedEntries where entry.index > applied {
            apply(entry, committedAt: readyAt)
        }
        for readState in ready.readStates {
            if let round = readRequests.removeValue(forKey: readState.context) {
                for waiter in round.waiters { waiter.resume(returning: readState.index) }
            }
        }
        if let soft = ready.softState { leadershipChanged(soft) }
        raft.advance(ready, writing: writing)
    }

    /// The writer stored a group of Readies: the core learns it (a leader's own log now counts
    /// toward a quorum) and this replica carries on with what that allows.
    private func logWritten(_ written: RaftLogWriter.Written) {
        guard !stopped else { return }
        if phases.enabled { phases.persisted(entries: written.entries, took: written.took) }
        if written.storedSnapshot, let (ready, readyAt) = readyAwaitingSnapshot {
            // The snapshot job is the last one handed in: nothing was submitted after it.
            readyAwaitingSnapshot = nil
            if let hardState = ready.hardState { durableHardState = hardState }
            finish(ready, readyAt: readyAt, writing: false)
        } else if let index = written.lastIndex, let term = written.lastTerm {
            raft.persisted(through: index, term: term)
        }
        process()
    }

    private func storageFailed(_ error: any Error) {
        guard !stopped else { return }
        // Sending after a failed persist could break Raft's promises; stop participating.
        logger.critical("cannot persist the Raft log; this replica stops serving", metadata: ["error": "\(error)"])
        stopped = true
        failEverything(ReplicaError.storageFailed("\(error)"))
    }

    /// Hands every queued command to the core as one batch: one log append, one append
    /// message per follower and one fsync, however many clients wrote concurrently.
    private func proposeQueued() {
        guard !queuedProposals.isEmpty, mayProposeNow() else { return }
        var count = 0
        var bytes = 0
        while count < queuedProposals.count && count < ProposalWindow.maxBatch {
            let size = queuedProposals[count].data.count
            if count > 0 && bytes + size > ProposalWindow.maxBatchBytes { break }
            bytes += size
            count += 1
        }
        let queued = Array(queuedProposals.prefix(count))
        let result = raft.propose(batch: queued.map(\.data))
        // A leader holding too much uncommitted keeps the batch queued: a commit frees room.
        if case .dropped(.tooMuchUncommitted) = result, raft.commitIndex < raft.lastIndex { return }
        queuedProposals.removeFirst(count)
        queuedBytes -= bytes
        guard case .accepted(let first, let term) = result else {
            let error = refusal(result)
            for proposal in queued { proposal.continuation.resume(throwing: error) }
            return
        }
        let proposedAt = ContinuousClock.now
        for (offset, proposal) in queued.enumerated() {
            let index = first + Index(offset)
            // An older proposal at this index lost its entry to a new leader's log: it never commits.
            let displaced = proposals.updateValue(
                Proposal(term: term, id: proposal.id, startedAt: proposal.startedAt, proposedAt: proposedAt,
                         continuation: proposal.continuation), forKey: index)
            displaced?.continuation.resume(throwing: ReplicaError.superseded(index: index))
        }
        batchesInFlight.append(first + Index(queued.count) - 1)
    }

    /// Whether queued proposals should go to the core now rather than wait for a batch to commit.
    private func mayProposeNow() -> Bool {
        let commit = raft.commitIndex
        batchesInFlight.removeAll { $0 <= commit }
        // A replica that stopped leading lets the core refuse them, so clients go elsewhere.
        return ProposalWindow.mayPropose(
            ownLogSynced: raft.ownLogIsDurable, batchesInFlight: batchesInFlight.count,
            queued: queuedProposals.count, queuedBytes: queuedBytes, isLeader: raft.role == .leader)
    }

    private func apply(_ entry: Entry, committedAt: ContinuousClock.Instant) {
        var outcome = ApplyOutcome.done
        var appliedID = Data()
        if entry.kind == .normal && !entry.data.isEmpty {
            do {
                let command = try Specola_V1_Command(serializedBytes: entry.data)
                appliedID = command.proposalID
                outcome = state.apply(command, at: entry.index)
                if case .setMember = command.kind { refreshAddressBook() }
                if case .revokeCertificate = command.kind { denyList.replace(with: state.revoked) }
                switch command.kind {
                case .project, .roleBinding: accessView.replace(with: state.access)
                default: break
                }
            } catch {
                // Only our own leaders write entries; an undecodable one is a bug, never skip silently.
                logger.critical("undecodable command in the Raft log", metadata: ["raft.index": "\(entry.index)", "error": "\(error)"])
                outcome = .rejected(reason: "undecodable command at index \(entry.index)")
            }
        }
        applied = entry.index
        appliedTerm = entry.term
        wakeProgressWaiters()
        if let proposal = proposals.removeValue(forKey: entry.index) {
            // Another command at this index means ours was replaced: ids are never proposed twice.
            let ours = proposal.id.isEmpty ? proposal.term == entry.term : proposal.id == appliedID
            if ours {
                phases.answered(startedAt: proposal.startedAt, proposedAt: proposal.proposedAt, committedAt: committedAt, now: .now)
                proposal.continuation.resume(returning: outcome)
            } else {
                proposal.continuation.resume(throwing: ReplicaError.superseded(index: entry.index))
            }
        }
    }

    private func restore(from snapshot: Snapshot) {
        do {
            state = try ClusterState(snapshot: Specola_V1_ClusterSnapshot(serializedBytes: snapshot.data))
            applied = snapshot.meta.index
            appliedTerm = snapshot.meta.term
            refreshAddressBook()
            denyList.replace(with: state.revoked)
            accessView.replace(with: state.access)
            logger.info("state restored from a leader snapshot", metadata: ["raft.index": "\(snapshot.meta.index)"])
        } catch {
            logger.critical("leader snapshot does not decode; this replica stops", metadata: ["error": "\(error)"])
            stopped = true
            failEverything(ReplicaError.storageFailed("bad snapshot: \(error)"))
        }
        // The entries of these writes are gone; the snapshot's proposal ledger says whether they happened.
        for (index, proposal) in proposals where index <= applied {
            proposals.removeValue(forKey: index)
            guard !proposal.id.isEmpty else {
                proposal.continuation.resume(throwing: ReplicaError.outcomeUnknown(
                    index: index, why: "this replica caught up from a leader's snapshot, which may or may not include it"))
                continue
            }
            switch state.proposals.answer(for: proposal.id, proposedAt: index, appliedThrough: applied) {
            case .applied(let at):
                proposal.continuation.resume(throwing: ReplicaError.appliedResultUnknown(index: at))
            case .notApplied:
                proposal.continuation.resume(throwing: ReplicaError.superseded(index: index))
            case .unknown:
                proposal.continuation.resume(throwing: ReplicaError.outcomeUnknown(
                    index: index, why: "this replica caught up from a leader's snapshot, whose ledger no longer reaches back to it"))
            }
        }
    }

    private func compactIfDue() {
        let snapshotIndex = raft.snapshotMeta.index
        guard readyAwaitingSnapshot == nil, applied > snapshotIndex, applied - snapshotIndex >= settings.snapshotEvery else { return }
        // Entries commit (and apply) once a majority stored them, which may be before this
        // replica's own write finished; the snapshot waits for that write.
        guard applied <= raft.persistedIndex else { return }
        var image = state.snapshot()
        image.appliedIndex = applied
        image.appliedTerm = appliedTerm
        do {
            let data = try image.serializedBytes() as [UInt8]
            try raft.compact(through: applied, snapshotData: data)
            // Stored by the writer after the writes before it, so this actor never waits for the disk.
            writer.submit(.init(compaction: Snapshot(meta: raft.snapshotMeta, data: data)))
            logger.debug("log compacted", metadata: ["raft.index": "\(applied)"])
        } catch {
            logger.warning("log compaction skipped", metadata: ["error": "\(error)"])
        }
    }

    /// Suspends until an entry is applied or leadership changes, or until `limit` passes: what a
    /// watcher (a job's status, a leadership transfer) waits on instead of polling.
    public func waitForProgress(within limit: Duration) async {
        let id = nextProgressWaiter
        nextProgressWaiter += 1
        // A cancelled caller (e.g. a call cut when its token expired) stops waiting at once.
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                guard !Task.isCancelled else { return continuation.resume() }
                progressWaiters[id] = continuation
                Task { [weak self] in
                    try? await Task.sleep(for: limit)
                    await self?.wakeProgressWaiter(id)
                }
            }
        } onCancel: {
            Task { [weak self] in await self?.wakeProgressWaiter(id) }
        }
    }

    private func wakeProgressWaiter(_ id: UInt64) {
        progressWaiters.removeValue(forKey: id)?.resume()
    }

    private func wakeProgressWaiters() {
        guard !progressWaiters.isEmpty else { return }
        for waiter in progressWaiters.values { waiter.resume() }
        progressWaiters.removeAll()
    }

    private func leadershipChanged(_ soft: SoftState) {
        wakeProgressWaiters()
        batchesInFlight.removeAll()
        if soft.role == .leader {
            contact.becameLeader(nodes: state.nodes.keys, atUnixMs: WallClock.nowUnixMs())
            logger.info("became leader", metadata: ["raft.term": "\(raft.term)"])
        } else {
            logger.info("following", metadata: ["raft.term": "\(raft.term)", "raft.leader": "\(soft.leader.map(String.init) ?? "none")"])
            let hint = leaderHint
            for (_, round) in readRequests { round.fail(ReplicaError.notLeader(hint)) }
            readRequests.removeAll()
        }
    }

    private func releaseReads() {
        guard !readsAwaitingApply.isEmpty else { return }
        var waiting: [(index: Index, continuation: CheckedContinuation<Void, any Error>)] = []
        for read in readsAwaitingApply {
            if read.index <= applied { read.continuation.resume() } else { waiting.append(read) }
        }
        readsAwaitingApply = waiting
    }

    private func expireStaleRequests() {
        let limit = ContinuousClock.now - settings.requestTimeout
        for (index, proposal) in proposals where proposal.startedAt < limit {
            proposal.continuation.resume(throwing: ReplicaError.timedOut)
            proposals.removeValue(forKey: index)
        }
        let expired = queuedProposals.filter { $0.startedAt < limit }
        if !expired.isEmpty {
            queuedProposals.removeAll { $0.startedAt < limit }
            queuedBytes = queuedProposals.reduce(0) { $0 + $1.data.count }
            // Never handed to the core: certainly not executed.
            for proposal in expired { proposal.continuation.resume(throwing: ReplicaError.overloaded) }
        }
        for (context, round) in readRequests where round.startedAt < limit {
            round.fail(ReplicaError.timedOut)
            readRequests.removeValue(forKey: context)
        }
    }

    private func failEverything(_ error: ReplicaError) {
        // Proposed writes were handed to the core, which may already have sent them to followers.
        for (index, proposal) in proposals {
            proposal.continuation.resume(throwing: ReplicaError.outcomeUnknown(index: index, why: "\(error)"))
        }
        proposals.removeAll()
        for proposal in queuedProposals { proposal.continuation.resume(throwing: error) }
        queuedProposals.removeAll()
        queuedBytes = 0
        for (_, round) in readRequests { round.fail(error) }
        readRequests.removeAll()
        for waiter in readsForNextRound { waiter.resume(throwing: error) }
        readsForNextRound.removeAll()
        for read in readsAwaitingApply { read.continuation.resume(throwing: error) }
        readsAwaitingApply.removeAll()
        wakeProgressWaiters()
    }

    // MARK: - Client side

    /// Proposes a command and returns its outcome once it is committed and applied here.
    /// Commands proposed while this replica's own log write is under way go out together in the next batch.
    public func propose(_ command: Specola_V1_Command) async throws -> ApplyOutcome {
        guard !stopped else { throw ReplicaError.stopped }
        // Refuse at once what the batch would refuse, so followers redirect without a wait.
        guard raft.role == .leader else { throw ReplicaError.notLeader(leaderHint) }
        if raft.leadTransferee != nil { throw refusal(.dropped(.leadershipTransferInProgress)) }
        var command = command
        command.proposalID = nextProposalID()
        let id = command.proposalID
        let data: [UInt8] = try command.serializedBytes()
        // Refused on its own, before anything runs: the client retries in a moment.
        if !queuedProposals.isEmpty && queuedBytes + data.count > Self.maxQueuedBytes { throw ReplicaError.overloaded }
        return try await withCheckedThrowingContinuation { continuation in
            queuedProposals.append(QueuedProposal(id: id, data: data, startedAt: .now, continuation: continuation))
            queuedBytes += data.count
            // With the window open, replicate now (no task hop); otherwise the pass after the
            // log write under way (or the next commit) sends this with everything queued behind it.
            if mayProposeNow() { process() }
        }
    }

    private func nextProposalID() -> Data {
        proposalCounter += 1
        var id = withUnsafeBytes(of: proposalNonce.bigEndian, Array.init)
        id += withUnsafeBytes(of: proposalCounter.bigEndian, Array.init)
        return Data(id)
    }

    /// Proposes a membership change and returns once it is committed and applied here.
    public func proposeMembership(_ change: ConfigChange) async throws {
        guard !stopped else { throw ReplicaError.stopped }
        _ = try await awaitApplied(raft.proposeConfigChange(change))
    }

    /// Turns the core's answer to a proposal into a wait for its entry, or an error clients understand.
    private func awaitApplied(_ result: ProposeResult) async throws -> ApplyOutcome {
        guard case .accepted(let index, let term) = result else { throw refusal(result) }
        return try await withCheckedThrowingContinuation { continuation in
            proposals[index] = Proposal(term: term, startedAt: .now, continuation: continuation)
            scheduleProcess()
        }
    }

    private func refusal(_ result: ProposeResult) -> ReplicaError {
        switch result {
        case .accepted, .pending: return .timedOut
        case .notLeader: return .notLeader(leaderHint)
        case .dropped(.tooMuchUncommitted): return .overloaded
        case .dropped(.wouldLoseQuorum):
            return .dropped("the change would leave fewer replicas answering than a majority needs; bring the missing replicas back first")
        case .dropped(.learnerBehind):
            return .dropped("the new replica does not yet hold the committed log; it becomes a voter once it has caught up")
        case .dropped(let reason): return .dropped("\(reason)")
        }
    }

    /// Starts one ReadIndex round for every read barrier waiting for one.
    private func startReadRound() {
        guard !readsForNextRound.isEmpty else { return }
        let waiters = readsForNextRound
        readsForNextRound.removeAll()
        readCounter += 1
        readRoundsStarted += 1
        var context = withUnsafeBytes(of: readCounter.bigEndian, Array.init)
        context += withUnsafeBytes(of: settings.id.bigEndian, Array.init)
        let result = raft.readIndex(context: context)
        switch result {
        case .notLeader, .dropped:
            let error = refusal(result)
            for waiter in waiters { waiter.resume(throwing: error) }
        case .accepted, .pending:
            readRequests[context] = ReadRound(startedAt: .now, waiters: waiters)
            scheduleProcess()
        }
    }

    /// Returns once this replica's state reflects every write acknowledged before the call (ReadIndex).
    public func readBarrier() async throws {
        guard !stopped else { throw ReplicaError.stopped }
        let index = try await withCheckedThrowingContinuation { continuation in
            readsForNextRound.append(continuation)
            if readRequests.isEmpty { startReadRound() }
        }
        if index > applied {
            try await withCheckedThrowingContinuation { continuation in
                readsAwaitingApply.append((index, continuation))
            }
        }
    }

    /// Hands leadership to `target` (default: another voter) and waits until it has it.
    @discardableResult
    public func transferLeadership(to target: NodeID? = nil, within limit: Duration = .seconds(5)) async throws -> NodeID {
        guard let target = target ?? raft.membership.voters.filter({ $0 != settings.id }).sorted().first else {
            throw ReplicaError.dropped("no other voter to hand leadership to")
        }
        let result = raft.transferLeadership(to: target)
        switch result {
        case .accepted, .pending: scheduleProcess()
        case .notLeader, .dropped: throw refusal(result)
        }
        let deadline = ContinuousClock.now + limit
        while raft.leader != target {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw ReplicaError.timedOut }
            await waitForProgress(within: left)
        }
        return target
    }

    /// Throws the redirect a follower answers with.
    public func requireLeader() throws {
        guard !stopped else { throw ReplicaError.stopped }
        guard raft.role == .leader else { throw ReplicaError.notLeader(leaderHint) }
    }

    // MARK: - Observation

    /// False from the moment a write failed: such a replica leads nothing, whatever its core's role.
    public var isLeader: Bool { !stopped && !writer.hasFailed && raft.role == .leader }
    public var leaderID: NodeID? { stopped && raft.leader == settings.id ? nil : raft.leader }
    public var term: Term { raft.term }
    public var commitIndex: Index { raft.commitIndex }
    public var appliedIndex: Index { applied }
    public var membership: ConfigState { raft.membership }
    /// Leader only: whether `id` holds the committed log (a learner ready to vote).
    public func holdsCommittedLog(_ id: NodeID) -> Bool { (raft.match(of: id) ?? 0) >= raft.commitIndex }
    public var snapshotOfState: Specola_V1_ClusterSnapshot {
        var image = state.snapshot()
        image.appliedIndex = applied
        image.appliedTerm = appliedTerm
        image.voters = raft.membership.voters.sorted()
        image.learners = raft.membership.learners.sorted()
        return image
    }

    public var allMembers: [NodeID: Specola_V1_Member] { addressBook }
    /// The ids of the proposals waiting for their entry, by log index (for tests).
    var pendingProposalIDs: [Index: Data] { proposals.mapValues(\.id) }

    /// The leader as "name at address", for errors that send clients there.
    public var leaderHint: LeaderHint? {
        guard let id = leaderID, let member = addressBook[id] else { return nil }
        return LeaderHint(id: id, name: member.name, address: member.address)
    }

    /// A key's entry and the store's revision as of the same moment (one hop to the replica).
    public func kvGet(_ key: String) -> (entry: Specola_V1_KeyValue?, revision: UInt64) { (state.kv[key], state.kvRevision) }
    /// Keys under `prefix`, leaving out other projects' step outputs when `readable` names the caller's
    /// projects, and the store's revision as of the same moment.
    public func kvList(prefix: String, limit: Int, readable: Set<String>? = nil) -> (entries: [Specola_V1_KeyValue], revision: UInt64) {
        let matching = state.kv.values.filter { $0.key.hasPrefix(prefix) && KVScope.isListed($0.key, readable: readable) }
            .sorted { $0.key < $1.key }
        return (limit > 0 ? Array(matching.prefix(limit)) : matching, state.kvRevision)
    }

    public func noteContact(_ name: String, atUnixMs: Int64 = WallClock.nowUnixMs()) {
        contact.heard(from: name, atUnixMs: atUnixMs)
    }

    public func node(_ name: String) -> Specola_V1_Node? {
        state.nodes[name].map(withLiveness)
    }

    /// Agents waiting for `specola node accept`, by name.
    public func pendingNodes() -> [Specola_V1_PendingNode] {
        state.pendingNodes.values.sorted { $0.name < $1.name }
    }

    public var revokedCertificates: [Specola_V1_RevokedCertificate] { state.revoked }

    public func allNodes() -> [Specola_V1_Node] {
        state.nodes.values.sorted { $0.name < $1.name }.map(withLiveness)
    }

    private func withLiveness(_ stored: Specola_V1_Node) -> Specola_V1_Node {
        contact.displayed(stored, thresholds: thresholds, nowUnixMs: WallClock.nowUnixMs())
    }
}
