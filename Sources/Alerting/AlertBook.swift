/// One committed change to the alert book. Time is an argument, so every replica that
/// applies the same changes in the same order holds the same book.
public enum AlertChange: Sendable, Hashable, Codable {
    /// A rule's condition holds. A no-op while the alert already fires; after a resolve it starts a new transition.
    case fire(rule: String, labels: Labels, severity: AlertSeverity, summary: String, description: String, atUnixMs: Int64)
    /// The condition no longer holds.
    case resolve(fingerprint: String, atUnixMs: Int64)
    /// An operator acknowledged the current firing until `untilUnixMs`.
    case ack(fingerprint: String, untilUnixMs: Int64, by: String, atUnixMs: Int64)
    case addSilence(Silence)
    /// Ends a silence at `atUnixMs` (a pending one never starts).
    case expireSilence(id: String, atUnixMs: Int64)
    /// A receiver was told about transition `transition` of the alert.
    case markNotified(fingerprint: String, transition: Int, receiver: String, atUnixMs: Int64)
    /// Forgets resolved alerts that ended and silences that expired before `beforeUnixMs`.
    case prune(beforeUnixMs: Int64)

    /// Resolves the alert that `rule` raised with `labels`, for callers that know the labels rather than the fingerprint.
    public static func resolve(rule: String, labels: Labels, atUnixMs: Int64) -> AlertChange {
        .resolve(fingerprint: Alert.fingerprint(rule: rule, labels: labels), atUnixMs: atUnixMs)
    }
}

/// What applying a change did, for the proposer's answer to an operator. Replicas ignore it.
public enum AlertChangeOutcome: Sendable, Hashable {
    case applied
    /// Nothing to do, e.g. firing an alert that already fires.
    case unchanged
    /// The change could not apply; the reason names what to fix.
    case rejected(String)
}

/// The replicated part of alerting: every alert with its lifecycle and deliveries, and every silence.
/// Raft replicas hold one and feed it committed `AlertChange`s.
public struct AlertBook: Sendable, Hashable, Codable {
    /// Fingerprint → alert.
    public private(set) var alerts: [String: Alert] = [:]
    /// Silence id → silence.
    public private(set) var silences: [String: Silence] = [:]

    public init() {}

    /// A book as a snapshot holds it.
    public init(alerts: [String: Alert], silences: [String: Silence]) {
        self.alerts = alerts
        self.silences = silences
    }

    @discardableResult
    public mutating func apply(_ change: AlertChange) -> AlertChangeOutcome {
        switch change {
        case .fire(let rule, let labels, let severity, let summary, let description, let at):
            return fire(rule: rule, labels: labels, severity: severity, summary: summary, description: description, at: at)
        case .resolve(let fingerprint, let at):
            guard var alert = alerts[fingerprint] else { return .rejected("no alert \(fingerprint)") }
            guard alert.status == .firing else { return .unchanged }
            alert.status = .resolved
            alert.endsAtUnixMs = at
            alert.transition += 1
            alerts[fingerprint] = alert
            return .applied
        case .ack(let fingerprint, let until, let by, let at):
            guard var alert = alerts[fingerprint] else { return .rejected("no alert \(fingerprint); see `specola alerts`") }
            guard alert.status == .firing else { return .rejected("alert \(fingerprint) is resolved; nothing to acknowledge") }
            guard until > at else { return .rejected("an ack must end in the future") }
            alert.ack = AlertAck(by: by, atUnixMs: at, untilUnixMs: until, transition: alert.transition)
            alerts[fingerprint] = alert
            return .applied
        case .addSilence(let silence):
            do { try silence.validate() } catch { return .rejected(error.message) }
            guard silences[silence.id] == nil else { return .rejected("silence \(silence.id) exists already") }
            silences[silence.id] = silence
            return .applied
        case .expireSilence(let id, let at):
            guard var silence = silences[id] else { return .rejected("no silence \(id); see `specola silence list`") }
            guard silence.endsAtUnixMs > at else { return .unchanged }
            silence.endsAtUnixMs = at
            silence.startsAtUnixMs = min(silence.startsAtUnixMs, at)
            silences[id] = silence
            return .applied
        case .markNotified(let fingerprint, let transition, let receiver, let at):
            return markNotified(fingerprint: fingerprint, transition: transition, receiver: receiver, at: at)
        case .prune(let before):
            let count = alerts.count + silences.count
            alerts = alerts.filter { $0.value.status == .firing || ($0.value.endsAtUnixMs ?? before) >= before }
            silences = silences.filter { $0.value.endsAtUnixMs >= before }
            return alerts.count + silences.count == count ? .unchanged : .applied
        }
    }

    private mutating func fire(
        rule: String, labels: Labels, severity: AlertSeverity, summary: String, description: String, at: Int64
    ) -> AlertChangeOutcome {
        let fingerprint = Alert.fingerprint(rule: rule, labels: labels)
        if let existing = alerts[fingerprint], existing.status == .firing { return .unchanged }
        var alert =
            alerts[fingerprint]
            ?? Alert(
                id: fingerprint, rule: rule, labels: labels.filter { $0.key != "alertname" }, severity: severity,
                summary: summary, description: description, status: .resolved, startsAtUnixMs: at, transition: 0,
                deliveries: [:])
        alert.severity = severity
        alert.summary = summary
        alert.description = description
        alert.status = .firing
        alert.startsAtUnixMs = at
        alert.endsAtUnixMs = nil
        alert.transition += 1
        alert.ack = nil
        alerts[fingerprint] = alert
        return .applied
    }

    /// Records a delivery. An older transition than the one recorded is stale (a slow
    /// delivery committed after a newer one) and must not move the record back.
    private mutating func markNotified(fingerprint: String, transition: Int, receiver: String, at: Int64) -> AlertChangeOutcome {
        guard var alert = alerts[fingerprint] else { return .rejected("no alert \(fingerprint)") }
        guard transition >= 1, transition <= alert.transition else {
            return .rejected("alert \(fingerprint) has no transition \(transition)")
        }
        let recorded = alert.deliveries[receiver]
        if let recorded, recorded.transition > transition || (recorded.transition == transition && recorded.atUnixMs >= at) {
            return .unchanged
        }
        alert.deliveries[receiver] = ReceiverDelivery(transition: transition, atUnixMs: at)
        alerts[fingerprint] = alert
        return .applied
    }

    /// The alert whose fingerprint is `id` or starts with it, if exactly one does (for `specola alert ack ID`).
    public func alert(idOrPrefix id: String) -> Alert? {
        if let exact = alerts[id] { return exact }
        let candidates = alerts.values.filter { $0.id.hasPrefix(id) }
        return candidates.count == 1 && !id.isEmpty ? candidates[0] : nil
    }

    /// Alerts in a stable order: firing first, then by start time and fingerprint.
    public var sortedAlerts: [Alert] {
        alerts.values.sorted(by: Alert.presentedBefore)
    }

    /// The silences that mute `alert` at `now`.
    public func silences(muting alert: Alert, atUnixMs now: Int64) -> [Silence] {
        silences.values.filter { $0.mutes(alert, atUnixMs: now) }.sorted { $0.id < $1.id }
    }
}
