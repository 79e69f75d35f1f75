import Foundation
import Logging
import TestSupport

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery

/// Builders for the pure tests: one place that knows how to fire, plan and mark.
enum Scenario {
    static let chat = "chat"
    static let mail = "mail"

    static func fire(_ book: inout AlertBook, _ alert: BuiltinAlert, at now: Int64) {
        book.apply(alert.fire(atUnixMs: now))
    }

    /// Marks every notification as delivered at `now`, as the leader does after delivery.
    static func commit(_ notifications: [AlertNotification], to book: inout AlertBook, at now: Int64) {
        for change in notifications.flatMap({ $0.markNotified(atUnixMs: now) }) { book.apply(change) }
    }

    /// A notification planned from a one-alert book, for receiver tests.
    static func notification(
        _ alert: BuiltinAlert = .nodeDown(node: "n3", reason: "no heartbeat for 12 s"), receiver: String = chat,
        firedAt: Int64 = 1_763_632_800_000
    ) -> AlertNotification {
        var book = AlertBook()
        fire(&book, alert, at: firedAt)
        let planner = NotificationPlanner(routing: AlertRouting(routes: [NotificationRoute(receiver: receiver)]))
        let notifications = planner.plan(book, atUnixMs: firedAt).notifications
        precondition(notifications.count == 1, "a fresh alert must be due at once; the planner tests say why not")
        return notifications[0]
    }

    /// Tests never bootstrap logging; set SPECOLA_TEST_LOG=1 to see the delivery logs.
    static let logger =
        ProcessInfo.processInfo.environment["SPECOLA_TEST_LOG"] == nil
        ? Logger(label: "specola.alerting.test", factory: { _ in SwiftLogNoOpLogHandler() })
        : Logger(label: "specola.alerting.test")
}
