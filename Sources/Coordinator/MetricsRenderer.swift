import SpecolaClusterCore
import SpecolaJobs
import SpecolaProtocol

/// Renders cluster facts as Prometheus text. Sensor metrics reuse
/// prometheus-ipmi-exporter's names, with an extra `node` label, so existing
/// dashboards keep working.
public enum MetricsRenderer {
    public static func render(nodes: [Specola_V1_Node]) -> String {
        var out = MetricsText()
        out.family("specola_node_up", "1 when the node is ready, 0 when suspect or down.", "gauge")
        for node in nodes {
            out.sample("specola_node_up", ["node": node.name], node.shown == .ready ? 1 : 0)
        }
        out.family("specola_node_status", "Node status as a state set.", "gauge")
        for node in nodes {
            for status in NodeStatus.liveness {
                out.sample("specola_node_status", ["node": node.name, "status": status.word], node.shown == status ? 1 : 0)
            }
        }
        out.family("specola_node_reports_applied_total", "Reports applied from the node's agent.", "counter")
        for node in nodes { out.sample("specola_node_reports_applied_total", ["node": node.name], Double(node.reportsApplied)) }
        out.family("specola_node_report_seq_gaps_total", "Reports that arrived after a missing sequence number.", "counter")
        for node in nodes { out.sample("specola_node_report_seq_gaps_total", ["node": node.name], Double(node.seqGaps)) }

        out.family("ipmi_up", "1 when the node's BMC could be read.", "gauge")
        for node in nodes { out.sample("ipmi_up", ["node": node.name], node.facts.bmc.present ? 1 : 0) }
        out.family("ipmi_chassis_power_state", "Current chassis power state (1=on, 0=off).", "gauge")
        for node in nodes where node.facts.bmc.present && node.facts.bmc.power != .unknown {
            out.sample("ipmi_chassis_power_state", ["node": node.name], node.facts.bmc.power == .on ? 1 : 0)
        }

        var valueFamilies: [String: [(labels: [String: String], value: Double)]] = [:]
        var stateFamilies: [String: [(labels: [String: String], value: Double)]] = [:]
        for node in nodes {
            for sensor in node.facts.bmc.sensors {
                let kind = SensorKind(type: sensor.type)
                var labels = ["node": node.name, "id": String(sensor.recordID), "name": sensor.name]
                if kind.isGeneric { labels["type"] = sensor.type }
                if sensor.hasReading_p {
                    valueFamilies[kind.valueMetric, default: []].append((labels, sensor.reading))
                }
                stateFamilies[kind.stateMetric, default: []].append((labels, stateValue(sensor.state)))
            }
        }
        for name in valueFamilies.keys.sorted() {
            out.family(name, "Sensor reading from IPMI.", "gauge")
            for sample in valueFamilies[name]! { out.sample(name, sample.labels, sample.value) }
        }
        for name in stateFamilies.keys.sorted() {
            out.family(name, "Sensor state (0=nominal, 1=warning, 2=critical, NaN=unknown).", "gauge")
            for sample in stateFamilies[name]! { out.sample(name, sample.labels, sample.value) }
        }

        out.family("node_filesystem_avail_bytes", "Filesystem space available to non-root users.", "gauge")
        out.family("node_filesystem_size_bytes", "Filesystem size.", "gauge")
        for node in nodes {
            for fs in node.facts.storage.filesystems {
                let labels = ["node": node.name, "mountpoint": fs.mountPoint, "device": fs.device, "fstype": fs.fsType]
                out.sample("node_filesystem_avail_bytes", labels, Double(fs.availableBytes))
                out.sample("node_filesystem_size_bytes", labels, Double(fs.sizeBytes))
            }
        }
        out.family("specola_node_vms", "Libvirt domains on the node by state.", "gauge")
        out.family("specola_node_containers", "Containers on the node by state.", "gauge")
        for node in nodes {
            for (state, count) in countBy(node.facts.vms.vms.map(\.state)) {
                out.sample("specola_node_vms", ["node": node.name, "state": state], Double(count))
            }
            for (state, count) in countBy(node.facts.containers.containers.map(\.state)) {
                out.sample("specola_node_containers", ["node": node.name, "state": state], Double(count))
            }
        }
        renderGluster(nodes: nodes, into: &out)
        return out.text
    }

    /// Bricks and heals under the names gluster-prometheus (gluster/gluster-prometheus) uses,
    /// so its Grafana dashboards work: each brick once, from the node hosting it.
    static func renderGluster(nodes: [Specola_V1_Node], into out: inout MetricsText) {
        let volumes = StorageView.volumes(nodes)
        guard !volumes.isEmpty else { return }
        out.family("gluster_volume_total_count", "Number of volumes.", "gauge")
        out.sample("gluster_volume_total_count", [:], Double(volumes.count))
        out.family("gluster_volume_started_count", "Number of started volumes.", "gauge")
        out.sample("gluster_volume_started_count", [:], Double(volumes.filter { $0.volume.status == "Started" }.count))
        out.family("gluster_brick_up", "1 when the brick process runs, 0 when not.", "gauge")
        for volume in volumes {
            for brick in volume.bricks where brick.statusKnown {
                out.sample("gluster_brick_up", [
                    "volume": volume.name, "hostname": brick.brick.host, "brick_path": brick.brick.path,
                    "peer_id": brick.brick.peerUuid, "pid": "\(brick.brick.pid)",
                ], brick.brick.online ? 1 : 0)
            }
        }
        out.family("gluster_volume_heal_count", "Entries to heal listed on the brick (self-heal pending).", "gauge")
        out.family("gluster_volume_split_brain_heal_count", "Entries in split-brain listed on the brick.", "gauge")
        for volume in volumes {
            for brick in volume.bricks {
                let labels = ["volume": volume.name, "brick_path": brick.brick.path, "host": brick.brick.host]
                if brick.brick.hasHealPending { out.sample("gluster_volume_heal_count", labels, Double(brick.brick.healPending)) }
                if brick.brick.hasSplitBrain { out.sample("gluster_volume_split_brain_heal_count", labels, Double(brick.brick.splitBrain)) }
            }
        }
        out.family("gluster_brick_capacity_bytes_total", "Total capacity of the brick's filesystem in bytes.", "gauge")
        out.family("gluster_brick_capacity_free_bytes", "Free capacity of the brick's filesystem in bytes.", "gauge")
        for volume in volumes {
            for brick in volume.bricks where brick.brick.sizeBytes > 0 {
                let labels = ["host": brick.brick.host, "brick_path": brick.brick.path, "volume": volume.name,
                              "subvolume": "\(volume.name)-replicate-\(brick.brick.replicaSet)"]
                out.sample("gluster_brick_capacity_bytes_total", labels, Double(brick.brick.sizeBytes))
                out.sample("gluster_brick_capacity_free_bytes", labels, Double(brick.brick.freeBytes))
            }
        }
    }

    public static func renderRaft(isLeader: Bool, term: UInt64, commit: UInt64, applied: UInt64) -> String {
        var out = MetricsText()
        out.family("specola_raft_leader", "1 when this replica is the Raft leader.", "gauge")
        out.sample("specola_raft_leader", [:], isLeader ? 1 : 0)
        out.family("specola_raft_term", "Current Raft term.", "gauge")
        out.sample("specola_raft_term", [:], Double(term))
        out.family("specola_raft_commit_index", "Highest log index known committed.", "gauge")
        out.sample("specola_raft_commit_index", [:], Double(commit))
        out.family("specola_raft_applied_index", "Highest log index applied to the state machine.", "gauge")
        out.sample("specola_raft_applied_index", [:], Double(applied))
        return out.text
    }

    /// One certificate this replica uses, for the expiry gauge.
    public struct CertificateExpiry: Sendable {
        /// "ca" or "leaf".
        public var kind: String
        public var path: String
        public var subject: String
        public var notValidAfterUnixSeconds: Double
    }

    /// `specola_certificate_expiry_seconds`: seconds left (negative once expired) for the replica's own
    /// certificate and each CA in its CA file, read on every scrape so a reload shows at once.
    public static func renderCertificates(_ certificates: [CertificateExpiry], nowUnixSeconds: Double) -> String {
        var out = MetricsText()
        out.family("specola_certificate_expiry_seconds", "Seconds until the certificate expires (negative: expired).", "gauge")
        for certificate in certificates {
            out.sample("specola_certificate_expiry_seconds",
                       ["kind": certificate.kind, "path": certificate.path, "subject": certificate.subject],
                       (certificate.notValidAfterUnixSeconds - nowUnixSeconds).rounded(.down))
        }
        return out.text
    }

    static func stateValue(_ state: Specola_V1_SensorState) -> Double {
        switch state {
        case .nominal: return 0
        case .warning: return 1
        case .critical: return 2
        default: return .nan
        }
    }

    static func countBy(_ values: [String]) -> [(String, Int)] {
        Dictionary(grouping: values, by: { $0 }).map { ($0.key, $0.value.count) }.sorted { $0.0 < $1.0 }
    }
}

/// Maps an IPMI sensor type to ipmi_exporter's metric names.
struct SensorKind {
    let valueMetric: String
    let stateMetric: String
    let isGeneric: Bool

    init(type: String) {
        switch type.lowercased() {
        case "temperature": (valueMetric, stateMetric, isGeneric) = ("ipmi_temperature_celsius", "ipmi_temperature_state", false)
        case "fan": (valueMetric, stateMetric, isGeneric) = ("ipmi_fan_speed_rpm", "ipmi_fan_speed_state", false)
        case "voltage": (valueMetric, stateMetric, isGeneric) = ("ipmi_voltage_volts", "ipmi_voltage_state", false)
        case "current": (valueMetric, stateMetric, isGeneric) = ("ipmi_current_amperes", "ipmi_current_state", false)
        case "power supply", "power": (valueMetric, stateMetric, isGeneric) = ("ipmi_power_watts", "ipmi_power_state", false)
        default: (valueMetric, stateMetric, isGeneric) = ("ipmi_sensor_value", "ipmi_sensor_state", true)
        }
    }
}

/// Accumulates Prometheus exposition text.
struct MetricsText {
    var text = ""

    mutating func family(_ name: String, _ help: String, _ type: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
        let rendered = labels.keys.sorted().map { "\($0)=\"\(escape(labels[$0]!))\"" }.joined(separator: ",")
        let number = value.isNaN ? "NaN" : (value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))
        text += labels.isEmpty ? "\(name) \(number)\n" : "\(name){\(rendered)} \(number)\n"
    }

    func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
