/// How urgent an alert is; receivers and routes can select on it (`severity="critical"`).
public enum AlertSeverity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case info, warning, critical

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Whether the condition behind an alert holds right now.
public enum AlertStatus: String, Sendable, Hashable, Codable {
    case firing, resolved

    /// The status that transition number `transition` entered. Transition 1 is the first
    /// firing and each later one flips the status, so odd numbers fire and even ones resolve.
    public init(transition: Int) { self = transition % 2 == 1 ? .firing : .resolved }
}

/// An operator's acknowledgement: it mutes the notifications of one firing until it expires.
public struct AlertAck: Sendable, Hashable, Codable {
    /// Who acknowledged (a user name from the CLI's identity).
    public var by: String
    public var atUnixMs: Int64
    public var untilUnixMs: Int64
    /// The firing transition it covers; firing again after a resolve needs a new ack.
    public var transition: Int

    public init(by: String, atUnixMs: Int64, untilUnixMs: Int64, transition: Int) {
        self.by = by
        self.atUnixMs = atUnixMs
        self.untilUnixMs = untilUnixMs
        self.transition = transition
    }
}

/// The last notification one receiver got about one alert, committed so that a new leader
/// does not send it again.
public struct ReceiverDelivery: Sendable, Hashable, Codable {
    /// The alert transition the receiver was told about.
    public var transition: Int
    /// When it was delivered; repeat reminders count from here.
    public var atUnixMs: Int64

    public init(transition: Int, atUnixMs: Int64) {
        self.transition = transition
        self.atUnixMs = atUnixMs
    }
}

/// One alert, identified by its rule and labels, with its whole replicated lifecycle.
public struct Alert: Sendable, Hashable, Codable, Identifiable {
    /// The fingerprint: a stable hash of the rule name and the sorted labels.
    public var id: String
    /// The rule that raised it, e.g. `NodeDown`; appears as the label `alertname`.
    public var rule: String
    /// The identifying labels, without `alertname` and `severity`.
    public var labels: Labels
    public var severity: AlertSeverity
    /// One line for chat and the e-mail subject.
    public var summary: String
    /// The detail an operator needs to act.
    public var description: String
    public var status: AlertStatus
    /// When the current (or last) firing started.
    public var startsAtUnixMs: Int64
    /// When it resolved; nil while firing.
    public var endsAtUnixMs: Int64?
    /// Counts status changes: 1 is the first firing, 2 its resolve, 3 a new firing, and so on.
    public var transition: Int
    public var ack: AlertAck?
    /// Receiver name → the last notification it got about this alert.
    public var deliveries: [String: ReceiverDelivery]

    public init(
        id: String, rule: String, labels: Labels, severity: AlertSeverity, summary: String, description: String,
        status: AlertStatus, startsAtUnixMs: Int64, endsAtUnixMs: Int64? = nil, transition: Int, ack: AlertAck? = nil,
        deliveries: [String: ReceiverDelivery]
    ) {
        self.id = id
        self.rule = rule
        self.labels = labels
        self.severity = severity
        self.summary = summary
        self.description = description
        self.status = status
        self.startsAtUnixMs = startsAtUnixMs
        self.endsAtUnixMs = endsAtUnixMs
        self.transition = transition
        self.ack = ack
        self.deliveries = deliveries
    }

    /// The fingerprint of the alert that `rule` raises with `labels`.
    public static func fingerprint(rule: String, labels: Labels) -> String {
        var hash = StableHash()
        hash.add(rule)
        for (name, value) in labels.sorted(by: { $0.key < $1.key }) where name != "alertname" {
            hash.add(name)
            hash.add(value)
        }
        return hash.hex
    }

    /// The labels that matchers, grouping and payloads see: `labels` plus `alertname` and `severity`.
    public var matchLabels: Labels {
        var all = labels
        all["alertname"] = rule
        all["severity"] = severity.rawValue
        return all
    }

    /// When the current status began: the firing's start or the resolve.
    public var changedAtUnixMs: Int64 { status == .firing ? startsAtUnixMs : (endsAtUnixMs ?? startsAtUnixMs) }

    /// True while an unexpired ack covers the current firing.
    public func isAcked(atUnixMs now: Int64) -> Bool {
        guard status == .firing, let ack, ack.transition == transition else { return false }
        return now < ack.untilUnixMs
    }

    /// The order people read alerts in: firing first, then by start time (fingerprint breaks ties).
    public static func presentedBefore(_ lhs: Alert, _ rhs: Alert) -> Bool {
        if lhs.status != rhs.status { return lhs.status == .firing }
        if lhs.startsAtUnixMs != rhs.startsAtUnixMs { return lhs.startsAtUnixMs < rhs.startsAtUnixMs }
        return lhs.id < rhs.id
    }
}
