/// One message due to one receiver about one group of alerts.
public struct AlertNotification: Sendable, Hashable, Codable {
    /// The configured receiver name.
    public var receiver: String
    /// Names the route and group, e.g. `route1/chat:{alertname="NodeDown"}`.
    public var groupKey: String
    /// The labels all alerts of the group share by the route's `groupBy`.
    public var groupLabels: Labels
    /// Snapshots, taken when planned, of the alerts whose transition this notification announces
    /// (or, for a reminder, that still fire).
    public var alerts: [Alert]
    /// A reminder of alerts already announced (the route's repeat interval), not a new transition.
    public var isRepeat: Bool
    /// The same for the same group, alerts, transitions and receiver, whichever leader plans it;
    /// receivers use it to drop a duplicate sent across a leader change.
    public var idempotencyKey: String

    /// Firing when any alert in it fires, as in Alertmanager.
    public var status: AlertStatus { alerts.contains { $0.status == .firing } ? .firing : .resolved }

    /// The changes to commit once the receiver has accepted this notification.
    public func markNotified(atUnixMs now: Int64) -> [AlertChange] {
        alerts.map { .markNotified(fingerprint: $0.id, transition: $0.transition, receiver: receiver, atUnixMs: now) }
    }

    /// `[FIRING:2] NodeDown node=n3`: the line for a chat message or an e-mail subject.
    public var title: String {
        let firing = alerts.filter { $0.status == .firing }.count
        let count = status == .firing ? firing : alerts.count
        let labels = groupLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let rules = Set(alerts.map(\.rule)).sorted().joined(separator: ",")
        let subject = labels.isEmpty ? rules : labels.joined(separator: " ")
        return "[\(status.rawValue.uppercased()):\(count)]\(isRepeat ? " (reminder)" : "") \(subject)"
    }
}

/// Why an alert is not being sent right now.
public enum MuteReason: Sendable, Hashable {
    /// Active silences that match it.
    case silenced(silenceIDs: [String])
    /// Firing alerts that inhibit it.
    case inhibited(byFingerprints: [String])
    case acked(by: String, untilUnixMs: Int64)
}
