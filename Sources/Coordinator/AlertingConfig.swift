import SpecolaClusterCore
import Foundation
import SpecolaAlertDelivery
import SpecolaAlerting
import SpecolaProtocol
import SpecolaDaemon

/// The `alerting:` section of the coordinator config: where notifications go, how they are
/// grouped and paced, what mutes what, and the threshold rules added to the built-in ones.
/// `packaging/coordinator.yaml` documents every field. Durations are in seconds.
public struct AlertingConfig: Decodable, Sendable {
    /// One configured receiver.
    public enum ReceiverConfig: Sendable {
        case webhook(WebhookReceiverConfig)
        case email(EmailReceiverConfig)

        public var name: String {
            switch self {
            case .webhook(let config): return config.name
            case .email(let config): return config.name
            }
        }

        func make() throws(DeliveryError) -> any Receiver {
            switch self {
            case .webhook(let config): return try WebhookReceiver(config)
            case .email(let config): return try EmailReceiver(config)
            }
        }
    }

    public var receivers: [ReceiverConfig] = []
    public var routing = AlertRouting(routes: [])
    public var thresholdRules: [ThresholdRule] = []
    public var rules = BuiltinRuleSettings()

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case receivers, routes, inhibitRules, thresholdRules, agentLostAfter, eventResolveAfter, externalURL
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let externalURL = try c.decodeIfPresent(String.self, forKey: .externalURL) ?? ""
        receivers = try (c.decodeIfPresent([ReceiverEntry].self, forKey: .receivers) ?? []).map { entry in
            entry.withExternalURL(externalURL)
        }
        let names = receivers.map(\.name)
        if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw DecodingError.dataCorruptedError(forKey: .receivers, in: c, debugDescription: "receiver name '\(duplicate)' is used twice")
        }
        let routes = try (c.decodeIfPresent([RouteEntry].self, forKey: .routes) ?? []).flatMap(\.routes)
        let inhibitRules = try c.decodeIfPresent([InhibitEntry].self, forKey: .inhibitRules)?.map(\.rule)
        routing = AlertRouting(routes: routes, inhibitRules: inhibitRules ?? [.nodeDownMutesItsAlerts])
        do {
            try routing.validate(receiverNames: Set(names))
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .routes, in: c, debugDescription: error.message)
        }
        thresholdRules = try c.decodeIfPresent([ThresholdEntry].self, forKey: .thresholdRules)?.map(\.rule) ?? []
        if let duplicate = thresholdRules.map(\.name).first(where: { name in thresholdRules.filter { $0.name == name }.count > 1 }) {
            throw DecodingError.dataCorruptedError(
                forKey: .thresholdRules, in: c, debugDescription: "threshold rule name '\(duplicate)' is used twice")
        }
        if c.contains(.agentLostAfter) {
            rules.agentLostAfterMs = Int64(try c.decodePositiveSeconds(.agentLostAfter, default: 0) * 1000)
        }
        rules.eventResolveAfterMs = Int64(try c.decodePositiveSeconds(.eventResolveAfter, default: 3600) * 1000)
    }

    /// The live receivers; the config was checked when it was loaded, so this fails only if a file vanished since.
    public func makeReceivers() throws -> [any Receiver] {
        try receivers.map { try $0.make() }
    }
}

/// One entry of `receivers`: a name and exactly one of `webhook` or `email`.
private struct ReceiverEntry: Decodable {
    var config: AlertingConfig.ReceiverConfig

    enum CodingKeys: String, CodingKey, CaseIterable { case name, webhook, email }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        guard !name.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: "must not be empty") }
        switch (c.contains(.webhook), c.contains(.email)) {
        case (true, false):
            let webhook = try c.decode(WebhookEntry.self, forKey: .webhook)
            config = .webhook(WebhookReceiverConfig(
                name: name, url: webhook.url, format: webhook.format,
                identity: .init(username: webhook.username, iconURL: webhook.iconURL, channel: webhook.channel),
                timeoutMs: webhook.timeoutMs, caFile: webhook.caFile))
        case (false, true):
            let email = try c.decode(EmailEntry.self, forKey: .email)
            config = .email(EmailReceiverConfig(name: name, from: email.from, to: email.to, smtp: email.smtp))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .name, in: c, debugDescription: "receiver '\(name)' needs exactly one of 'webhook' or 'email'")
        }
        do {
            _ = try config.make()
        } catch {
            throw DecodingError.dataCorruptedError(forKey: c.contains(.webhook) ? .webhook : .email, in: c, debugDescription: error.message)
        }
    }

    func withExternalURL(_ url: String) -> AlertingConfig.ReceiverConfig {
        switch config {
        case .webhook(var webhook):
            webhook.externalURL = url
            return .webhook(webhook)
        case .email(var email):
            email.externalURL = url
            return .email(email)
        }
    }
}

private struct WebhookEntry: Decodable {
    var url: String
    var format: WebhookFormat
    var username: String?
    var iconURL: String?
    var channel: String?
    var caFile: String?
    var timeoutMs: Int64

    enum CodingKeys: String, CodingKey, CaseIterable { case url, format, username, iconURL, channel, caFile, timeout }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        let formatName = try c.decodeIfPresent(String.self, forKey: .format) ?? "slack"
        guard let format = WebhookFormat(rawValue: formatName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .format, in: c, debugDescription: "'\(formatName)' is not a format; use slack, mattermost or alertmanager")
        }
        self.format = format
        username = try c.decodeIfPresent(String.self, forKey: .username)
        iconURL = try c.decodeIfPresent(String.self, forKey: .iconURL)
        channel = try c.decodeIfPresent(String.self, forKey: .channel)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        timeoutMs = Int64(try c.decodePositiveSeconds(.timeout, default: 5) * 1000)
    }
}

private struct EmailEntry: Decodable {
    var from: String
    var to: [String]
    var smtp: SMTPServerConfig

    enum CodingKeys: String, CodingKey, CaseIterable { case from, to, smtp }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        from = try c.decode(String.self, forKey: .from)
        to = try c.decode([String].self, forKey: .to)
        smtp = try c.decode(SMTPEntry.self, forKey: .smtp).server
    }
}

/// `smtp:` of an e-mail receiver. The password is read from `passwordFile` (one line; a
/// trailing newline is dropped) when the config loads; it is never logged.
private struct SMTPEntry: Decodable {
    var server: SMTPServerConfig

    enum CodingKeys: String, CodingKey, CaseIterable { case host, port, starttls, caFile, username, passwordFile, localName, timeout }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let host = try c.decode(String.self, forKey: .host)
        let port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 587
        guard (1...65535).contains(port) else {
            throw DecodingError.dataCorruptedError(forKey: .port, in: c, debugDescription: "must be 1 to 65535")
        }
        let mode = try c.decodeIfPresent(String.self, forKey: .starttls) ?? "required"
        let (startTLS, requireTLS): (Bool, Bool)
        switch mode {
        case "required": (startTLS, requireTLS) = (true, true)
        case "optional": (startTLS, requireTLS) = (true, false)
        case "off": (startTLS, requireTLS) = (false, false)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .starttls, in: c, debugDescription: "'\(mode)' is not a STARTTLS mode; use required, optional or off")
        }
        let username = try c.decodeIfPresent(String.self, forKey: .username)
        var password: SMTPPassword?
        if let file = try c.decodeIfPresent(String.self, forKey: .passwordFile) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .passwordFile, in: c, debugDescription: "cannot read '\(file)'; check the path and that user specola may read it")
            }
            password = SMTPPassword(String(text.trimmingSuffix(while: { $0 == "\n" || $0 == "\r" })))
        }
        if (username == nil) != (password == nil) {
            throw DecodingError.dataCorruptedError(
                forKey: username == nil ? .passwordFile : .username, in: c,
                debugDescription: "username and passwordFile go together: give both to log in, or neither")
        }
        if username != nil && !startTLS {
            throw DecodingError.dataCorruptedError(
                forKey: .starttls, in: c, debugDescription: "a password is only ever sent after STARTTLS; set starttls: required")
        }
        server = SMTPServerConfig(
            host: host, port: port, startTLS: startTLS, requireTLS: requireTLS,
            caFile: try c.decodeIfPresent(String.self, forKey: .caFile), username: username, password: password,
            localName: try c.decodeIfPresent(String.self, forKey: .localName) ?? "specola.localdomain",
            timeoutMs: Int64(try c.decodePositiveSeconds(.timeout, default: 10) * 1000))
    }
}

/// One entry of `routes`; a route with several receivers is one `NotificationRoute` per receiver.
private struct RouteEntry: Decodable {
    var routes: [NotificationRoute]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case receivers, match, groupBy, groupWait, groupInterval, repeatInterval, sendResolved
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let receivers = try c.decode([String].self, forKey: .receivers)
        guard !receivers.isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .receivers, in: c, debugDescription: "name at least one receiver")
        }
        let matchers = try c.decodeMatchers(.match)
        let defaults = NotificationRoute(receiver: "")
        let groupBy = try c.decodeIfPresent([String].self, forKey: .groupBy) ?? defaults.groupBy
        let groupWait = try c.decodeMilliseconds(.groupWait, default: defaults.groupWaitMs, allowZero: true)
        let groupInterval = try c.decodeMilliseconds(.groupInterval, default: defaults.groupIntervalMs, allowZero: true)
        let repeatInterval = try c.decodeMilliseconds(.repeatInterval, default: defaults.repeatIntervalMs, allowZero: false)
        let sendResolved = try c.decodeIfPresent(Bool.self, forKey: .sendResolved) ?? true
        routes = receivers.map {
            NotificationRoute(
                receiver: $0, matchers: matchers, groupBy: groupBy, groupWaitMs: groupWait, groupIntervalMs: groupInterval,
                repeatIntervalMs: repeatInterval, sendResolved: sendResolved)
        }
    }
}

private struct InhibitEntry: Decodable {
    var rule: InhibitRule

    enum CodingKeys: String, CodingKey, CaseIterable { case source, target, equal }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rule = InhibitRule(
            sourceMatchers: try c.decodeMatchers(.source), targetMatchers: try c.decodeMatchers(.target),
            equal: try c.decodeIfPresent([String].self, forKey: .equal) ?? [])
    }
}

private struct ThresholdEntry: Decodable {
    var rule: ThresholdRule

    enum CodingKeys: String, CodingKey, CaseIterable { case name, metric, op, value, `for`, severity, labels }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let metric = try c.decode(String.self, forKey: .metric)
        guard NodeMetric.all.contains(metric) else {
            throw DecodingError.dataCorruptedError(
                forKey: .metric, in: c, debugDescription: "unknown metric '\(metric)'; known: \(NodeMetric.all.joined(separator: ", "))")
        }
        let opText = try c.decode(String.self, forKey: .op)
        guard let comparison = ThresholdRule.Comparison(rawValue: opText) else {
            let known = ThresholdRule.Comparison.allCases.map(\.rawValue).joined(separator: " ")
            throw DecodingError.dataCorruptedError(forKey: .op, in: c, debugDescription: "'\(opText)' is not a comparison; use one of \(known)")
        }
        let severityText = try c.decodeIfPresent(String.self, forKey: .severity) ?? "warning"
        guard let severity = AlertSeverity(rawValue: severityText) else {
            throw DecodingError.dataCorruptedError(forKey: .severity, in: c, debugDescription: "use info, warning or critical")
        }
        rule = ThresholdRule(
            name: try c.decode(String.self, forKey: .name), metric: metric, comparison: comparison,
            value: try c.decode(Double.self, forKey: .value),
            forMs: try c.decodeMilliseconds(.for, default: 0, allowZero: true), severity: severity,
            labels: try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:])
        do {
            try rule.validate()
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: error.message)
        }
    }
}

extension KeyedDecodingContainer {
    /// Label matchers written as in the CLI: `node="n3"`, `alertname=~"Job.*"`.
    fileprivate func decodeMatchers(_ key: Key) throws -> [LabelMatcher] {
        let texts: [String] = try decodeIfPresent([String].self, forKey: key) ?? []
        var matchers: [LabelMatcher] = []
        for text in texts {
            do {
                matchers.append(try LabelMatcher(parsing: text))
            } catch {
                throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: error.message)
            }
        }
        return matchers
    }

    /// Seconds in the file, milliseconds in the model.
    fileprivate func decodeMilliseconds(_ key: Key, default value: Int64, allowZero: Bool) throws -> Int64 {
        guard let seconds = try decodeIfPresent(Double.self, forKey: key) else { return value }
        guard seconds.isFinite, allowZero ? seconds >= 0 : seconds > 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: allowZero ? "must be 0 or more seconds" : "must be a positive number of seconds")
        }
        return Int64((seconds * 1000).rounded())
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[..<end]
    }
}
