/// How a driver persists a `Ready` and batches proposals: one policy shared by the
/// production driver and the deterministic simulation, so the simulation tests what runs.
public enum PersistencePolicy {
    /// Whether `ready` must be written (and synced) before its `messagesAfterPersist` go out.
    /// The commit index alone need not be durable (a restarted replica relearns it from the
    /// leader), so a Ready that changes nothing else skips the fsync. `durable` is the hard
    /// state last written.
    public static func mustPersist(_ ready: Ready, durable: HardState) -> Bool {
        if !ready.entries.isEmpty || ready.snapshot != nil { return true }
        guard let hardState = ready.hardState else { return false }
        return hardState.term != durable.term || hardState.vote != durable.vote
    }
}

/// How many proposals a leader's driver hands to the core at once, and how many such
/// batches may await commit before new proposals wait for the next batch.
public enum ProposalWindow {
    /// Commands per batch (one log append, one fsync) when the window is full.
    public static let maxBatch = 256
    /// Batches proposed but not yet committed before the driver holds new commands back.
    public static let maxBatchesInFlight = 2

    /// Whether `queued` waiting commands should go to the core now rather than wait for a
    /// batch to commit. A replica that stopped leading lets the core refuse them at once.
    public static func mayPropose(batchesInFlight: Int, queued: Int, isLeader: Bool) -> Bool {
        batchesInFlight < maxBatchesInFlight || queued >= maxBatch || !isLeader
    }
}

extension PersistedState {
    /// What a durable store holds after writing a Ready's parts, as a value: the model every
    /// store must match. A snapshot (installed from the leader) replaces the whole log, since
    /// the core dropped its log for it; entries replace any stored entry from their index on.
    public mutating func persist(hardState: HardState?, entries newEntries: [Entry], snapshot newSnapshot: Snapshot?) {
        if let newSnapshot {
            snapshot = newSnapshot
            entries = []
        }
        if let first = newEntries.first {
            entries.removeAll { $0.index >= first.index }
            entries += newEntries
        }
        if let hardState { self.hardState = hardState }
    }

    /// A snapshot the driver took itself: it keeps the entries after it.
    public mutating func compact(to newSnapshot: Snapshot) {
        snapshot = newSnapshot
        entries.removeAll { $0.index <= newSnapshot.meta.index }
    }
}
