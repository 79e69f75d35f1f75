/// The names of the rules the coordinator raises itself (the `alertname` label).
public enum BuiltinRule {
    /// A node failed its health checks (the failure ladder reached `down`).
    public static let nodeDown = "NodeDown"
    /// A node has stayed in `fencing` without proof that it is off.
    public static let fencingStuck = "FencingStuck"
    /// A sensor reading crossed its critical threshold.
    public static let sensorCritical = "SensorCritical"
    /// The BMC's system event log recorded a critical event (power supply, memory, ...).
    public static let selCritical = "SELCritical"
    /// A job ended in `failed` after its retries.
    public static let jobFailed = "JobFailed"
    /// An HA workload (VM or pod) hit its restart limit and is in `error`.
    public static let workloadError = "WorkloadError"
    /// The coordinator lost contact with a node's agent.
    public static let agentLost = "AgentLost"
    /// A certificate or CA the leader uses expires soon (or has expired).
    public static let certificateExpiring = "CertificateExpiring"

    /// A GlusterFS brick process is not running (or its node is gone).
    public static let brickDown = "BrickDown"
    /// A brick has listed more entries to heal than the threshold for longer than the duration.
    public static let healBacklog = "HealBacklog"
    /// Files of a volume are in split-brain.
    public static let splitBrain = "SplitBrain"
    /// A replica set of a volume runs with fewer healthy bricks than it has.
    public static let volumeDegraded = "VolumeDegraded"
    /// A disk reports SMART failure or I/O errors, or a brick's filesystem went read-only.
    public static let diskFailing = "DiskFailing"
    /// A storage action (restart, replace, heal, split-brain resolution) failed.
    public static let storageActionFailed = "StorageActionFailed"
    /// Fencing does not power a node off because it holds the only up-to-date copy of data to heal.
    public static let fencingHeldForStorage = "FencingHeldForStorage"

    public static let all = [
        nodeDown, fencingStuck, sensorCritical, selCritical, jobFailed, workloadError, agentLost, certificateExpiring, brickDown,
        healBacklog, splitBrain, volumeDegraded, diskFailing, storageActionFailed, fencingHeldForStorage,
    ]
}

/// A built-in alert with its identifying labels, so that the code that fires it and the
/// code that resolves it cannot disagree on them.
public struct BuiltinAlert: Sendable, Hashable {
    public var rule: String
    public var labels: Labels
    public var severity: AlertSeverity
    public var summary: String
    public var description: String

    public var fingerprint: String { Alert.fingerprint(rule: rule, labels: labels) }

    public func fire(atUnixMs now: Int64) -> AlertChange {
        .fire(rule: rule, labels: labels, severity: severity, summary: summary, description: description, atUnixMs: now)
    }

    public func resolve(atUnixMs now: Int64) -> AlertChange { .resolve(fingerprint: fingerprint, atUnixMs: now) }

    public static func nodeDown(node: String, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.nodeDown, labels: ["node": node], severity: .critical,
            summary: "node \(node) is down", description: reason)
    }

    public static func fencingStuck(node: String, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.fencingStuck, labels: ["node": node], severity: .critical,
            summary: "node \(node) cannot be fenced; its HA workloads wait",
            description: reason + "; check the BMC, or fence by hand and run `specola node fence \(node)`")
    }

    public static func sensorCritical(node: String, sensor: String, reading: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.sensorCritical, labels: ["node": node, "sensor": sensor], severity: .critical,
            summary: "sensor \(sensor) on \(node) is critical", description: "reading: \(reading)")
    }

    /// `event` identifies the SEL record (e.g. its record id), so two events are two alerts.
    public static func selCritical(node: String, event: String, text: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.selCritical, labels: ["node": node, "event": event], severity: .critical,
            summary: "critical SEL event on \(node)", description: text)
    }

    /// `node` is where the task last ran, so a down node can inhibit it; empty when it never ran.
    public static func jobFailed(job: String, task: String, node: String, message: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.jobFailed, labels: withNode(["job": job, "task": task], node), severity: .warning,
            summary: "job \(job) failed in task \(task)", description: message)
    }

    /// `kind` is `vm` or `pod`; `node` is where it last ran, empty when nowhere.
    public static func workloadError(kind: String, name: String, node: String, message: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.workloadError, labels: withNode(["kind": kind, "workload": name], node), severity: .critical,
            summary: "\(kind) \(name) is in error", description: message)
    }

    /// A `node` label only when there is a node, so "no node" never matches a down node's inhibition.
    private static func withNode(_ labels: Labels, _ node: String) -> Labels {
        node.isEmpty ? labels : labels.merging(["node": node]) { $1 }
    }

    /// `certificate` names it (`coordinator/c1`, or a CA's subject), `path` the file that holds it.
    public static func certificateExpiring(certificate: String, path: String, expiresIn: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.certificateExpiring, labels: ["certificate": certificate, "path": path], severity: .warning,
            summary: "certificate \(certificate) \(expiresIn)",
            description: "re-issue it with `specola pki issue` (or rotate the CA, see the README) and install it over \(path); it is reloaded without a restart")
    }

    public static func agentLost(node: String, lastContact: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.agentLost, labels: ["node": node], severity: .warning,
            summary: "agent on \(node) is not reporting", description: "last contact: \(lastContact)")
    }

    /// `node` hosts the brick, so a down node inhibits it.
    public static func brickDown(volume: String, brick: String, node: String, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.brickDown, labels: withNode(["volume": volume, "brick": brick], node), severity: .warning,
            summary: "brick \(brick) of volume \(volume) is down", description: reason)
    }

    public static func healBacklog(volume: String, brick: String, node: String, entries: UInt64, forSeconds: Int64) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.healBacklog, labels: withNode(["volume": volume, "brick": brick], node), severity: .warning,
            summary: "brick \(brick) of volume \(volume) has \(entries) entries to heal",
            description: "over the threshold for \(forSeconds) s; check the self-heal daemons (`specola volume show \(volume)`)")
    }

    /// The description names each file (up to the first 50) and what happens to them.
    public static func splitBrain(volume: String, count: UInt64, files: [String], policy: String) -> BuiltinAlert {
        let shown = files.prefix(50).joined(separator: ", ")
        let more = files.count > 50 ? " and \(files.count - 50) more" : ""
        let action = policy == "manual"
            ? "policy manual: nothing is changed; pick the good copy of each with `gluster volume heal \(volume) split-brain ...`"
            : "policy \(policy): Specola resolves them"
        return BuiltinAlert(
            rule: BuiltinRule.splitBrain, labels: ["volume": volume], severity: .critical,
            summary: "\(count) entries of volume \(volume) are in split-brain",
            description: (files.isEmpty ? "files not listed yet" : "files: \(shown)\(more)") + "; " + action)
    }

    public static func volumeDegraded(volume: String, severity: AlertSeverity, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.volumeDegraded, labels: ["volume": volume], severity: severity,
            summary: "volume \(volume) runs with less redundancy than configured", description: reason)
    }

    public static func diskFailing(node: String, disk: String, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.diskFailing, labels: ["node": node, "disk": disk], severity: .critical,
            summary: "disk \(disk) on \(node) is failing", description: reason)
    }

    public static func storageActionFailed(action: String, volume: String, node: String, what: String, message: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.storageActionFailed, labels: withNode(["action": action, "volume": volume], node), severity: .warning,
            summary: "\(what) failed (\(action))", description: message)
    }

    public static func fencingHeldForStorage(node: String, reason: String) -> BuiltinAlert {
        BuiltinAlert(
            rule: BuiltinRule.fencingHeldForStorage, labels: ["node": node], severity: .critical,
            summary: "node \(node) is not powered off: it holds data no other brick has",
            description: reason + "; bring the node back, or power it off by hand once the data is safe and run `specola node fence \(node) --force`")
    }
}
