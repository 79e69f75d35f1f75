import Foundation
import SpecolaRaft

/// Writes a replica's Raft log on a thread of its own, so the replica never waits for the disk
/// and no fsync runs on the cooperative pool. Everything handed in while one write syncs goes
/// to disk together in the next transaction (group commit: one fsync for all of it). After each
/// write the messages that had to wait for it leave, in the order they were handed in, and
/// `written` tells the replica what is now durable. After a failed write nothing more is
/// written or sent: `failed` tells the replica, which stops.
final class RaftLogWriter: @unchecked Sendable {
    /// One Ready's share: what to store, and the messages that may leave only once it is stored;
    /// or a snapshot this replica took itself, to store in place of the entries it covers.
    struct Job {
        var hardState: HardState?
        var entries: [Entry] = []
        /// A leader's snapshot: it replaces the whole stored log.
        var snapshot: Snapshot?
        var messages: [Message] = []
        /// This replica's own snapshot: stored in order with the rest, dropping only the entries it covers.
        var compaction: Snapshot?

        var writes: Bool { hardState != nil || !entries.isEmpty || snapshot != nil || compaction != nil }

        var logWrites: [RaftStorage.LogWrite] {
            var parts: [RaftStorage.LogWrite] = []
            if hardState != nil || !entries.isEmpty || snapshot != nil {
                parts.append(.ready(hardState: hardState, entries: entries, snapshot: snapshot))
            }
            if let compaction { parts.append(.compaction(compaction)) }
            return parts
        }
    }

    /// What one group commit stored: the last entry written (nil if only hard state), whether
    /// a leader's snapshot was among it, and how long it took.
    struct Written: Sendable {
        var lastIndex: Index?
        var lastTerm: Term?
        var entries: Int
        var storedSnapshot: Bool
        var took: Duration
    }

    private let storage: RaftStorage
    private let send: @Sendable ([Message]) -> Void
    private let condition = NSCondition()
    private var queue: [Job] = []
    /// Jobs handed in and not yet finished (written and their messages sent).
    private var pending = 0
    private var closed = false
    private var broken = false
    private var written: (@Sendable (Written) -> Void)?
    private var failed: (@Sendable (any Error) -> Void)?

    init(storage: RaftStorage, name: String, send: @escaping @Sendable ([Message]) -> Void) {
        self.storage = storage
        self.send = send
        let thread = Thread { [self] in run() }
        thread.name = String("log-\(name)".prefix(15))
        thread.start()
    }

    /// Where the writer reports; set once, before the first job.
    func report(written: @escaping @Sendable (Written) -> Void, failed: @escaping @Sendable (any Error) -> Void) {
        condition.lock()
        self.written = written
        self.failed = failed
        condition.unlock()
    }

    func submit(_ job: Job) {
        condition.lock()
        queue.append(job)
        pending += 1
        condition.signal()
        condition.unlock()
    }

    /// Whether a write failed (from that moment this replica leads nothing).
    var hasFailed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return broken
    }

    /// Whether every job handed in is written and its messages sent.
    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return pending == 0
    }

    /// Blocks until every job handed in is finished (or dropped after a failure). For tests and
    /// shutdown paths off the pool: the replica itself never waits for the writer.
    func waitUntilIdle() {
        condition.lock()
        while pending > 0 { condition.wait() }
        condition.unlock()
    }

    /// Ends the thread once the queue is drained.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty && closed {
                condition.unlock()
                return
            }
            let jobs = queue
            queue.removeAll(keepingCapacity: true)
            let alreadyBroken = broken
            let (written, failed) = (self.written, self.failed)
            condition.unlock()

            var report: Written?
            if !alreadyBroken {
                let writes = jobs.filter(\.writes)
                let start = ContinuousClock.now
                do {
                    if !writes.isEmpty { try storage.persist(writes.flatMap(\.logWrites)) }
                    let last = writes.last { !$0.entries.isEmpty }?.entries.last
                    report = Written(lastIndex: last?.index, lastTerm: last?.term, entries: writes.reduce(0) { $0 + $1.entries.count },
                                     storedSnapshot: writes.contains { $0.snapshot != nil }, took: .now - start)
                    // In order: answers promise what these writes stored.
                    let messages = jobs.flatMap(\.messages)
                    if !messages.isEmpty { send(messages) }
                } catch {
                    condition.lock()
                    broken = true
                    condition.unlock()
                    failed?(error)
                }
            }
            // Reported before the jobs count as finished, so `waitUntilIdle` also covers the report.
            if let report, jobs.contains(where: \.writes) { written?(report) }
            condition.lock()
            pending -= jobs.count
            condition.broadcast()
            condition.unlock()
        }
    }
}
