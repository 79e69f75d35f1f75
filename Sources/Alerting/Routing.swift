/// Sends the alerts that its matchers select to one receiver, grouped and paced.
public struct NotificationRoute: Sendable, Hashable, Codable {
    /// `groupBy` value that puts every alert in a group of its own.
    public static let everyLabel = "..."

    /// The receiver's configured name.
    public var receiver: String
    /// Every matcher must match; none means every alert.
    public var matchers: [LabelMatcher]
    /// Alerts with equal values of these labels share one notification.
    public var groupBy: [String]
    /// How long a new group waits for more alerts before its first notification. 0: at once.
    public var groupWaitMs: Int64
    /// The least time between two notifications of one group about new changes.
    public var groupIntervalMs: Int64
    /// How often a still-firing, unacknowledged alert is sent again as a reminder.
    public var repeatIntervalMs: Int64
    /// Whether receivers that heard an alert fire also hear it resolve.
    public var sendResolved: Bool

    public init(
        receiver: String, matchers: [LabelMatcher] = [], groupBy: [String] = ["alertname"], groupWaitMs: Int64 = 0,
        groupIntervalMs: Int64 = 30_000, repeatIntervalMs: Int64 = 4 * 3_600_000, sendResolved: Bool = true
    ) {
        self.receiver = receiver
        self.matchers = matchers
        self.groupBy = groupBy
        self.groupWaitMs = groupWaitMs
        self.groupIntervalMs = groupIntervalMs
        self.repeatIntervalMs = repeatIntervalMs
        self.sendResolved = sendResolved
    }

    /// Decodes a config entry; absent fields take the defaults of `init`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = NotificationRoute(receiver: "")
        receiver = try container.decode(String.self, forKey: .receiver)
        matchers = try container.decodeIfPresent([LabelMatcher].self, forKey: .matchers) ?? defaults.matchers
        groupBy = try container.decodeIfPresent([String].self, forKey: .groupBy) ?? defaults.groupBy
        groupWaitMs = try container.decodeIfPresent(Int64.self, forKey: .groupWaitMs) ?? defaults.groupWaitMs
        groupIntervalMs = try container.decodeIfPresent(Int64.self, forKey: .groupIntervalMs) ?? defaults.groupIntervalMs
        repeatIntervalMs = try container.decodeIfPresent(Int64.self, forKey: .repeatIntervalMs) ?? defaults.repeatIntervalMs
        sendResolved = try container.decodeIfPresent(Bool.self, forKey: .sendResolved) ?? defaults.sendResolved
    }

    /// The labels of `alert` that name its group.
    func groupLabels(of alert: Alert) -> Labels {
        let all = alert.matchLabels
        if groupBy.contains(Self.everyLabel) { return all }
        return all.filter { groupBy.contains($0.key) }
    }
}

/// Alertmanager's inhibition: while a source alert fires, target alerts that agree with it
/// on every `equal` label are not sent. A down node thus mutes the alerts about its own workloads.
public struct InhibitRule: Sendable, Hashable, Codable {
    public var sourceMatchers: [LabelMatcher]
    public var targetMatchers: [LabelMatcher]
    /// Labels whose values must be the same on source and target (absent counts as empty).
    public var equal: [String]

    public init(sourceMatchers: [LabelMatcher], targetMatchers: [LabelMatcher], equal: [String]) {
        self.sourceMatchers = sourceMatchers
        self.targetMatchers = targetMatchers
        self.equal = equal
    }

    /// A down node mutes every other alert about the same node (its bricks included), except that
    /// fencing is stuck or held for storage, which an operator must still hear about.
    public static let nodeDownMutesItsAlerts = InhibitRule(
        sourceMatchers: [LabelMatcher("alertname", .equal, BuiltinRule.nodeDown)],
        targetMatchers: [
            LabelMatcher(
                "alertname", .notMatchesRegex,
                "\(BuiltinRule.nodeDown)|\(BuiltinRule.fencingStuck)|\(BuiltinRule.fencingHeldForStorage)"),
            LabelMatcher("node", .notEqual, ""),
        ],
        equal: ["node"])

    /// True when `source` (firing) mutes `target` under this rule; an alert never mutes itself.
    func inhibits(_ target: Alert, by source: Alert) -> Bool {
        guard source.id != target.id, source.status == .firing else { return false }
        let sourceLabels = source.matchLabels
        let targetLabels = target.matchLabels
        return sourceMatchers.matchAll(sourceLabels) && targetMatchers.matchAll(targetLabels)
            && equal.allSatisfy { (sourceLabels[$0] ?? "") == (targetLabels[$0] ?? "") }
    }
}

/// Where alerts go and what mutes them: the routes and the inhibition rules.
public struct AlertRouting: Sendable, Hashable, Codable {
    /// For each receiver, an alert takes the first route to it that matches, so it is never sent twice to one receiver.
    public var routes: [NotificationRoute]
    public var inhibitRules: [InhibitRule]

    public init(routes: [NotificationRoute], inhibitRules: [InhibitRule] = [.nodeDownMutesItsAlerts]) {
        self.routes = routes
        self.inhibitRules = inhibitRules
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        routes = try container.decode([NotificationRoute].self, forKey: .routes)
        inhibitRules = try container.decodeIfPresent([InhibitRule].self, forKey: .inhibitRules) ?? [.nodeDownMutesItsAlerts]
    }

    /// Checks the config against the receivers that exist, with messages that name the route to fix.
    public func validate(receiverNames: Set<String>) throws(AlertingError) {
        for (index, route) in routes.enumerated() {
            let place = "alerting route \(index + 1) (receiver '\(route.receiver)')"
            guard receiverNames.contains(route.receiver) else {
                let known = receiverNames.sorted().joined(separator: ", ")
                throw AlertingError(.invalidConfig, "\(place): no such receiver; configured receivers: \(known)")
            }
            guard route.groupWaitMs >= 0, route.groupIntervalMs >= 0 else {
                throw AlertingError(.invalidConfig, "\(place): groupWaitMs and groupIntervalMs must not be negative")
            }
            guard route.repeatIntervalMs > 0 else {
                throw AlertingError(.invalidConfig, "\(place): repeatIntervalMs must be positive")
            }
            for matcher in route.matchers { try matcher.validate() }
        }
        for rule in inhibitRules {
            for matcher in rule.sourceMatchers + rule.targetMatchers { try matcher.validate() }
        }
    }
}
