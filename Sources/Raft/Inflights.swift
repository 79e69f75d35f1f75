/// The sliding window of append messages sent to one follower and not yet
/// acknowledged, identified by their last index. A window full by count or by bytes
/// pauses replication; an empty one always lets one message out, however large.
struct Inflights: Sendable, Equatable {
    let capacity: Int
    let maxBytes: Int
    private var lastIndexes: [Index] = []
    private var sizes: [Int] = []
    private(set) var bytes = 0

    init(capacity: Int, maxBytes: Int = .max) {
        precondition(capacity > 0 && maxBytes > 0)
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    var count: Int { lastIndexes.count }
    var isFull: Bool { lastIndexes.count >= capacity || bytes >= maxBytes }

    mutating func add(_ index: Index, bytes size: Int = 0) {
        precondition(!isFull, "inflight window overflow")
        precondition(lastIndexes.last.map { $0 < index } ?? true, "inflight indexes must increase")
        lastIndexes.append(index)
        sizes.append(size)
        bytes += size
    }

    /// Acknowledgement through `index` frees every message ending at or before it.
    mutating func free(through index: Index) {
        var n = 0
        while n < lastIndexes.count && lastIndexes[n] <= index { n += 1 }
        bytes -= sizes.prefix(n).reduce(0, +)
        lastIndexes.removeFirst(n)
        sizes.removeFirst(n)
    }

    /// A heartbeat answer proves the follower is alive, so let one more message out even
    /// if some in the window were lost.
    mutating func freeFirst() {
        if !lastIndexes.isEmpty {
            lastIndexes.removeFirst()
            bytes -= sizes.removeFirst()
        }
    }

    mutating func reset() {
        lastIndexes.removeAll(keepingCapacity: true)
        sizes.removeAll(keepingCapacity: true)
        bytes = 0
    }
}
