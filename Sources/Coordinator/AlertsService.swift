import SpecolaClusterCore
import Foundation
import GRPCCore
import Logging
import SpecolaAlertDelivery
import SpecolaAlerting
import SpecolaProtocol

/// `specola alerts`, `specola alert ack` and `specola silence add|list|expire`. Reads go
/// through a read barrier; writes are alert changes committed through Raft, so an ack or a
/// silence holds on every replica and across leader changes.
struct AlertsService: Specola_V1_Alerts.SimpleServiceProtocol {
    let replica: Replica
    let controller: AlertController
    let logger: Logger

    /// How long `specola alert ack` mutes an alert when no `--for` is given.
    static let defaultAckMs: Int64 = 2 * 3_600_000

    let access: AccessGate

    private func book() async throws -> AlertBook {
        try await serving { try await replica.readBarrier() }
        return await replica.replicatedState.alerts
    }

    private func propose(_ change: AlertChange) async throws {
        let outcome = try await serving { try await replica.propose(.alert(change, atUnixMs: WallClock.nowUnixMs())) }
        if case .rejected(let reason) = outcome {
            throw RPCError(code: .failedPrecondition, message: reason)
        }
        // A silence or an ack changes what is due; plan again now.
        controller.nudge()
    }

    func list(request: Specola_V1_ListAlertsRequest, context: ServerContext) async throws -> Specola_V1_ListAlertsResponse {
        try await access.check(context, .clusterRead, .cluster)
        let book = try await book()
        let now = WallClock.nowUnixMs()
        return .with {
            $0.alerts = book.sortedAlerts.filter { request.all || $0.status == .firing }.map { view($0, book, now: now) }
        }
    }

    func ack(request: Specola_V1_AckAlertRequest, context: ServerContext) async throws -> Specola_V1_AlertView {
        try await access.audited(context, .alertAck, Resource(kind: "alert", name: request.id), request: request) { identity in
            try await ack(request, by: identity)
        }
    }

    private func ack(_ request: Specola_V1_AckAlertRequest, by identity: Principal) async throws -> Specola_V1_AlertView {
        guard request.forMs >= 0 else { throw RPCError(code: .invalidArgument, message: "--for must be a positive duration") }
        let alert = try Self.alert(request.id, in: try await book())
        let now = WallClock.nowUnixMs()
        let until = now + (request.forMs == 0 ? Self.defaultAckMs : request.forMs)
        try await propose(.ack(fingerprint: alert.id, untilUnixMs: until, by: identity.description, atUnixMs: now))
        logger.info("alert acknowledged", metadata: [
            "alert.id": "\(alert.id)", "alert.rule": "\(alert.rule)", "requested.by": "\(identity)", "ack.until_unix_ms": "\(until)",
        ])
        let book = await replica.replicatedState.alerts
        return view(book.alerts[alert.id] ?? alert, book, now: WallClock.nowUnixMs())
    }

    func addSilence(request: Specola_V1_AddSilenceRequest, context: ServerContext) async throws -> Specola_V1_SilenceView {
        try await access.audited(context, .silenceChange, Resource(kind: "silence", name: "new"), request: request) { identity in
            try await addSilence(request, by: identity)
        }
    }

    private func addSilence(_ request: Specola_V1_AddSilenceRequest, by identity: Principal) async throws -> Specola_V1_SilenceView {
        let matchers: [LabelMatcher]
        do {
            matchers = try request.matchers.map { text throws(AlertingError) in try LabelMatcher(parsing: text) }
        } catch {
            throw RPCError(code: .invalidArgument, message: error.message)
        }
        guard request.forMs > 0 else { throw RPCError(code: .invalidArgument, message: "--for must be a positive duration, e.g. 2h") }
        let now = WallClock.nowUnixMs()
        let silence = Silence(
            id: UUID().uuidString.lowercased(), matchers: matchers, startsAtUnixMs: now, endsAtUnixMs: now + request.forMs,
            createdBy: identity.description, comment: request.comment)
        do { try silence.validate() } catch { throw RPCError(code: .invalidArgument, message: error.message) }
        try await propose(.addSilence(silence))
        logger.info("silence added", metadata: [
            "silence.id": "\(silence.id)", "silence.matchers": "\(matchers.map(\.description))", "requested.by": "\(identity)",
        ])
        return Self.view(silence, now: WallClock.nowUnixMs())
    }

    func listSilences(request: Specola_V1_ListSilencesRequest, context: ServerContext) async throws -> Specola_V1_ListSilencesResponse {
        try await access.check(context, .clusterRead, .cluster)
        let book = try await book()
        let now = WallClock.nowUnixMs()
        let silences = book.silences.values
            .filter { request.all || $0.state(atUnixMs: now) != .expired }
            .sorted { ($0.startsAtUnixMs, $0.id) < ($1.startsAtUnixMs, $1.id) }
        return .with { $0.silences = silences.map { Self.view($0, now: now) } }
    }

    func expireSilence(request: Specola_V1_ExpireSilenceRequest, context: ServerContext) async throws -> Specola_V1_SilenceView {
        try await access.audited(context, .silenceChange, Resource(kind: "silence", name: request.id), request: request) { identity in
            try await expireSilence(request, by: identity)
        }
    }

    private func expireSilence(_ request: Specola_V1_ExpireSilenceRequest, by identity: Principal) async throws -> Specola_V1_SilenceView {
        let book = try await book()
        let candidates = book.silences.values.filter { !request.id.isEmpty && $0.id.hasPrefix(request.id) }
        guard candidates.count == 1, let silence = candidates.first else {
            throw RPCError(
                code: candidates.isEmpty ? .notFound : .invalidArgument,
                message: candidates.isEmpty
                    ? "no silence '\(request.id)'; `specola silence list --all` lists them"
                    : "'\(request.id)' matches \(candidates.count) silences; give more of the id")
        }
        try await propose(.expireSilence(id: silence.id, atUnixMs: WallClock.nowUnixMs()))
        logger.info("silence expired", metadata: ["silence.id": "\(silence.id)", "requested.by": "\(identity)"])
        let now = WallClock.nowUnixMs()
        return Self.view(await replica.replicatedState.alerts.silences[silence.id] ?? silence, now: now)
    }

    // MARK: - Views

    static func alert(_ id: String, in book: AlertBook) throws -> Alert {
        if let alert = book.alert(idOrPrefix: id) { return alert }
        let matches = book.alerts.keys.filter { !id.isEmpty && $0.hasPrefix(id) }.count
        if matches > 1 {
            throw RPCError(code: .invalidArgument, message: "'\(id)' matches \(matches) alerts; give more of the id")
        }
        throw RPCError(code: .notFound, message: "no alert '\(id)'; `specola alerts --all` lists them")
    }

    private func view(_ alert: Alert, _ book: AlertBook, now: Int64) -> Specola_V1_AlertView {
        .with {
            $0.id = alert.id
            $0.rule = alert.rule
            $0.labels = alert.labels
            $0.severity = alert.severity.rawValue
            $0.summary = alert.summary
            $0.description_p = alert.description
            $0.state = alert.status.rawValue
            $0.startsAtUnixMs = alert.startsAtUnixMs
            $0.endsAtUnixMs = alert.endsAtUnixMs ?? 0
            $0.transition = UInt32(clamping: alert.transition)
            if let ack = alert.ack, alert.isAcked(atUnixMs: now) {
                $0.ackedBy = ack.by
                $0.ackedUntilUnixMs = ack.untilUnixMs
            }
            $0.notifiedAtUnixMs = alert.deliveries.mapValues(\.atUnixMs)
            switch controller.muteReason(for: alert, in: book, atUnixMs: now) {
            case .silenced(let ids)?:
                $0.muted = "silenced"
                $0.muteReason = "by silence " + ids.map { String($0.prefix(8)) }.joined(separator: ", ")
            case .inhibited(let fingerprints)?:
                $0.muted = "inhibited"
                $0.muteReason = "by " + fingerprints.map { id in
                    guard let source = book.alerts[id] else { return String(id.prefix(8)) }
                    let labels = source.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    return "\(source.rule) \(labels)"
                }.joined(separator: ", ")
            case .acked(let by, let until)?:
                $0.muted = "acked"
                $0.muteReason = "by \(by)"
                $0.ackedUntilUnixMs = until
            case nil:
                break
            }
        }
    }

    static func view(_ silence: Silence, now: Int64) -> Specola_V1_SilenceView {
        .with {
            $0.id = silence.id
            $0.matchers = silence.matchers.map(\.description)
            $0.startsAtUnixMs = silence.startsAtUnixMs
            $0.endsAtUnixMs = silence.endsAtUnixMs
            $0.createdBy = silence.createdBy
            $0.comment = silence.comment
            $0.state = silence.state(atUnixMs: now).rawValue
        }
    }
}
