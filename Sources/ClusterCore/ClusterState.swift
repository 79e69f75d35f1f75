import Foundation
import SpecolaAlerting
import SpecolaJobs
import SpecolaWire

/// What applying a command did, handed back to whoever proposed it.
public enum ApplyOutcome: Sendable, Equatable {
    case registered(lastAppliedSeq: UInt64)
    /// The report was merged. `gap` is true when at least one earlier sequence number never arrived.
    case reportApplied(lastAppliedSeq: UInt64, gap: Bool, needsFullReport: Bool)
    /// Already applied earlier (a resend after a lost ack); nothing changed.
    case duplicateReport(lastAppliedSeq: UInt64)
    case kvWrite(Specola_V1_KvWriteResponse)
    /// A job was submitted or cancelled.
    case job(String)
    /// How many placements of a scheduling pass took effect.
    case placed(count: Int)
    /// A storage action was committed under this id.
    case storageAction(id: String)
    case done
    case rejected(reason: String)
}

/// The replicated state machine: node registry and facts, jobs and their
/// allocations, the KV store and the replica address book. `apply` is deterministic: it reads no clock, no
/// randomness and no network; time comes inside the command.
public struct ClusterState: Sendable {
    /// How many SEL entries are kept per node.
    public static let selHistoryLimit = 200

    public private(set) var nodes: [String: Specola_V1_Node] = [:]
    public private(set) var kv: [String: Specola_V1_KeyValue] = [:]
    public private(set) var kvRevision: UInt64 = 0
    public private(set) var members: [UInt64: Specola_V1_Member] = [:]
    public private(set) var jobs = JobBook()
    public private(set) var workloads = WorkloadBook()
    public private(set) var alerts = AlertBook()
    public private(set) var storage = StorageBook()

    public init() {}

    public init(snapshot: Specola_V1_ClusterSnapshot) throws {
        for node in snapshot.nodes { nodes[node.name] = node }
        for entry in snapshot.kv { kv[entry.key] = entry }
        kvRevision = snapshot.kvRevision
        for member in snapshot.members { members[member.id] = member }
        jobs = try JobBook(snapshot: snapshot)
        workloads = WorkloadBook(snapshot: snapshot)
        alerts = try AlertBook(snapshotJSON: snapshot.alertBookJson)
        storage = StorageBook(snapshot: snapshot)
    }

    /// The whole state, in a stable order so equal states serialize equally.
    public func snapshot() -> Specola_V1_ClusterSnapshot {
        .with {
            $0.nodes = nodes.values.sorted { $0.name < $1.name }
            $0.kv = kv.values.sorted { $0.key < $1.key }
            $0.kvRevision = kvRevision
            $0.members = members.values.sorted { $0.id < $1.id }
            jobs.write(into: &$0)
            workloads.write(into: &$0)
            storage.write(into: &$0)
            $0.alertBookJson = alerts.snapshotJSON()
        }
    }

    public mutating func apply(_ command: Specola_V1_Command) -> ApplyOutcome {
        let at = command.proposedAtUnixMs
        switch command.kind {
        case .registerNode(let register):
            return registerNode(register, at: at)
        case .applyReport(let report):
            return applyReport(node: report.node, report: report.report, receivedAt: at)
        case .kvPut(let put):
            return .kvWrite(write(key: put.key, value: put.value))
        case .kvDelete(let delete):
            guard let existing = kv.removeValue(forKey: delete.key) else {
                return .kvWrite(.with { $0.succeeded = false; $0.revision = kvRevision })
            }
            kvRevision += 1
            return .kvWrite(.with { $0.succeeded = true; $0.revision = kvRevision; $0.kv = existing; $0.found = true })
        case .kvCas(let cas):
            let current = kv[cas.key]
            let matches: Bool
            switch cas.expect {
            case .expectedValue(let value): matches = current?.value == value
            case .expectedModRevision(let revision): matches = (current?.modRevision ?? 0) == revision
            case nil: matches = false
            }
            guard matches else {
                return .kvWrite(.with {
                    $0.succeeded = false
                    $0.revision = kvRevision
                    if let current { $0.kv = current; $0.found = true }
                })
            }
            return .kvWrite(write(key: cas.key, value: cas.newValue))
        case .setMember(let change):
            if change.remove {
                members.removeValue(forKey: change.member.id)
            } else {
                members[change.member.id] = change.member
            }
            return .done
        case .submitJob(let submit):
            return jobs.submit(submit, at: at)
        case .placeTasks(let placements):
            return jobs.place(placements, at: at) { nodes[$0] != nil }
        case .cancelJob(let cancel):
            return jobs.cancel(cancel.jobID, at: at)
        case .requeueAllocations(let requeue):
            return jobs.requeue(requeue, at: at)
        case .setNodeScheduling(let change):
            guard var node = nodes[change.node] else { return .rejected(reason: "no node '\(change.node)'") }
            node.cordoned = change.cordoned
            node.draining = change.draining
            nodes[change.node] = node
            if change.draining { jobs.drain(node: change.node) }
            return .done
        case .nodeHealth(let health):
            guard var node = nodes[health.node] else { return .rejected(reason: "no node '\(health.node)'") }
            node.status = health.status
            node.statusReason = health.reason
            node.statusSinceUnixMs = at
            // An operator's fence lasts until the node is back; an automatic step never clears it early.
            if !health.fenceRequestedBy.isEmpty {
                node.fenceRequestedBy = health.fenceRequestedBy
            } else if !["fencing", "fenced"].contains(health.status) {
                node.fenceRequestedBy = ""
            }
            nodes[health.node] = node
            return .done
        case .alert(let command):
            return Self.applyAlert(command, to: &alerts)
        case .workload(let command):
            return workloads.apply(command, at: at, nodes: nodes)
        case .storage(let command):
            return storage.apply(command, at: at, nodes: nodes)
        case .noop, nil:
            return .done
        }
    }

    private mutating func write(key: String, value: Data) -> Specola_V1_KvWriteResponse {
        kvRevision += 1
        var entry = kv[key] ?? Specola_V1_KeyValue.with {
            $0.key = key
            $0.createRevision = kvRevision
        }
        entry.value = value
        entry.modRevision = kvRevision
        entry.version += 1
        kv[key] = entry
        return .with { $0.succeeded = true; $0.revision = kvRevision; $0.kv = entry; $0.found = true }
    }

    private mutating func registerNode(_ register: Specola_V1_RegisterNodeCommand, at: Int64) -> ApplyOutcome {
        var node = nodes[register.name] ?? Specola_V1_Node.with {
            $0.name = register.name
            $0.registeredAtUnixMs = at
        }
        node.address = register.address
        node.agentVersion = register.agentVersion
        node.lastSeenUnixMs = max(node.lastSeenUnixMs, at)
        if !register.labels.isEmpty {
            node.facts.capacity.labels = register.labels
        }
        nodes[register.name] = node
        return .registered(lastAppliedSeq: node.lastAppliedSeq)
    }

    private mutating func applyReport(node name: String, report: Specola_V1_Report, receivedAt: Int64) -> ApplyOutcome {
        guard var node = nodes[name] else {
            return .rejected(reason: "node \(name) is not registered")
        }
        if report.seq <= node.lastAppliedSeq {
            return .duplicateReport(lastAppliedSeq: node.lastAppliedSeq)
        }
        let gap = node.lastAppliedSeq != 0 && report.seq != node.lastAppliedSeq + 1
        let hadBaseline = node.hasFacts && node.facts.hasCapacity
        merge(report.facts, into: &node, full: report.full)
        if report.facts.hasGluster { node.glusterCollectedAtUnixMs = report.collectedAtUnixMs }
        for event in report.taskEvents {
            for output in jobs.apply(event, from: name, at: receivedAt) {
                _ = write(key: output.key, value: Data(output.value.utf8))
            }
        }
        for event in report.workloadEvents {
            workloads.apply(event, from: name, at: receivedAt)
        }
        for event in report.storageEvents {
            storage.apply(event, from: name, at: receivedAt)
        }
        node.lastAppliedSeq = report.seq
        node.reportsApplied += 1
        if gap { node.seqGaps += 1 }
        node.lastSeenUnixMs = max(node.lastSeenUnixMs, receivedAt)
        nodes[name] = node
        return .reportApplied(lastAppliedSeq: report.seq, gap: gap, needsFullReport: !report.full && !hadBaseline)
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
        if facts.hasGluster { merged.gluster = facts.gluster }
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
