/// Tracks which part of the in-memory log the driver has not yet made durable: the
/// suffix from `offset`, and a snapshot received from the leader but not yet stored.
struct UnstableLog: Sendable, Equatable {
    /// First index not yet persisted.
    var offset: Index
    /// Snapshot to persist and apply, if one was installed since the last `advance`.
    var snapshot: Snapshot?

    /// The log was rewritten from `index` on, so the driver must persist it again.
    mutating func truncated(at index: Index) {
        offset = min(offset, index)
    }

    /// The driver persisted entries through `index`.
    mutating func stable(through index: Index) {
        offset = max(offset, index + 1)
    }
}
