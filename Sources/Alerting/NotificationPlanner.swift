/// What is due now, and when to look again.
public struct NotificationPlan: Sendable, Hashable {
    /// Due notifications, in group-key order.
    public var notifications: [AlertNotification]
    /// The earliest time something not yet due may become due (a group wait, group interval,
    /// repeat interval, ack or silence ending); nil when nothing waits. A committed change can
    /// make something due earlier, so plan again after each one too.
    public var nextCheckUnixMs: Int64?
}

/// Decides which notifications are due, from the committed alert book, the routing and the time.
/// Pure: the same inputs give the same plan on any leader, and a delivery whose
/// `markNotified` was committed is never planned again.
public struct NotificationPlanner: Sendable {
    public var routing: AlertRouting

    public init(routing: AlertRouting) {
        self.routing = routing
    }

    /// Alerts that share a route and group labels.
    private struct Group {
        var key: String
        var route: NotificationRoute
        var labels: Labels
        var alerts: [Alert] = []
    }

    public func plan(_ book: AlertBook, atUnixMs now: Int64) -> NotificationPlan {
        let sources = book.alerts.values.filter { $0.status == .firing }
        var groups: [String: Group] = [:]
        for alert in book.alerts.values {
            var receiversTaken: Set<String> = []
            for (index, route) in routing.routes.enumerated() where !receiversTaken.contains(route.receiver) {
                guard route.matchers.matchAll(alert.matchLabels) else { continue }
                receiversTaken.insert(route.receiver)
                let labels = route.groupLabels(of: alert)
                let key = "route\(index + 1)/\(route.receiver):\(renderLabels(labels))"
                groups[key, default: Group(key: key, route: route, labels: labels)].alerts.append(alert)
            }
        }
        var notifications: [AlertNotification] = []
        var wakeTimes: [Int64] = []
        for key in groups.keys.sorted() {
            let group = groups[key]!
            let isMuted = { (alert: Alert) in self.muteReason(for: alert, in: book, sources: sources, atUnixMs: now) != nil }
            let (notification, wake) = evaluate(group, atUnixMs: now, isMuted: isMuted)
            if let notification { notifications.append(notification) }
            wakeTimes += wake
            wakeTimes += muteEndings(group.alerts, in: book, atUnixMs: now)
        }
        return NotificationPlan(notifications: notifications, nextCheckUnixMs: wakeTimes.filter { $0 > now }.min())
    }

    /// Why `alert` is not sent now, or nil when it would be. Resolved alerts are never muted:
    /// whoever heard the firing also hears the resolve.
    public func muteReason(for alert: Alert, in book: AlertBook, atUnixMs now: Int64) -> MuteReason? {
        muteReason(for: alert, in: book, sources: book.alerts.values.filter { $0.status == .firing }, atUnixMs: now)
    }

    private func muteReason(
        for alert: Alert, in book: AlertBook, sources: [Alert], atUnixMs now: Int64
    ) -> MuteReason? {
        guard alert.status == .firing else { return nil }
        let silences = book.silences(muting: alert, atUnixMs: now)
        if !silences.isEmpty { return .silenced(silenceIDs: silences.map(\.id)) }
        let inhibitors = sources.filter { source in routing.inhibitRules.contains { $0.inhibits(alert, by: source) } }
        if !inhibitors.isEmpty { return .inhibited(byFingerprints: inhibitors.map(\.id).sorted()) }
        if alert.isAcked(atUnixMs: now), let ack = alert.ack { return .acked(by: ack.by, untilUnixMs: ack.untilUnixMs) }
        return nil
    }

    /// A group owes its receiver the transitions it has not heard (after the group wait, and
    /// no sooner than the group interval after its last notification); with none owed, a
    /// reminder of what still fires once the repeat interval has passed.
    private func evaluate(
        _ group: Group, atUnixMs now: Int64, isMuted: (Alert) -> Bool
    ) -> (AlertNotification?, wake: [Int64]) {
        let receiver = group.route.receiver
        let lastNotified = group.alerts.compactMap { $0.deliveries[receiver]?.atUnixMs }.max()
        let owed = group.alerts.filter { alert in
            let heard = alert.deliveries[receiver]
            switch alert.status {
            case .firing:
                return heard?.transition != alert.transition && !isMuted(alert)
            case .resolved:
                guard group.route.sendResolved, let heard, heard.transition < alert.transition else { return false }
                return AlertStatus(transition: heard.transition) == .firing
            }
        }
        if let earliest = owed.map(\.changedAtUnixMs).min() {
            let due = max(earliest + group.route.groupWaitMs, lastNotified.map { $0 + group.route.groupIntervalMs } ?? .min)
            guard now >= due else { return (nil, [due]) }
            return (notification(group, owed, isRepeat: false), [])
        }
        let stillFiring = group.alerts.filter {
            $0.status == .firing && $0.deliveries[receiver]?.transition == $0.transition && !isMuted($0)
        }
        guard let last = stillFiring.compactMap({ $0.deliveries[receiver]?.atUnixMs }).max() else { return (nil, []) }
        let due = last + group.route.repeatIntervalMs
        guard now >= due else { return (nil, [due]) }
        return (notification(group, stillFiring, isRepeat: true), [])
    }

    /// When a silence or ack on a firing alert of the group ends, something may become due.
    private func muteEndings(_ alerts: [Alert], in book: AlertBook, atUnixMs now: Int64) -> [Int64] {
        alerts.filter { $0.status == .firing }.flatMap { alert in
            book.silences(muting: alert, atUnixMs: now).map(\.endsAtUnixMs)
                + (alert.isAcked(atUnixMs: now) ? [alert.ack!.untilUnixMs] : [])
        }
    }

    private func notification(_ group: Group, _ alerts: [Alert], isRepeat: Bool) -> AlertNotification {
        let receiver = group.route.receiver
        // A reminder's key includes the committed time of the delivery it follows,
        // so each reminder has its own key and every leader computes the same one.
        let members = alerts.sorted { $0.id < $1.id }.map { alert in
            let base = "\(alert.id):\(alert.transition)"
            return isRepeat ? base + ":after:\(alert.deliveries[receiver]?.atUnixMs ?? 0)" : base
        }
        let ordered = alerts.sorted(by: Alert.presentedBefore)
        return AlertNotification(
            receiver: receiver, groupKey: group.key, groupLabels: group.labels, alerts: ordered,
            isRepeat: isRepeat, idempotencyKey: StableHash.wideHex([group.key, receiver] + members))
    }
}
