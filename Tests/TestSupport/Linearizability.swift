import Foundation

/// One operation on a single-key register (put, get, compare-and-swap) as a
/// client saw it: when it was called, when (and whether) it returned, and what
/// it returned. A write whose outcome is unknown (timeout, broken connection)
/// has `returnedAt == nil`: it may have taken effect at any time after its call, or never.
public struct RegisterOperation: Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case put(String)
        /// A read and the value it saw (nil: the key was absent).
        case get(String?)
        case cas(expected: String, new: String)
    }

    public enum Outcome: Sendable, Equatable {
        /// The write took effect (for a CAS: the comparison matched); a get always has this.
        case ok
        /// A CAS whose comparison failed: it changed nothing.
        case failed
        /// No answer: the write may or may not have happened.
        case unknown
    }

    public var client: Int
    public var kind: Kind
    public var outcome: Outcome
    /// Nanoseconds on one monotonic clock shared by all clients.
    public var calledAt: UInt64
    public var returnedAt: UInt64?

    public init(client: Int, kind: Kind, outcome: Outcome, calledAt: UInt64, returnedAt: UInt64?) {
        self.client = client
        self.kind = kind
        self.outcome = outcome
        self.calledAt = calledAt
        self.returnedAt = outcome == .unknown ? nil : returnedAt
    }

    public var description: String {
        let what: String
        switch kind {
        case .put(let value): what = "put(\(value))"
        case .get(let value): what = "get -> \(value ?? "absent")"
        case .cas(let expected, let new): what = "cas(\(expected) -> \(new))"
        }
        let end = returnedAt.map { String(format: "%.3f", Double($0) / 1e9) } ?? "∞"
        return "c\(client) \(what) [\(outcome)] \(String(format: "%.3f", Double(calledAt) / 1e9))..\(end)"
    }

    /// The register after this operation, or nil when the operation cannot happen in `state`.
    func step(_ state: String?) -> String?? {
        switch kind {
        case .put(let value):
            return .some(value)
        case .get(let seen):
            return seen == state ? .some(state) : nil
        case .cas(let expected, let new):
            if state == expected {
                return outcome == .failed ? nil : .some(new)
            }
            return outcome == .ok ? nil : .some(state)
        }
    }
}

/// The verdict of `LinearizabilityChecker.check`.
public enum LinearizabilityVerdict: Sendable, Equatable {
    case linearizable
    /// No order exists; `explanation` names the operation that could not be placed.
    case violation(explanation: String)
    /// The search gave up after its step budget.
    case inconclusive(steps: Int)
}

/// A Wing–Gong linearizability checker for one register, with Lowe's
/// memoization of (linearized set, state) as in Porcupine and Knossos.
///
/// Events are kept in time order in a linked list. The search repeatedly tries
/// to linearize a call whose operation is still pending; reaching a return
/// event whose call is not yet linearized means backtracking.
public enum LinearizabilityChecker {
    struct Node {
        var operation: Int
        var isCall: Bool
        var prev: Int
        var next: Int
        var match: Int  // for a call: its return node
    }

    struct Visited: Hashable {
        var bits: [UInt64]
        var state: String?
    }

    public static func check(_ history: [RegisterOperation], initial: String? = nil, budget: Int = 5_000_000) -> LinearizabilityVerdict {
        if history.isEmpty { return .linearizable }
        // Calls sort before returns at the same instant, which makes such operations concurrent (the lenient choice).
        var events: [(time: UInt64, isCall: Bool, operation: Int)] = []
        for (index, op) in history.enumerated() {
            events.append((op.calledAt, true, index))
            events.append((op.returnedAt ?? UInt64.max, false, index))
        }
        events.sort { a, b in
            if a.time != b.time { return a.time < b.time }
            if a.isCall != b.isCall { return a.isCall }
            return a.operation < b.operation
        }
        // Node 0 is the head sentinel.
        var nodes = [Node(operation: -1, isCall: false, prev: -1, next: -1, match: -1)]
        var returnNode = [Int](repeating: -1, count: history.count)
        for event in events {
            let index = nodes.count
            nodes[index - 1].next = index
            nodes.append(Node(operation: event.operation, isCall: event.isCall, prev: index - 1, next: -1, match: -1))
            if !event.isCall { returnNode[event.operation] = index }
        }
        for index in 1..<nodes.count where nodes[index].isCall {
            nodes[index].match = returnNode[nodes[index].operation]
        }

        func lift(_ call: Int) {
            for node in [call, nodes[call].match] {
                let (prev, next) = (nodes[node].prev, nodes[node].next)
                nodes[prev].next = next
                if next >= 0 { nodes[next].prev = prev }
            }
        }
        func unlift(_ call: Int) {
            for node in [nodes[call].match, call] {
                let (prev, next) = (nodes[node].prev, nodes[node].next)
                nodes[prev].next = node
                if next >= 0 { nodes[next].prev = node }
            }
        }

        var bits = [UInt64](repeating: 0, count: (history.count + 63) / 64)
        var state = initial
        var stack: [(call: Int, state: String?)] = []
        var visited = Set<Visited>()
        var entry = nodes[0].next
        var steps = 0
        var deepest: [Int] = []
        var stuckAt = -1
        while nodes[0].next >= 0 {
            steps += 1
            if steps > budget { return .inconclusive(steps: steps) }
            let node = nodes[entry]
            if node.isCall {
                if let next = history[node.operation].step(state) {
                    var newBits = bits
                    newBits[node.operation / 64] |= 1 << UInt64(node.operation % 64)
                    if visited.insert(Visited(bits: newBits, state: next)).inserted {
                        stack.append((entry, state))
                        state = next
                        bits = newBits
                        lift(entry)
                        entry = nodes[0].next
                        continue
                    }
                }
                entry = node.next
            } else {
                if stack.count > deepest.count || stuckAt < 0 {
                    deepest = stack.map { nodes[$0.call].operation }
                    stuckAt = node.operation
                }
                guard let (call, previous) = stack.popLast() else {
                    return .violation(explanation: explain(history, deepest: deepest, stuckAt: stuckAt))
                }
                state = previous
                let op = nodes[call].operation
                bits[op / 64] &= ~(1 << UInt64(op % 64))
                unlift(call)
                entry = nodes[call].next
            }
        }
        return .linearizable
    }

    static func explain(_ history: [RegisterOperation], deepest: [Int], stuckAt: Int) -> String {
        let tail = deepest.suffix(8).map { "  \(history[$0])" }.joined(separator: "\n")
        let blocking = stuckAt >= 0 ? "\(history[stuckAt])" : "?"
        return """
            no linearization places \(blocking)
            longest linearizable prefix had \(deepest.count) operations, ending with:
            \(tail)
            """
    }
}
