import Foundation
import SpecolaWire

/// The coordinator's own limits on what an agent reports. An agent bounds its output too,
/// but the leader commits what it receives, so it cuts every list and text again and says
/// what it cut; only a report still too large afterwards is refused.
public enum ReportBounds {
    /// Per stream, as the agent keeps it (64 KiB) plus the cut marker.
    public static let maxTailBytes = 64 * 1024 + 3
    public static let maxMessageBytes = 4 * 1024
    public static let maxOutputs = 64
    public static let maxOutputKeyBytes = 128
    public static let maxOutputValueBytes = 64 * 1024
    public static let maxEvents = 1_000
    public static let maxListEntries = 4_096
    public static let maxLabels = 64
    public static let maxSerializedBytes = 4 << 20

    /// Cuts `report` to the bounds; returns one line per cut (empty when it was within them).
    public static func clamp(_ report: inout Specola_V1_Report) -> [String] {
        var cuts: [String] = []
        func list<T>(_ items: inout [T], _ limit: Int, _ what: String) {
            guard items.count > limit else { return }
            cuts.append("\(what): \(items.count) entries, kept \(limit)")
            items = Array(items.prefix(limit))
        }
        list(&report.taskEvents, maxEvents, "task events")
        list(&report.workloadEvents, maxEvents, "workload events")
        for index in report.taskEvents.indices {
            let id = report.taskEvents[index].allocationID
            var event = report.taskEvents[index]
            event.allocationID = text(event.allocationID, maxMessageBytes, keepEnd: false, "allocation id", &cuts)
            event.stdoutTail = text(event.stdoutTail, maxTailBytes, keepEnd: true, "stdout of \(id)", &cuts)
            event.stderrTail = text(event.stderrTail, maxTailBytes, keepEnd: true, "stderr of \(id)", &cuts)
            event.message = text(event.message, maxMessageBytes, keepEnd: false, "message of \(id)", &cuts)
            if event.outputs.count > maxOutputs {
                cuts.append("outputs of \(id): \(event.outputs.count), kept the first \(maxOutputs) by key")
                event.outputs = Dictionary(uniqueKeysWithValues: event.outputs.sorted { $0.key < $1.key }.prefix(maxOutputs).map { ($0.key, $0.value) })
            }
            for (key, value) in event.outputs {
                if key.utf8.count > maxOutputKeyBytes {
                    cuts.append("output key of \(id) longer than \(maxOutputKeyBytes) bytes: dropped")
                    event.outputs.removeValue(forKey: key)
                } else if value.utf8.count > maxOutputValueBytes {
                    cuts.append("output \(key) of \(id): \(value.utf8.count) bytes, dropped (at most \(maxOutputValueBytes))")
                    event.outputs.removeValue(forKey: key)
                }
            }
            report.taskEvents[index] = event
        }
        for index in report.workloadEvents.indices {
            report.workloadEvents[index].message = text(report.workloadEvents[index].message, maxMessageBytes, keepEnd: false,
                                                        "message of workload \(report.workloadEvents[index].name)", &cuts)
        }
        if report.hasFacts {
            var facts = report.facts
            if facts.capacity.labels.count > maxLabels {
                cuts.append("labels: \(facts.capacity.labels.count), kept the first \(maxLabels) by key")
                facts.capacity.labels = Dictionary(uniqueKeysWithValues: facts.capacity.labels.sorted { $0.key < $1.key }.prefix(maxLabels).map { ($0.key, $0.value) })
            }
            list(&facts.bmc.sensors, maxListEntries, "sensors")
            list(&facts.sel.entries, maxListEntries, "SEL entries")
            list(&facts.storage.disks, maxListEntries, "disks")
            list(&facts.storage.filesystems, maxListEntries, "filesystems")
            list(&facts.vms.vms, maxListEntries, "VMs")
            list(&facts.containers.containers, maxListEntries, "containers")
            list(&facts.containers.pods, maxListEntries, "pods")
            list(&facts.collectors.collectors, maxListEntries, "collectors")
            if !cuts.isEmpty { report.facts = facts }
        }
        return cuts
    }

    /// Nil when the (clamped) report fits, else why it is refused.
    public static func refusal(_ report: Specola_V1_Report) -> String? {
        let size = (try? report.serializedBytes() as [UInt8])?.count ?? Int.max
        guard size > maxSerializedBytes else { return nil }
        return "report \(report.seq) is \(size) bytes after the coordinator's cuts; at most \(maxSerializedBytes) are committed"
    }

    private static func text(_ value: String, _ limit: Int, keepEnd: Bool, _ what: String, _ cuts: inout [String]) -> String {
        let bytes = Array(value.utf8)
        guard bytes.count > limit else { return value }
        cuts.append("\(what): \(bytes.count) bytes, kept \(limit)")
        return String(decoding: keepEnd ? bytes.suffix(limit) : bytes.prefix(limit), as: UTF8.self)
    }
}
