import Foundation
import SpecolaAlerting
import SpecolaWire

/// An alert change in the replicated log: `Specola_V1_AlertChange` both ways, and the JSON that
/// builds before it wrote into `AlertCommand.legacy_change_json`.
extension Specola_V1_AlertChange {
    public init(_ change: AlertChange) {
        self = .with {
            switch change {
            case .fire(let rule, let labels, let severity, let summary, let description, let at):
                $0.fire = .with {
                    $0.rule = rule
                    $0.labels = .init(labels)
                    $0.severity = .init(severity)
                    $0.summary = summary
                    $0.description_p = description
                    $0.atUnixMs = at
                }
            case .resolve(let fingerprint, let at):
                $0.resolve = .with { $0.fingerprint = fingerprint; $0.atUnixMs = at }
            case .ack(let fingerprint, let until, let by, let at):
                $0.ack = .with { $0.fingerprint = fingerprint; $0.untilUnixMs = until; $0.by = by; $0.atUnixMs = at }
            case .addSilence(let silence):
                $0.addSilence = .init(silence)
            case .expireSilence(let id, let at):
                $0.expireSilence = .with { $0.id = id; $0.atUnixMs = at }
            case .markNotified(let fingerprint, let transition, let receiver, let at):
                $0.markNotified = .with {
                    $0.fingerprint = fingerprint; $0.transition = Int64(transition); $0.receiver = receiver; $0.atUnixMs = at
                }
            case .prune(let before):
                $0.prune.beforeUnixMs = before
            }
        }
    }
}

extension AlertChange {
    public init(wire: Specola_V1_AlertChange) throws(ReplicatedFormError) {
        switch wire.kind {
        case .fire(let fire):
            self = .fire(
                rule: fire.rule, labels: fire.labels.dictionary, severity: try AlertSeverity(wire: fire.severity),
                summary: fire.summary, description: fire.description_p, atUnixMs: fire.atUnixMs)
        case .resolve(let resolve): self = .resolve(fingerprint: resolve.fingerprint, atUnixMs: resolve.atUnixMs)
        case .ack(let ack): self = .ack(fingerprint: ack.fingerprint, untilUnixMs: ack.untilUnixMs, by: ack.by, atUnixMs: ack.atUnixMs)
        case .addSilence(let silence): self = .addSilence(try Silence(wire: silence))
        case .expireSilence(let expiry): self = .expireSilence(id: expiry.id, atUnixMs: expiry.atUnixMs)
        case .markNotified(let notified):
            self = .markNotified(
                fingerprint: notified.fingerprint, transition: Int(notified.transition), receiver: notified.receiver,
                atUnixMs: notified.atUnixMs)
        case .prune(let prune): self = .prune(beforeUnixMs: prune.beforeUnixMs)
        case nil: throw ReplicatedFormError("an alert change of a kind this build does not know; upgrade this replica")
        }
    }

    /// The JSON form of builds before `Specola_V1_AlertChange`.
    public init(legacyJSON: Data) throws {
        self = try JSONDecoder().decode(AlertChange.self, from: legacyJSON)
    }
}

extension Specola_V1_AlertCommand {
    /// The committed change, from whichever form the proposing build wrote.
    public func decodedChange() throws -> AlertChange {
        hasChange ? try AlertChange(wire: change) : try AlertChange(legacyJSON: legacyChangeJson)
    }
}

extension Specola_V1_AlertSeverity {
    init(_ severity: AlertSeverity) {
        switch severity {
        case .info: self = .info
        case .warning: self = .warning
        case .critical: self = .critical
        }
    }
}

extension AlertSeverity {
    init(wire: Specola_V1_AlertSeverity) throws(ReplicatedFormError) {
        switch wire {
        case .info: self = .info
        case .warning: self = .warning
        case .critical: self = .critical
        default: throw .unknown("alert severity", wire)
        }
    }
}
