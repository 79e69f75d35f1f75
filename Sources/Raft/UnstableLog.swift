/// Tracks which part of the in-memory log the driver has not yet made durable: the
/// suffix from `offset`, and a snapshot received from the leader but not yet stored.
struct UnstableLog: Sendable, Equatable {
    /// First index not yet persisted.
    var offset: Index
    /// First index not yet handed to a driver that writes in the background (`RaftNode.advance(_:writing:)`);
    /// entries from `offset` to here are on their way to disk. Equal to `offset` for a driver that writes in line.
    var handedOff: Index
    /// Snapshot to persist and apply, if one was installed since the last `advance`.
    var snapshot: Snapshot?

    /// The log was rewritten from `index` on, so the driver must persist it again.
    mutating func truncated(at index: Index) {
        offset = min(offset, index)
        handedOff = min(handedOff, index)
    }

    /// The driver took entries through `index` to write them.
    mutating func handedOff(through index: Index) {
        handedOff = max(handedOff, index + 1)
    }

    /// The driver persisted entries through `index`.
    mutating func stable(through index: Index) {
        offset = max(offset, index + 1)
        handedOff = max(handedOff, offset)
    }
}
