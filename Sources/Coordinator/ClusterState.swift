import SpecolaProtocol

/// A durable decision. Every change to `ClusterState` is one of these, stamped
/// with time by whoever proposes it, so `apply` stays deterministic (the Raft
/// log will carry exactly these).
public enum ClusterCommand: Sendable, Equatable {
    case registerNode(name: String, address: String, agentVersion: String, labels: [String: String], atUnixMs: Int64)
    case applyReport(node: String, report: Specola_V1_Report, receivedAtUnixMs: Int64)
}

/// What applying a command did.
public enum ApplyOutcome: Sendable, Equatable {
    case registered(lastAppliedSeq: UInt64)
    /// The report was merged. `gap` is true when at least one earlier sequence number never arrived.
    case reportApplied(lastAppliedSeq: UInt64, gap: Bool, needsFullReport: Bool)
    /// Already applied earlier (a resend after a lost ack); nothing changed.
    case duplicateReport(lastAppliedSeq: UInt64)
    case rejected(reason: String)
}

/// The replicated state machine: the node registry and each node's latest facts.
public struct ClusterState: Sendable {
    /// How many SEL entries are kept per node.
    public static let selHistoryLimit = 200

    public private(set) var nodes: [String: Specola_V1_Node] = [:]

    public init(nodes: [String: Specola_V1_Node] = [:]) {
        self.nodes = nodes
    }

    /// Names of the nodes whose record `command` touches (for persistence).
    public static func touchedNodes(by command: ClusterCommand) -> [String] {
        switch command {
        case .registerNode(let name, _, _, _, _): return [name]
        case .applyReport(let node, _, _): return [node]
        }
    }

    public mutating func apply(_ command: ClusterCommand) -> ApplyOutcome {
        switch command {
        case let .registerNode(name, address, agentVersion, labels, at):
            var node = nodes[name] ?? Specola_V1_Node.with {
                $0.name = name
                $0.registeredAtUnixMs = at
            }
            node.address = address
            node.agentVersion = agentVersion
            node.lastSeenUnixMs = max(node.lastSeenUnixMs, at)
            if !labels.isEmpty {
                node.facts.capacity.labels = labels
            }
            nodes[name] = node
            return .registered(lastAppliedSeq: node.lastAppliedSeq)

        case let .applyReport(name, report, receivedAt):
            guard var node = nodes[name] else {
                return .rejected(reason: "node \(name) is not registered")
            }
            if report.seq <= node.lastAppliedSeq {
                return .duplicateReport(lastAppliedSeq: node.lastAppliedSeq)
            }
            let gap = node.lastAppliedSeq != 0 && report.seq != node.lastAppliedSeq + 1
            let hadBaseline = node.hasFacts && node.facts.hasCapacity
            merge(report.facts, into: &node, full: report.full)
            node.lastAppliedSeq = report.seq
            node.reportsApplied += 1
            if gap { node.seqGaps += 1 }
            node.lastSeenUnixMs = max(node.lastSeenUnixMs, receivedAt)
            nodes[name] = node
            return .reportApplied(
                lastAppliedSeq: report.seq, gap: gap,
                needsFullReport: !report.full && !hadBaseline)
        }
    }

    private func merge(_ facts: Specola_V1_NodeFacts, into node: inout Specola_V1_Node, full: Bool) {
        var merged = full ? Specola_V1_NodeFacts() : node.facts
        if full, node.facts.hasCapacity, !facts.hasCapacity {
            merged.capacity = node.facts.capacity
        }
        if facts.hasCapacity { merged.capacity = facts.capacity }
        if facts.hasBmc { merged.bmc = facts.bmc }
        if facts.hasStorage { merged.storage = facts.storage }
        if facts.hasVms { merged.vms = facts.vms }
        if facts.hasContainers { merged.containers = facts.containers }
        if facts.hasCollectors { merged.collectors = facts.collectors }
        // SEL is an append-only event stream; the node record keeps a bounded tail.
        if facts.hasSel, !facts.sel.entries.isEmpty {
            node.recentSel.append(contentsOf: facts.sel.entries)
            if node.recentSel.count > Self.selHistoryLimit {
                node.recentSel.removeFirst(node.recentSel.count - Self.selHistoryLimit)
            }
        }
        merged.clearSel()
        node.facts = merged
    }
}
