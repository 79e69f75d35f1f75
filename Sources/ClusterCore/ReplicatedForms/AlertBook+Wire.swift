import Foundation
import SpecolaAlerting
import SpecolaWire

/// The alert book in a snapshot: `Specola_V1_AlertBook` both ways (with its alerts and silences),
/// and the JSON that builds before it wrote into `ClusterSnapshot.legacy_alert_book_json`.
extension Specola_V1_AlertBook {
    public init(_ book: AlertBook) {
        self = .with {
            $0.alerts = book.alerts.values.sorted { $0.id < $1.id }.map(Specola_V1_Alert.init)
            $0.silences = book.silences.values.sorted { $0.id < $1.id }.map(Specola_V1_Silence.init)
        }
    }
}

extension AlertBook {
    public init(wire: Specola_V1_AlertBook) throws(ReplicatedFormError) {
        var alerts: [String: Alert] = [:]
        for alert in wire.alerts { alerts[alert.id] = try Alert(wire: alert) }
        var silences: [String: Silence] = [:]
        for silence in wire.silences { silences[silence.id] = try Silence(wire: silence) }
        self.init(alerts: alerts, silences: silences)
    }

    /// The JSON form of builds before `Specola_V1_AlertBook`; no data is an empty book.
    public init(legacyJSON: Data) throws {
        self = legacyJSON.isEmpty ? AlertBook() : try JSONDecoder().decode(AlertBook.self, from: legacyJSON)
    }
}

extension Specola_V1_ClusterSnapshot {
    /// The snapshot's alert book, from whichever form the writing build used.
    public func decodedAlertBook() throws -> AlertBook {
        hasAlertBook ? try AlertBook(wire: alertBook) : try AlertBook(legacyJSON: legacyAlertBookJson)
    }
}

extension Specola_V1_Alert {
    init(_ alert: Alert) {
        self = .with {
            $0.id = alert.id
            $0.rule = alert.rule
            $0.labels = .init(alert.labels)
            $0.severity = .init(alert.severity)
            $0.summary = alert.summary
            $0.description_p = alert.description
            $0.status = alert.status == .firing ? .firing : .resolved
            $0.startsAtUnixMs = alert.startsAtUnixMs
            if let ends = alert.endsAtUnixMs { $0.endsAtUnixMs = ends }
            $0.transition = Int64(alert.transition)
            if let ack = alert.ack {
                $0.ack = .with {
                    $0.by = ack.by; $0.atUnixMs = ack.atUnixMs; $0.untilUnixMs = ack.untilUnixMs; $0.transition = Int64(ack.transition)
                }
            }
            $0.deliveries = alert.deliveries.sorted { $0.key < $1.key }.map { receiver, delivery in
                .with { $0.receiver = receiver; $0.transition = Int64(delivery.transition); $0.atUnixMs = delivery.atUnixMs }
            }
        }
    }
}

extension Alert {
    init(wire: Specola_V1_Alert) throws(ReplicatedFormError) {
        let status: AlertStatus
        switch wire.status {
        case .firing: status = .firing
        case .resolved: status = .resolved
        default: throw .unknown("status of alert \(wire.id):", wire.status)
        }
        self.init(
            id: wire.id, rule: wire.rule, labels: wire.labels.dictionary, severity: try AlertSeverity(wire: wire.severity),
            summary: wire.summary, description: wire.description_p, status: status, startsAtUnixMs: wire.startsAtUnixMs,
            endsAtUnixMs: wire.hasEndsAtUnixMs ? wire.endsAtUnixMs : nil, transition: Int(wire.transition),
            ack: wire.hasAck
                ? AlertAck(by: wire.ack.by, atUnixMs: wire.ack.atUnixMs, untilUnixMs: wire.ack.untilUnixMs, transition: Int(wire.ack.transition))
                : nil,
            deliveries: Dictionary(
                wire.deliveries.map { ($0.receiver, ReceiverDelivery(transition: Int($0.transition), atUnixMs: $0.atUnixMs)) },
                uniquingKeysWith: { _, last in last }))
    }
}

extension Specola_V1_Silence {
    init(_ silence: Silence) {
        self = .with {
            $0.id = silence.id
            $0.matchers = silence.matchers.map { matcher in
                .with {
                    $0.name = matcher.name
                    $0.value = matcher.value
                    switch matcher.operation {
                    case .equal: $0.operation = .equal
                    case .notEqual: $0.operation = .notEqual
                    case .matchesRegex: $0.operation = .matchesRegex
                    case .notMatchesRegex: $0.operation = .notMatchesRegex
                    }
                }
            }
            $0.startsAtUnixMs = silence.startsAtUnixMs
            $0.endsAtUnixMs = silence.endsAtUnixMs
            $0.createdBy = silence.createdBy
            $0.comment = silence.comment
        }
    }
}

extension Silence {
    init(wire: Specola_V1_Silence) throws(ReplicatedFormError) {
        var matchers: [LabelMatcher] = []
        for matcher in wire.matchers {
            let operation: LabelMatcher.Operation
            switch matcher.operation {
            case .equal: operation = .equal
            case .notEqual: operation = .notEqual
            case .matchesRegex: operation = .matchesRegex
            case .notMatchesRegex: operation = .notMatchesRegex
            default: throw .unknown("matcher operation in silence \(wire.id):", matcher.operation)
            }
            matchers.append(LabelMatcher(matcher.name, operation, matcher.value))
        }
        self.init(
            id: wire.id, matchers: matchers, startsAtUnixMs: wire.startsAtUnixMs, endsAtUnixMs: wire.endsAtUnixMs,
            createdBy: wire.createdBy, comment: wire.comment)
    }
}
