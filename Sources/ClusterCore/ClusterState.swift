import Foundation
import SpecolaAlerting
import SpecolaJobs
import SpecolaWire

/// What applying a command did, handed back to whoever proposed it.
public enum ApplyOutcome: Sendable, Equatable {
    case registered(lastAppliedSeq: UInt64)
    /// The node is unknown and auto-accept is off: it waits for `specola node accept`.
    case awaitingAcceptance(node: String)
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
    /// Agents that registered and wait for an operator's `specola node accept`.
    public private(set) var pendingNodes: [String: Specola_V1_PendingNode] = [:]
    /// The deny list (`specola pki revoke`), in the order entries were added.
    public private(set) var revoked: [Specola_V1_RevokedCertificate] = []
    public private(set) var storage = StorageBook()
    /// Projects, role bindings and the audit log.
    public private(set) var access = AccessBook()
    /// Which proposals the log applied lately (see `ProposalLedger`).
    public private(set) var proposals = ProposalLedger()

    public init() {}

    public init(snapshot: Specola_V1_ClusterSnapshot) throws {
        for var node in snapshot.nodes {
            node.upgradeLegacyStatus()
            nodes[node.name] = node
        }
        for entry in snapshot.kv { kv[entry.key] = entry }
        kvRevision = snapshot.kvRevision
        for member in snapshot.members { members[member.id] = member }
        jobs = try JobBook(snapshot: snapshot)
        // Outputs of jobs committed before ids were scoped per project move with their job.
        for (old, scoped) in jobs.migratedJobIDs {
            let prefix = "jobs/\(old)/outputs/"
            for key in kv.keys where key.hasPrefix(prefix) {
                guard var entry = kv.removeValue(forKey: key) else { continue }
                entry.key = "jobs/\(scoped)/outputs/" + key.dropFirst(prefix.count)
                kv[entry.key] = entry
            }
        }
        workloads = WorkloadBook(snapshot: snapshot)
        alerts = try snapshot.decodedAlertBook()
        for pending in snapshot.pendingNodes { pendingNodes[pending.name] = pending }
        revoked = snapshot.revoked
        storage = StorageBook(snapshot: snapshot)
        access = AccessBook(snapshot: snapshot)
        proposals = ProposalLedger(snapshot: snapshot)
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
            access.write(into: &$0)
            if !alerts.alerts.isEmpty || !alerts.silences.isEmpty { $0.alertBook = .init(alerts) }
            $0.pendingNodes = pendingNodes.values.sorted { $0.name < $1.name }
            $0.revoked = revoked
            proposals.write(into: &$0)
        }
    }

    /// Applies the command of the log entry at `index` and records its proposal id.
    public mutating func apply(_ command: Specola_V1_Command, at index: UInt64) -> ApplyOutcome {
        proposals.record(command.proposalID, index: index, at: command.proposedAtUnixMs)
        return apply(command)
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
            node.committedStatus = health.status
            node.statusReason = health.reason
            node.statusSinceUnixMs = at
            // An operator's fence lasts until the node is back; an automatic step never clears it early.
            if !health.fenceRequestedBy.isEmpty {
                node.fenceRequestedBy = health.fenceRequestedBy
            } else if !health.status.isFencingOrFenced {
                node.fenceRequestedBy = ""
            }
            nodes[health.node] = node
            return .done
        case .alert(let command):
            return Self.applyAlert(command, to: &alerts)
        case .workload(let command):
            return workloads.apply(command, at: at, nodes: nodes)
        case .acceptNode(let accept):
            return acceptNode(accept, at: at)
        case .nodeLabels(let change):
            guard var node = nodes[change.name] else { return .rejected(reason: "no node '\(change.name)'; `specola nodes` lists the known nodes") }
            for key in change.remove { node.facts.capacity.labels.removeValue(forKey: key) }
            node.facts.capacity.labels.merge(change.set) { _, new in new }
            node.labelsByOperator = true
            nodes[change.name] = node
            return .done
        case .forgetJobs(let forget):
            var removedKeys = 0
            for job in jobs.forget(finishedBefore: forget.finishedBeforeUnixMs) {
                let prefix = "jobs/\(job)/outputs/"
                for key in kv.keys where key.hasPrefix(prefix) {
                    kv.removeValue(forKey: key)
                    removedKeys += 1
                }
            }
            if removedKeys > 0 { kvRevision += 1 }
            return .done
        case .revokeCertificate(let revoke):
            let entry = revoke.entry
            if !revoked.contains(where: { $0.serial == entry.serial && $0.identity == entry.identity }) {
                revoked.append(entry)
            }
            return .done
        case .storage(let command):
            return storage.apply(command, at: at, nodes: nodes)
        case .project(let command):
            return access.apply(command, at: at)
        case .roleBinding(let command):
            return access.apply(command, at: at)
        case .audit(let command):
            return access.apply(command)
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
        if nodes[register.name] == nil && !register.autoAccept {
            var pending = pendingNodes[register.name] ?? .with {
                $0.name = register.name
                $0.firstSeenUnixMs = at
            }
            pending.address = register.address
            pending.agentVersion = register.agentVersion
            pending.declaredLabels = register.labels
            pending.lastSeenUnixMs = max(pending.lastSeenUnixMs, at)
            pendingNodes[register.name] = pending
            return .awaitingAcceptance(node: register.name)
        }
        pendingNodes.removeValue(forKey: register.name)
        var node = nodes[register.name] ?? Specola_V1_Node.with {
            $0.name = register.name
            $0.registeredAtUnixMs = at
        }
        node.address = register.address
        node.agentVersion = register.agentVersion
        node.lastSeenUnixMs = max(node.lastSeenUnixMs, at)
        if !register.labels.isEmpty && !node.labelsByOperator {
            node.facts.capacity.labels = register.labels
        }
        nodes[register.name] = node
        return .registered(lastAppliedSeq: node.lastAppliedSeq)
    }

    private mutating func acceptNode(_ accept: Specola_V1_AcceptNodeCommand, at: Int64) -> ApplyOutcome {
        guard nodes[accept.name] == nil else { return .rejected(reason: "node '\(accept.name)' is already accepted") }
        guard let pending = pendingNodes.removeValue(forKey: accept.name) else {
            let waiting = pendingNodes.keys.sorted()
            return .rejected(reason: "no node '\(accept.name)' waits for acceptance (waiting: \(waiting.isEmpty ? "none" : waiting.joined(separator: ", "))); its agent must register first")
        }
        nodes[accept.name] = .with {
            $0.name = accept.name
            $0.registeredAtUnixMs = at
            $0.lastSeenUnixMs = pending.lastSeenUnixMs
            $0.address = pending.address
            $0.agentVersion = pending.agentVersion
            $0.labelsByOperator = true
            $0.facts.capacity.labels = accept.labels
        }
        return .done
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
        // An operator's labels are not the agent's to change.
        if node.labelsByOperator { merged.capacity.labels = node.facts.capacity.labels }
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
