/// The replicated log of one node: a snapshot standing in for the compacted prefix,
/// the entries after it, and the commit and apply cursors.
///
/// The core keeps every entry after the latest snapshot in memory; compaction is what
/// bounds it. `unstable` tells which of these the driver has not persisted yet.
struct RaftLog: Sendable {
    private(set) var snapshot: Snapshot
    /// Entries `snapshotIndex + 1 ... lastIndex`, contiguous.
    private(set) var entries: [Entry]
    var unstable: UnstableLog
    private(set) var committed: Index
    private(set) var applied: Index

    init(snapshot: Snapshot, entries: [Entry], committed: Index) {
        var expected = snapshot.meta.index + 1
        for entry in entries {
            precondition(entry.index == expected, "persisted entries are not contiguous after the snapshot")
            expected += 1
        }
        self.snapshot = snapshot
        self.entries = entries
        self.unstable = UnstableLog(offset: expected, handedOff: expected, snapshot: nil)
        let lastIndex = expected - 1
        precondition(committed <= lastIndex, "persisted commit \(committed) beyond last index \(lastIndex)")
        self.committed = max(committed, snapshot.meta.index)
        self.applied = snapshot.meta.index
    }

    var snapshotIndex: Index { snapshot.meta.index }
    var firstIndex: Index { snapshot.meta.index + 1 }
    var lastIndex: Index { snapshot.meta.index + Index(entries.count) }
    var lastTerm: Term { term(at: lastIndex)! }

    /// The term at `index`, or nil when it is compacted or beyond the end.
    func term(at index: Index) -> Term? {
        if index == snapshot.meta.index { return snapshot.meta.term }
        guard index > snapshot.meta.index, index <= lastIndex else { return nil }
        return entries[Int(index - firstIndex)].term
    }

    func entry(at index: Index) -> Entry? {
        guard index >= firstIndex, index <= lastIndex else { return nil }
        return entries[Int(index - firstIndex)]
    }

    func matchTerm(_ index: Index, _ term: Term) -> Bool {
        self.term(at: index) == term
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex candidateIndex: Index, lastTerm candidateTerm: Term) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Up to `maxCount` entries starting at `index` (which must not be compacted), holding at
    /// most `maxBytes` of data, except that the first entry is always included.
    func entries(from index: Index, maxCount: Int, maxBytes: Int = .max) -> [Entry] {
        precondition(index >= firstIndex, "entries(from: \(index)) below first index \(firstIndex)")
        guard index <= lastIndex else { return [] }
        let start = Int(index - firstIndex)
        var end = start
        var bytes = 0
        while end < entries.count && end - start < maxCount {
            bytes += entries[end].data.count
            if end > start && bytes > maxBytes { break }
            end += 1
        }
        return Array(entries[start..<end])
    }

    /// Entries not yet persisted nor handed off to be.
    var unstableEntries: [Entry] {
        let start = max(unstable.handedOff, firstIndex)
        guard start <= lastIndex else { return [] }
        return Array(entries[Int(start - firstIndex)...])
    }

    /// Last index the driver has durably stored (entries or snapshot).
    var persistedIndex: Index {
        // Until a received snapshot is stored, nothing of the new log is durable.
        if unstable.snapshot != nil { return 0 }
        return min(lastIndex, unstable.offset - 1)
    }

    /// Leader path: entries continue the log.
    mutating func append(_ new: [Entry]) {
        guard let first = new.first else { return }
        precondition(first.index == lastIndex + 1, "leader append at \(first.index), last is \(lastIndex)")
        entries.append(contentsOf: new)
    }

    /// Follower path (AppendEntries receiver, steps 2–5). Returns the index of the last
    /// new entry, or nil when the log does not contain (`prevIndex`, `prevTerm`).
    mutating func maybeAppend(prevIndex: Index, prevTerm: Term, entries new: [Entry]) -> Index? {
        guard matchTerm(prevIndex, prevTerm) else { return nil }
        let lastNew = prevIndex + Index(new.count)
        // Skip entries we already hold; truncate only at a real conflict, so a stale,
        // reordered append can never shorten the log.
        for (offset, entry) in new.enumerated() {
            precondition(entry.index == prevIndex + 1 + Index(offset), "append entries are not contiguous")
            if let existing = term(at: entry.index) {
                if existing == entry.term { continue }
                precondition(entry.index > committed, "conflict at committed index \(entry.index)")
                entries.removeLast(Int(lastIndex - entry.index + 1))
                unstable.truncated(at: entry.index)
            }
            entries.append(contentsOf: new[offset...])
            break
        }
        return lastNew
    }

    mutating func commit(to index: Index) {
        guard index > committed else { return }
        precondition(index <= lastIndex, "commit \(index) beyond last index \(lastIndex)")
        committed = index
    }

    mutating func applied(to index: Index) {
        guard index > applied else { return }
        precondition(index <= committed, "applied \(index) beyond commit \(committed)")
        applied = index
    }

    /// Committed entries the driver has not been handed yet.
    var entriesToApply: [Entry] {
        let from = max(applied, unstable.snapshot?.meta.index ?? 0) + 1
        guard from <= committed, from >= firstIndex else { return [] }
        return Array(entries[Int(from - firstIndex)...Int(committed - firstIndex)])
    }

    /// Replaces the whole log with a snapshot from the leader.
    mutating func restore(_ snap: Snapshot) {
        precondition(snap.meta.index > committed, "restoring a snapshot behind commit")
        snapshot = snap
        entries = []
        committed = snap.meta.index
        unstable = UnstableLog(offset: snap.meta.index + 1, handedOff: snap.meta.index + 1, snapshot: snap)
    }

    /// Drops the prefix through the snapshot's index, which the driver built itself.
    mutating func compact(_ snap: Snapshot) {
        let index = snap.meta.index
        precondition(index > snapshotIndex && index <= applied && index <= persistedIndex)
        entries.removeFirst(Int(index - snapshotIndex))
        snapshot = snap
    }
}
