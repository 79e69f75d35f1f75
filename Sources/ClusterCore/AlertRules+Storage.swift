import SpecolaAlerting
import SpecolaJobs
import SpecolaWire

/// What the storage alert rules need besides the state.
public struct StorageAlertSettings: Sendable, Hashable {
    public var healBacklogThreshold: UInt64 = 1_000
    public var healBacklogForMs: Int64 = 600_000
    /// Each volume's split-brain policy, named in the SplitBrain alert.
    public var splitBrainPolicies: [String: String] = [:]

    public init() {}

    public init(_ policy: StoragePolicy) {
        healBacklogThreshold = policy.healBacklogThreshold
        healBacklogForMs = policy.healBacklogForMs
        splitBrainPolicies = policy.volumes.mapValues(\.splitBrain.rawValue)
    }
}

extension AlertRuleEvaluator {
    /// BrickDown, HealBacklog, SplitBrain, VolumeDegraded, DiskFailing and StorageActionFailed.
    /// Alerts about a brick or disk carry its node, so a down node inhibits them; a DiskFailing
    /// alert of a node that is not ready is not resolved from that node's stale facts.
    mutating func storage(_ input: AlertRuleInput, _ book: AlertBook) -> [AlertChange] {
        let now = input.nowUnixMs
        let settings = self.settings.storage
        var wanted: [BuiltinAlert] = []
        var backlogged: Set<String> = []
        for volume in StorageView.volumes(input.state.nodes) where volume.volume.status == "Started" {
            let conditions = volume.bricks.map { HealPlanner.health(of: $0, nodes: input.state.nodes, status: input.status) }
            for (brick, condition) in zip(volume.bricks, conditions) {
                if !brick.brick.online && brick.statusKnown {
                    wanted.append(.brickDown(volume: volume.name, brick: brick.key, node: brick.node, reason: condition.isHealthy
                        ? "its brick process is not running" : condition.summary))
                }
                if brick.brick.hasHealPending, brick.brick.healPending > settings.healBacklogThreshold {
                    let key = "\(volume.name)|\(brick.key)"
                    backlogged.insert(key)
                    let since = backlogSince[key] ?? now
                    backlogSince[key] = since
                    if now - since >= settings.healBacklogForMs {
                        wanted.append(.healBacklog(volume: volume.name, brick: brick.key, node: brick.node,
                                                   entries: brick.brick.healPending, forSeconds: (now - since) / 1000))
                    }
                }
            }
            let splitBrain = volume.bricks.compactMap { $0.brick.hasSplitBrain ? $0.brick.splitBrain : nil }.max() ?? 0
            if splitBrain > 0 {
                wanted.append(.splitBrain(volume: volume.name, count: splitBrain, files: volume.splitBrainFiles,
                                          policy: input.state.storage.volumePolicies[volume.name]?.splitBrain
                                              ?? settings.splitBrainPolicies[volume.name] ?? StoragePolicy.SplitBrainPolicy.manual.rawValue))
            }
            var weak: [String] = []
            var worst = Int.max
            for set in volume.replicaSets {
                let members = zip(volume.bricks, conditions).filter { $0.0.brick.replicaSet == set }
                let unhealthy = members.filter { !$0.1.isHealthy }
                worst = min(worst, members.count - unhealthy.count)
                if !unhealthy.isEmpty {
                    weak.append("replica set \(set): \(members.count - unhealthy.count) of \(members.count) bricks healthy ("
                        + unhealthy.map { "\($0.0.key): \($0.1.summary)" }.joined(separator: "; ") + ")")
                }
            }
            if !weak.isEmpty {
                wanted.append(.volumeDegraded(volume: volume.name, severity: worst <= 1 ? .critical : .warning, reason: weak.joined(separator: "; ")))
            }
        }
        backlogSince = backlogSince.filter { backlogged.contains($0.key) }
        for node in input.state.nodes.values.sorted(by: { $0.name < $1.name }) where node.facts.hasStorage {
            for disk in node.facts.storage.disks {
                if disk.smartStatus == "failed" {
                    wanted.append(.diskFailing(node: node.name, disk: disk.name, reason: "SMART health check failed" + (disk.smartDetail.isEmpty ? "" : ": \(disk.smartDetail)")))
                } else if disk.ioErrors > 0 {
                    wanted.append(.diskFailing(node: node.name, disk: disk.name, reason: "the kernel counted \(disk.ioErrors) I/O errors"))
                }
            }
            for volume in node.facts.gluster.volumes {
                for brick in volume.bricks where brick.local && brick.readOnly {
                    wanted.append(.diskFailing(node: node.name, disk: brick.device.isEmpty ? brick.mountPoint : brick.device,
                                               reason: "the filesystem under brick \(StorageView.key(brick)) is read-only"))
                }
            }
        }
        var changes = reconcile(
            wanted, rules: [BuiltinRule.brickDown, BuiltinRule.healBacklog, BuiltinRule.splitBrain, BuiltinRule.volumeDegraded, BuiltinRule.diskFailing],
            input: input, book, now: now)
        changes += failedActions(input.state.storage, book, now: now)
        return changes
    }

    /// Fires what is wanted and not firing; resolves what fires under `rules` and is no longer wanted.
    private func reconcile(_ wanted: [BuiltinAlert], rules: Set<String>, input: AlertRuleInput, _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        var fingerprints: Set<String> = []
        for alert in wanted where fingerprints.insert(alert.fingerprint).inserted {
            if book.alerts[alert.fingerprint]?.status != .firing { changes.append(alert.fire(atUnixMs: now)) }
        }
        for alert in book.alerts.values.sorted(by: { $0.id < $1.id })
        where rules.contains(alert.rule) && alert.status == .firing && !fingerprints.contains(alert.id) {
            if let node = alert.labels["node"], input.state.nodes[node] != nil, input.status[node] != .ready,
               alert.rule == BuiltinRule.diskFailing {
                continue
            }
            changes.append(.resolve(fingerprint: alert.id, atUnixMs: now))
        }
        return changes
    }

    /// StorageActionFailed: once per failed action; resolves after `eventResolveAfterMs`.
    private func failedActions(_ storage: StorageBook, _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        for action in storage.ordered where action.state == .failed && now - action.finishedAtUnixMs < settings.eventResolveAfterMs {
            let alert = BuiltinAlert.storageActionFailed(
                action: action.id, volume: action.volume, node: action.node, what: StorageBook.describe(action),
                message: action.message.isEmpty ? "no message" : action.message)
            if book.alerts[alert.fingerprint] == nil { changes.append(alert.fire(atUnixMs: now)) }
        }
        for alert in book.alerts.values.sorted(by: { $0.id < $1.id })
        where alert.rule == BuiltinRule.storageActionFailed && alert.status == .firing && now - alert.startsAtUnixMs >= settings.eventResolveAfterMs {
            changes.append(.resolve(fingerprint: alert.id, atUnixMs: now))
        }
        return changes
    }
}
