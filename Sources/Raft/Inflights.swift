/// The sliding window of append messages sent to one follower and not yet
/// acknowledged, identified by their last index. A full window pauses replication.
struct Inflights: Sendable, Equatable {
    let capacity: Int
    private var lastIndexes: [Index] = []

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { lastIndexes.count }
    var isFull: Bool { lastIndexes.count >= capacity }

    mutating func add(_ index: Index) {
        precondition(!isFull, "inflight window overflow")
        precondition(lastIndexes.last.map { $0 < index } ?? true, "inflight indexes must increase")
        lastIndexes.append(index)
    }

    /// Acknowledgement through `index` frees every message ending at or before it.
    mutating func free(through index: Index) {
        var n = 0
        while n < lastIndexes.count && lastIndexes[n] <= index { n += 1 }
        lastIndexes.removeFirst(n)
    }

    /// A heartbeat answer proves the follower is alive, so let one more message out even
    /// if some in the window were lost.
    mutating func freeFirst() {
        if !lastIndexes.isEmpty { lastIndexes.removeFirst() }
    }

    mutating func reset() { lastIndexes.removeAll(keepingCapacity: true) }
}
