import Foundation
import Testing

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch
import SeededRandom

/// Random alert histories with leader changes and leaders that die between delivering and
/// committing. Property: after a receiver drops repeated idempotency keys, no receiver is ever
/// told about one alert transition twice; and once nothing is muted, every firing is told.
/// CPU-bound: its seeds run one after another on a thread of their own, not on the shared pool.
@Suite(.serialized, .cpuBoundOffThePool, .watchesCooperativePool) struct AlertingSimulationTests {
    static let routing = AlertRouting(routes: [
        NotificationRoute(receiver: Scenario.chat, groupBy: ["alertname"], groupIntervalMs: 30_000, repeatIntervalMs: 600_000),
        NotificationRoute(
            receiver: Scenario.mail, matchers: [LabelMatcher("severity", .equal, "critical")], groupBy: ["node"],
            groupWaitMs: 1_000, groupIntervalMs: 10_000, repeatIntervalMs: 900_000),
    ])
    static let pool: [BuiltinAlert] = (1...3).flatMap { index -> [BuiltinAlert] in
        let node = "n\(index)"
        return [
            .nodeDown(node: node, reason: "-"), .agentLost(node: node, lastContact: "-"),
            .jobFailed(job: "j\(index)", task: "t", node: node, message: "-"),
            .workloadError(kind: "vm", name: "vm\(index)", node: node, message: "-"),
        ]
    }

    /// What the receivers saw, deduplicated by idempotency key as a receiver honouring it would.
    struct Receivers {
        var seenKeys: Set<String> = []
        var announced: Set<String> = []
        var duplicates: [String] = []

        mutating func receive(_ notification: AlertNotification) {
            guard seenKeys.insert(notification.idempotencyKey).inserted, !notification.isRepeat else { return }
            for alert in notification.alerts {
                let transition = "\(notification.receiver) \(alert.rule)\(alert.labels["node"] ?? "") t\(alert.transition)"
                if !announced.insert(transition).inserted { duplicates.append(transition) }
            }
        }
    }

    @Test(arguments: 1...40)
    func noTransitionIsAnnouncedTwiceAndNoneIsLost(seed: Int) async throws {
        var random = SeededRandom(seed: UInt64(seed))
        var book = AlertBook()
        var receivers = Receivers()
        let planner = NotificationPlanner(routing: Self.routing)
        var now: Int64 = 1_000_000
        var silenceCount = 0

        func deliverAndCommit(_ plan: NotificationPlan) {
            for notification in plan.notifications {
                receivers.receive(notification)
                for change in notification.markNotified(atUnixMs: now) { book.apply(change) }
            }
        }

        for _ in 0..<400 {
            let alert = Self.pool.randomElement(using: &random)!
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<25: book.apply(alert.fire(atUnixMs: now))
            case 25..<40: book.apply(alert.resolve(atUnixMs: now))
            case 40..<45:
                book.apply(.ack(fingerprint: alert.fingerprint, untilUnixMs: now + Int64.random(in: 1...900_000, using: &random),
                                by: "ana", atUnixMs: now))
            case 45..<49:
                silenceCount += 1
                book.apply(.addSilence(Silence(
                    id: "s\(silenceCount)", matchers: [LabelMatcher("node", .equal, alert.labels["node"]!)], startsAtUnixMs: now,
                    endsAtUnixMs: now + Int64.random(in: 1...600_000, using: &random), createdBy: "ana", comment: "")))
            case 49..<51: book.apply(.expireSilence(id: "s\(Int.random(in: 0...silenceCount, using: &random))", atUnixMs: now))
            case 51..<75: now += Int64.random(in: 0...60_000, using: &random)
            case 75..<92: deliverAndCommit(planner.plan(book, atUnixMs: now))
            default:
                // The leader delivers, dies before committing; a new leader restores the book and plans at once.
                let lost = planner.plan(book, atUnixMs: now)
                lost.notifications.forEach { receivers.receive($0) }
                book = try JSONDecoder().decode(AlertBook.self, from: JSONEncoder().encode(book))
                let replanned = planner.plan(book, atUnixMs: now)
                #expect(replanned == lost, "seed \(seed): a new leader must plan the same notifications with the same keys")
                deliverAndCommit(replanned)
            }
        }
        #expect(receivers.duplicates.isEmpty, "seed \(seed): announced twice: \(receivers.duplicates)")

        // Unmute everything, let every group interval pass, and deliver until quiet.
        for id in book.silences.keys { book.apply(.expireSilence(id: id, atUnixMs: now)) }
        now += 3_600_000
        for _ in 0..<5 { deliverAndCommit(planner.plan(book, atUnixMs: now)) }
        for alert in book.alerts.values where alert.status == .firing {
            guard planner.muteReason(for: alert, in: book, atUnixMs: now) == nil else { continue }
            for route in Self.routing.routes where route.matchers.matchAll(alert.matchLabels) {
                #expect(alert.deliveries[route.receiver]?.transition == alert.transition,
                        "seed \(seed): \(alert.rule) \(alert.labels) never reached \(route.receiver)")
            }
        }
        #expect(receivers.duplicates.isEmpty, "seed \(seed): announced twice: \(receivers.duplicates)")
    }
}
