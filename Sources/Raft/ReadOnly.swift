/// The leader's queue of ReadIndex requests (Raft thesis §6.4): each records the commit
/// index when it arrived and waits until a quorum answers a heartbeat sent after that.
struct ReadOnly: Sendable {
    /// One pending linearizable read.
    struct Request: Sendable, Equatable {
        var index: Index
        var from: NodeID
        var context: [UInt8]
        var acks: Set<NodeID>
    }

    private(set) var pending: [Request] = []

    var lastContext: [UInt8]? { pending.last?.context }

    /// Registers a request; a duplicate context (a retransmitted forward) is ignored.
    mutating func add(index: Index, from: NodeID, context: [UInt8], leader: NodeID) -> Bool {
        if pending.contains(where: { $0.context == context }) { return false }
        pending.append(Request(index: index, from: from, context: context, acks: [leader]))
        return true
    }

    /// Records a heartbeat answer and returns who has confirmed the request so far.
    mutating func recordAck(from: NodeID, context: [UInt8]) -> Set<NodeID>? {
        guard let i = pending.firstIndex(where: { $0.context == context }) else { return nil }
        pending[i].acks.insert(from)
        return pending[i].acks
    }

    /// Releases the request with `context` and every older one: the quorum confirmed
    /// leadership after all of them were registered.
    mutating func release(through context: [UInt8]) -> [Request] {
        guard let i = pending.firstIndex(where: { $0.context == context }) else { return [] }
        let done = Array(pending[...i])
        pending.removeFirst(i + 1)
        return done
    }

    mutating func reset() { pending.removeAll() }
}
