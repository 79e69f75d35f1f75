/// The human-readable form of a notification, shared by chat messages and e-mail bodies.
public enum NotificationText {
    /// One block per alert under the title; `markdown` bolds for Slack and Mattermost.
    public static func render(_ notification: AlertNotification, externalURL: String, markdown: Bool) -> String {
        var lines = [markdown ? "*\(notification.title)*" : notification.title]
        if !markdown { lines.append("") }
        for alert in notification.alerts {
            let state = alert.status == .firing ? alert.severity.rawValue.uppercased() : "RESOLVED"
            lines.append("\(markdown ? "• " : "")[\(state)] \(alert.rule): \(alert.summary)")
            if !alert.description.isEmpty { lines.append("    \(alert.description)") }
            let labels = alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            var facts = ["since \(UTCTime.rfc3339(alert.startsAtUnixMs))"]
            if let ended = alert.endsAtUnixMs { facts.append("resolved \(UTCTime.rfc3339(ended))") }
            if !labels.isEmpty { facts.append(labels) }
            facts.append("id \(alert.id)")
            lines.append("    " + facts.joined(separator: " · "))
        }
        let firing = notification.alerts.filter { $0.status == .firing }
        if let first = firing.first {
            lines.append(markdown ? "" : "\n")
            lines.append("Acknowledge: specola alert ack \(first.id)")
        }
        if !externalURL.isEmpty { lines.append("Cluster: \(externalURL)") }
        return lines.joined(separator: "\n")
    }
}
