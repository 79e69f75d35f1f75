import SpecolaAlerting
import SpecolaJobs
import SpecolaWire

/// What one rule pass reads: the replicated state, each node's liveness as the leader sees
/// it, when the leader last heard from each node, and the time of the pass.
public struct AlertRuleInput: Sendable {
    public var state: ClusterState
    public var status: [String: NodeStatus]
    public var lastContactUnixMs: [String: Int64]
    public var nowUnixMs: Int64
    /// The certificates the leader itself uses (its own and its CAs), read from its files.
    public var certificates: [CertificateExpiry] = []

    public init(state: ClusterState, status: [String: NodeStatus], lastContactUnixMs: [String: Int64], nowUnixMs: Int64) {
        self.state = state
        self.status = status
        self.lastContactUnixMs = lastContactUnixMs
        self.nowUnixMs = nowUnixMs
    }
}

/// When one certificate file's certificate stops being valid.
public struct CertificateExpiry: Sendable, Hashable {
    /// `coordinator/c1`, or a CA's subject.
    public var name: String
    public var path: String
    public var notValidAfterUnixMs: Int64

    public init(name: String, path: String, notValidAfterUnixMs: Int64) {
        self.name = name
        self.path = path
        self.notValidAfterUnixMs = notValidAfterUnixMs
    }
}

/// Settings of the built-in rules (the `alerting:` section of the coordinator config).
public struct BuiltinRuleSettings: Sendable, Hashable {
    /// Fire AgentLost once a node has been silent this long; nil turns the rule off.
    /// NodeDown inhibits it, so it only speaks between suspect and down.
    public var agentLostAfterMs: Int64?
    /// SEL entries and job failures are events, not conditions: their alerts resolve this
    /// long after they fired, and the same event never fires again.
    public var eventResolveAfterMs: Int64 = 3_600_000
    /// On first sight of a node, SEL entries older than this (by the BMC's clock) are history, not news.
    public var selMaxAgeMs: Int64 = 3_600_000
    /// CertificateExpiring fires this long before a certificate the leader uses expires.
    public var certificateWarnBeforeMs: Int64 = 30 * 86_400_000
    /// Thresholds and policies of the GlusterFS rules.
    public var storage = StorageAlertSettings()

    public init() {}
}

/// The metrics threshold rules can read, per node (subject labels `node`) or per
/// filesystem (subject labels `node` and `mountpoint`). Read from the node's last report.
public enum NodeMetric {
    public static let load1 = "load1"
    public static let load5 = "load5"
    public static let load15 = "load15"
    /// load1 divided by the node's CPU cores.
    public static let load1PerCore = "load1_per_core"
    public static let memoryAvailableBytes = "memory_available_bytes"
    /// Available memory as a percentage of all memory (0-100).
    public static let memoryAvailablePercent = "memory_available_percent"
    /// Per filesystem: space available to unprivileged users, as a percentage of its size (0-100).
    public static let filesystemAvailablePercent = "filesystem_available_percent"
    public static let filesystemAvailableBytes = "filesystem_available_bytes"

    public static let all = [
        load1, load5, load15, load1PerCore, memoryAvailableBytes, memoryAvailablePercent, filesystemAvailablePercent,
        filesystemAvailableBytes,
    ]

    /// Node-level samples; a metric the report lacks is left out (no data changes nothing).
    public static func nodeSamples(_ node: Specola_V1_Node) -> [String: Double] {
        guard node.facts.hasCapacity else { return [:] }
        let capacity = node.facts.capacity
        var samples = [load1: capacity.load1, load5: capacity.load5, load15: capacity.load15]
        if capacity.cpuCores > 0 { samples[load1PerCore] = capacity.load1 / Double(capacity.cpuCores) }
        if capacity.memoryBytes > 0 {
            samples[memoryAvailableBytes] = Double(capacity.memoryAvailableBytes)
            samples[memoryAvailablePercent] = 100 * Double(capacity.memoryAvailableBytes) / Double(capacity.memoryBytes)
        }
        return samples
    }

    /// Per-filesystem samples, by mount point.
    public static func filesystemSamples(_ node: Specola_V1_Node) -> [(mountPoint: String, samples: [String: Double])] {
        guard node.facts.hasStorage else { return [] }
        return node.facts.storage.filesystems.filter { $0.sizeBytes > 0 }.sorted { $0.mountPoint < $1.mountPoint }.map { fs in
            (
                fs.mountPoint,
                [
                    filesystemAvailablePercent: 100 * Double(fs.availableBytes) / Double(fs.sizeBytes),
                    filesystemAvailableBytes: Double(fs.availableBytes),
                ]
            )
        }
    }
}

/// The leader's rule evaluation: built-in rules over the replicated state and liveness, and
/// the config's threshold rules over node metrics. It returns the alert changes to propose and
/// never proposes what the book already says (firing an alert that fires), so a quiet cluster
/// writes nothing to the log. Pure but for the threshold rules' `for` memory, which is the
/// leader's own: a new leader starts each `for` period over.
public struct AlertRuleEvaluator: Sendable {
    public var settings: BuiltinRuleSettings
    public var thresholds: ThresholdEvaluator
    /// Since when each brick's heal backlog has been over the threshold ("VOLUME|HOST:PATH"); leader memory.
    var backlogSince: [String: Int64] = [:]

    public init(settings: BuiltinRuleSettings = BuiltinRuleSettings(), thresholdRules: [ThresholdRule] = []) {
        self.settings = settings
        thresholds = ThresholdEvaluator(rules: thresholdRules)
    }

    public mutating func evaluate(_ input: AlertRuleInput) -> [AlertChange] {
        let book = input.state.alerts
        let nodes = input.state.nodes.values.sorted { $0.name < $1.name }
        var changes: [AlertChange] = []
        for node in nodes {
            changes += liveness(node, input, book)
            // Facts of a node that is not ready are stale: no data changes nothing.
            guard input.status[node.name] == .ready else { continue }
            changes += sensors(node, book, now: input.nowUnixMs)
            changes += thresholds.evaluate(NodeMetric.nodeSamples(node), subject: ["node": node.name], book: book, atUnixMs: input.nowUnixMs)
            for (mountPoint, samples) in NodeMetric.filesystemSamples(node) {
                changes += thresholds.evaluate(
                    samples, subject: ["node": node.name, "mountpoint": mountPoint], book: book, atUnixMs: input.nowUnixMs)
            }
        }
        changes += sel(nodes, book, now: input.nowUnixMs)
        changes += jobs(input.state.jobs, book, now: input.nowUnixMs)
        changes += workloadErrors(input.state.workloads, book, now: input.nowUnixMs)
        changes += storage(input, book)
        changes += forgottenNodes(input.state, book, now: input.nowUnixMs)
        changes += certificates(input.certificates, book, now: input.nowUnixMs)
        return changes
    }

    /// CertificateExpiring: fires within `certificateWarnBeforeMs` of expiry, resolves once the file holds a later one.
    private func certificates(_ certificates: [CertificateExpiry], _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        for certificate in certificates {
            let leftMs = certificate.notValidAfterUnixMs - now
            let expiresIn = leftMs <= 0 ? "expired \(-leftMs / 86_400_000) days ago" : "expires in \(leftMs / 86_400_000) days"
            let alert = BuiltinAlert.certificateExpiring(certificate: certificate.name, path: certificate.path, expiresIn: expiresIn)
            let firing = book.alerts[alert.fingerprint]?.status == .firing
            if leftMs < settings.certificateWarnBeforeMs {
                if !firing { changes.append(alert.fire(atUnixMs: now)) }
            } else if firing {
                changes.append(alert.resolve(atUnixMs: now))
            }
        }
        return changes
    }

    /// NodeDown and AgentLost. They resolve only once the node's agent has registered or
    /// reported (a committed `lastSeen`) after the alert fired: a new leader's grace period
    /// makes every node look ready, and that must not resolve an alert about a dead node.
    private func liveness(_ node: Specola_V1_Node, _ input: AlertRuleInput, _ book: AlertBook) -> [AlertChange] {
        let now = input.nowUnixMs
        let status = input.status[node.name] ?? .down
        let silentMs = now - (input.lastContactUnixMs[node.name] ?? node.lastSeenUnixMs)
        var changes: [AlertChange] = []
        let down = BuiltinAlert.nodeDown(node: node.name, reason: "no heartbeat from its agent for \(silentMs / 1000) s")
        changes += condition(down, holds: Self.downStatuses.contains(status), cleared: status == .ready, node: node, book, now: now)
        if let after = settings.agentLostAfterMs {
            let lost = BuiltinAlert.agentLost(node: node.name, lastContact: "\(silentMs / 1000) s ago")
            changes += condition(lost, holds: status != .ready && silentMs >= after, cleared: status == .ready, node: node, book, now: now)
        }
        return changes
    }

    /// The rungs of the failure ladder at and past `down`.
    public static let downStatuses: Set<NodeStatus> = [.down, .fencing, .fenced]

    private func condition(
        _ alert: BuiltinAlert, holds: Bool, cleared: Bool, node: Specola_V1_Node, _ book: AlertBook, now: Int64
    ) -> [AlertChange] {
        let current = book.alerts[alert.fingerprint]
        if holds {
            return current?.status == .firing ? [] : [alert.fire(atUnixMs: now)]
        }
        if cleared, let current, current.status == .firing, node.lastSeenUnixMs > current.startsAtUnixMs {
            return [alert.resolve(atUnixMs: now)]
        }
        return []
    }

    /// SensorCritical: fires per sensor in critical state, resolves when the BMC reports it otherwise or no longer lists it.
    private func sensors(_ node: Specola_V1_Node, _ book: AlertBook, now: Int64) -> [AlertChange] {
        guard node.facts.hasBmc, node.facts.bmc.present else { return [] }
        var changes: [AlertChange] = []
        var critical: Set<String> = []
        for sensor in node.facts.bmc.sensors where sensor.state == .critical && critical.insert(sensor.name).inserted {
            let reading = sensor.hasReading_p ? "\(sensor.reading) \(sensor.units)" : "no reading"
            let alert = BuiltinAlert.sensorCritical(node: node.name, sensor: sensor.name, reading: "\(reading) (\(sensor.type))")
            if book.alerts[alert.fingerprint]?.status != .firing { changes.append(alert.fire(atUnixMs: now)) }
        }
        for alert in firing(book, rule: BuiltinRule.sensorCritical, node: node.name)
        where !critical.contains(alert.labels["sensor"] ?? "") {
            changes.append(.resolve(fingerprint: alert.id, atUnixMs: now))
        }
        return changes
    }

    /// SELCritical: one alert per critical SEL entry newer than the newest one already alerted
    /// for the node (by the `sel_time` label); each resolves after `eventResolveAfterMs`.
    private func sel(_ nodes: [Specola_V1_Node], _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        let known = book.alerts.values.filter { $0.rule == BuiltinRule.selCritical }
        for node in nodes {
            let watermark = known.filter { $0.labels["node"] == node.name }.compactMap { $0.labels["sel_time"].flatMap(Int64.init) }.max()
            for entry in node.recentSel where entry.state == .critical {
                let isNew = watermark.map { entry.timestampUnix >= $0 } ?? (entry.timestampUnix * 1000 >= now - settings.selMaxAgeMs)
                guard isNew else { continue }
                var alert = BuiltinAlert.selCritical(
                    node: node.name, event: "\(entry.recordID)",
                    text: "\(entry.sensorName) (\(entry.sensorType)): \(entry.event), BMC time \(entry.timestampUnix)")
                alert.labels["sel_time"] = "\(entry.timestampUnix)"
                if book.alerts[alert.fingerprint] == nil { changes.append(alert.fire(atUnixMs: now)) }
            }
        }
        changes += expiredEvents(known, now: now)
        return changes
    }

    /// JobFailed: one alert per failed job, naming its first failed task and where it ran.
    /// A job resubmitted under the same name that fails again fires again.
    private func jobs(_ jobs: JobBook, _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        let known = book.alerts.values.filter { $0.rule == BuiltinRule.jobFailed }
        for entry in jobs.jobs.values.sorted(by: { $0.id < $1.id }) where entry.run.state == .failed {
            guard let task = entry.run.order.lazy.compactMap({ entry.run.tasks[$0] }).first(where: { $0.state == .failed }) else { continue }
            var message = task.message.isEmpty ? "task \(task.id) failed" : task.message
            if let code = task.exitCode { message += " (exit code \(code))" }
            message += "; `specola logs \(task.id)` shows its output"
            let alert = BuiltinAlert.jobFailed(job: entry.id, task: task.id, node: task.node ?? "", message: message)
            let finished = entry.finishedAtUnixMs > 0 ? entry.finishedAtUnixMs : entry.submittedAtUnixMs
            let previous = known.filter { $0.labels["job"] == entry.id }.map(\.startsAtUnixMs).max()
            if previous.map({ $0 < finished }) ?? true, book.alerts[alert.fingerprint]?.status != .firing {
                changes.append(alert.fire(atUnixMs: now))
            }
        }
        // A job that is no longer failed (resubmitted, or gone) resolves at once.
        for alert in known where alert.status == .firing && jobs.jobs[alert.labels["job"] ?? ""]?.run.state != .failed {
            changes.append(.resolve(fingerprint: alert.id, atUnixMs: now))
        }
        changes += expiredEvents(known.filter { alert in !changes.contains(.resolve(fingerprint: alert.id, atUnixMs: now)) }, now: now)
        return changes
    }

    private func expiredEvents(_ alerts: [Alert], now: Int64) -> [AlertChange] {
        alerts.filter { $0.status == .firing && now - $0.startsAtUnixMs >= settings.eventResolveAfterMs }
            .sorted { $0.id < $1.id }
            .map { .resolve(fingerprint: $0.id, atUnixMs: now) }
    }

    /// Node alerts about nodes the state no longer has resolve (nothing else would).
    private func forgottenNodes(_ state: ClusterState, _ book: AlertBook, now: Int64) -> [AlertChange] {
        let nodeRules: Set<String> = [BuiltinRule.nodeDown, BuiltinRule.agentLost, BuiltinRule.sensorCritical]
        return book.alerts.values
            .filter { $0.status == .firing && nodeRules.contains($0.rule) && state.nodes[$0.labels["node"] ?? ""] == nil }
            .sorted { $0.id < $1.id }
            .map { .resolve(fingerprint: $0.id, atUnixMs: now) }
    }

    /// True when committing `change` would change nothing: firing what fires, resolving what
    /// does not fire. Level-triggered callers of `AlertController.raise` repeat themselves every
    /// pass; this keeps their repetitions out of the Raft log.
    public static func isRedundant(_ change: AlertChange, in book: AlertBook) -> Bool {
        switch change {
        case .fire(let rule, let labels, _, _, _, _):
            return book.alerts[Alert.fingerprint(rule: rule, labels: labels)]?.status == .firing
        case .resolve(let fingerprint, _):
            return book.alerts[fingerprint]?.status != .firing
        default:
            return false
        }
    }

    private func firing(_ book: AlertBook, rule: String, node: String) -> [Alert] {
        book.alerts.values.filter { $0.rule == rule && $0.status == .firing && $0.labels["node"] == node }.sorted { $0.id < $1.id }
    }
}
