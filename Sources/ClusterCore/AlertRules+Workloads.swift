import SpecolaAlerting
import SpecolaWire

extension AlertRuleEvaluator {
    /// WorkloadError: fires while an HA VM or pod is in `error` (its restart and relocation
    /// limits are spent), labelled with the node it last ran on so a down node inhibits it;
    /// resolves once it is enabled again or deleted.
    public func workloadErrors(_ workloads: WorkloadBook, _ book: AlertBook, now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        var inError: Set<String> = []
        for workload in workloads.workloads.values.sorted(by: { $0.name < $1.name }) where workload.phase == WorkloadPhase.error.rawValue {
            let alert = BuiltinAlert.workloadError(kind: workload.kind, name: workload.name, node: workload.node, message: workload.message)
            inError.insert(alert.fingerprint)
            if book.alerts[alert.fingerprint]?.status != .firing { changes.append(alert.fire(atUnixMs: now)) }
        }
        for alert in book.alerts.values.sorted(by: { $0.id < $1.id })
        where alert.rule == BuiltinRule.workloadError && alert.status == .firing && !inError.contains(alert.id) {
            changes.append(.resolve(fingerprint: alert.id, atUnixMs: now))
        }
        return changes
    }
}
