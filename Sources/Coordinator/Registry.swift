import Foundation
import Logging
import SpecolaProtocol

/// Owns the cluster state on this replica: applies commands, persists what
/// they touched before anyone is told, and keeps soft liveness in memory.
/// (Raft will sit between `execute` and `apply`.)
public actor Registry {
    private var state: ClusterState
    private let store: StateStore
    private let logger: Logger
    /// Soft state: last contact per node, never persisted (only transitions are).
    private var lastContact: [String: Int64] = [:]
    public let thresholds: LivenessThresholds
    public nonisolated let startedAtUnixMs: Int64

    public init(store: StateStore, thresholds: LivenessThresholds, logger: Logger) throws {
        self.store = store
        self.state = try store.loadState()
        self.thresholds = thresholds
        self.logger = logger
        let now = Clock.nowUnixMs()
        startedAtUnixMs = now
        // Grace period: a restarted coordinator does not suspect nodes it has not heard from yet.
        for name in state.nodes.keys { lastContact[name] = now }
    }

    /// Applies a command to a copy, persists it, then makes it visible; a failed
    /// write changes nothing, so the agent's resend is applied later.
    public func execute(_ command: ClusterCommand) throws -> ApplyOutcome {
        var next = state
        let outcome = next.apply(command)
        switch outcome {
        case .duplicateReport, .rejected:
            return outcome
        case .registered, .reportApplied:
            let records = ClusterState.touchedNodes(by: command).compactMap { next.nodes[$0] }
            try store.save(nodes: records)
            state = next
            return outcome
        }
    }

    public func noteContact(_ name: String, atUnixMs: Int64 = Clock.nowUnixMs()) {
        lastContact[name] = max(lastContact[name] ?? 0, atUnixMs)
    }

    public func node(_ name: String) -> Specola_V1_Node? {
        state.nodes[name].map(withLiveness)
    }

    public func allNodes() -> [Specola_V1_Node] {
        state.nodes.values.sorted { $0.name < $1.name }.map(withLiveness)
    }

    private func withLiveness(_ stored: Specola_V1_Node) -> Specola_V1_Node {
        var node = stored
        let seen = max(lastContact[node.name] ?? 0, node.lastSeenUnixMs)
        node.lastSeenUnixMs = seen
        node.status = thresholds.status(sinceLastContactMs: Clock.nowUnixMs() - seen).rawValue
        return node
    }
}

/// How long silence turns a node from ready to suspect to down.
public struct LivenessThresholds: Sendable {
    public var suspectAfterMs: Int64
    public var downAfterMs: Int64

    public init(suspectAfterMs: Int64 = 3_000, downAfterMs: Int64 = 10_000) {
        self.suspectAfterMs = suspectAfterMs
        self.downAfterMs = downAfterMs
    }

    public enum Status: String, Sendable { case ready, suspect, down }

    public func status(sinceLastContactMs silence: Int64) -> Status {
        if silence >= downAfterMs { return .down }
        if silence >= suspectAfterMs { return .suspect }
        return .ready
    }
}

/// Wall-clock milliseconds, read only by proposers (never inside `apply`).
public enum Clock {
    public static func nowUnixMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
