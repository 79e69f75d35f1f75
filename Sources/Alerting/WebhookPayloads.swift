import Foundation

/// The JSON a webhook receiver is sent.
public enum WebhookFormat: String, Sendable, Hashable, Codable, CaseIterable {
    /// Slack incoming webhooks: `{"text": ...}`.
    case slack
    /// Mattermost incoming webhooks: Slack's shape plus `username` and an icon.
    case mattermost
    /// Alertmanager's webhook JSON, version 4, for tools that already consume it.
    case alertmanager
}

/// Builds webhook bodies; pure, so tests can check them without a network.
public enum WebhookPayload {
    /// What a chat message shows besides the text: the name and icon (Mattermost only) and
    /// the channel to post to instead of the webhook's default (Slack's legacy webhooks and Mattermost).
    public struct ChatIdentity: Sendable, Hashable, Codable {
        public var username: String?
        public var iconURL: String?
        public var iconEmoji: String?
        public var channel: String?

        public init(username: String? = nil, iconURL: String? = nil, iconEmoji: String? = nil, channel: String? = nil) {
            self.username = username
            self.iconURL = iconURL
            self.iconEmoji = iconEmoji
            self.channel = channel
        }
    }

    struct ChatMessage: Encodable {
        var text: String
        var username: String?
        var icon_url: String?
        var icon_emoji: String?
        var channel: String?
    }

    /// Alertmanager's `Alert` in its webhook message.
    struct AlertmanagerAlert: Encodable {
        var status: String
        var labels: Labels
        var annotations: Labels
        var startsAt: String
        var endsAt: String
        var generatorURL: String
        var fingerprint: String
    }

    /// Alertmanager's webhook message, version 4.
    struct AlertmanagerMessage: Encodable {
        var version = "4"
        var groupKey: String
        var truncatedAlerts: Int
        var status: String
        var receiver: String
        var groupLabels: Labels
        var commonLabels: Labels
        var commonAnnotations: Labels
        var externalURL: String
        var alerts: [AlertmanagerAlert]
    }

    /// Alertmanager writes Go's zero time as the end of an alert that still fires.
    static let zeroTime = "0001-01-01T00:00:00Z"

    /// The body for `format`. `maxAlerts` > 0 caps the alerts listed (Alertmanager's `max_alerts`).
    public static func body(
        for notification: AlertNotification, format: WebhookFormat, identity: ChatIdentity = ChatIdentity(),
        externalURL: String = "", maxAlerts: Int = 0
    ) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = NotificationText.render(notification, externalURL: externalURL, markdown: true)
        let data: Data
        switch format {
        case .slack:
            data = try! encoder.encode(ChatMessage(text: text, channel: identity.channel))
        case .mattermost:
            data = try! encoder.encode(
                ChatMessage(
                    text: text, username: identity.username, icon_url: identity.iconURL, icon_emoji: identity.iconEmoji,
                    channel: identity.channel))
        case .alertmanager:
            data = try! encoder.encode(alertmanager(notification, externalURL: externalURL, maxAlerts: maxAlerts))
        }
        return Array(data)
    }

    static func alertmanager(_ notification: AlertNotification, externalURL: String, maxAlerts: Int) -> AlertmanagerMessage {
        let alerts = notification.alerts.map { alert in
            var annotations: Labels = ["summary": alert.summary]
            if !alert.description.isEmpty { annotations["description"] = alert.description }
            return AlertmanagerAlert(
                status: alert.status.rawValue, labels: alert.matchLabels, annotations: annotations,
                startsAt: UTCTime.rfc3339(alert.startsAtUnixMs), endsAt: alert.endsAtUnixMs.map(UTCTime.rfc3339) ?? zeroTime,
                generatorURL: externalURL.isEmpty ? "" : "\(externalURL)/alerts/\(alert.id)",
                fingerprint: alert.id)
        }
        let kept = maxAlerts > 0 ? Array(alerts.prefix(maxAlerts)) : alerts
        return AlertmanagerMessage(
            groupKey: notification.groupKey, truncatedAlerts: alerts.count - kept.count, status: notification.status.rawValue,
            receiver: notification.receiver, groupLabels: notification.groupLabels,
            commonLabels: common(alerts.map(\.labels)), commonAnnotations: common(alerts.map(\.annotations)),
            externalURL: externalURL, alerts: kept)
    }

    /// The pairs every one of `sets` has.
    static func common(_ sets: [Labels]) -> Labels {
        guard var shared = sets.first else { return [:] }
        for set in sets.dropFirst() { shared = shared.filter { set[$0.key] == $0.value } }
        return shared
    }
}
