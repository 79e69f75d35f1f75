import Foundation
import Logging
import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaProtocol
import Synchronization
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// A receiver that records what it was sent; `held` makes sends wait until released.
final class RecordingReceiver: Receiver {
    let name: String
    let sent = Mutex<[String]>([])
    let held = Mutex(false)

    init(_ name: String, held: Bool = false) {
        self.name = name
        self.held.withLock { $0 = held }
    }

    func send(_ notification: AlertNotification) async throws {
        sent.withLock { $0.append(notification.idempotencyKey) }
        while held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
    }

    var count: Int { sent.withLock { $0.count } }
}

/// The alert loop's shell on an in-memory log: what it commits, what it sends,
/// and that it never sends a notification again while the first send is still settling.
@Suite(.watchesCooperativePool) struct AlertControllerTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func withLeader(_ body: (InMemoryClusterLog) async throws -> Void) async throws {
        try await body(InMemoryClusterLog())
    }

    func controller(_ replica: InMemoryClusterLog, _ receivers: [RecordingReceiver]) -> AlertController {
        var settings = AlertController.Settings()
        settings.routing = AlertRouting(routes: receivers.map { NotificationRoute(receiver: $0.name, groupBy: ["alertname", "node"], groupIntervalMs: 0) })
        return AlertController(replica: replica, receivers: receivers, settings: settings, logger: Self.logger)
    }

    func deliveries(_ replica: InMemoryClusterLog, _ alert: BuiltinAlert) async -> [String: ReceiverDelivery] {
        await replica.replicatedState.alerts.alerts[alert.fingerprint]?.deliveries ?? [:]
    }

    @Test func aRaisedAlertIsCommittedSentOnceToEachReceiverAndMarkedNotified() async throws {
        try await withLeader { replica in
            let chat = RecordingReceiver("chat")
            let mail = RecordingReceiver("mail")
            let alerts = controller(replica, [chat, mail])
            let stuck = BuiltinAlert.fencingStuck(node: "n1", reason: "the BMC does not answer")
            alerts.raise(stuck.fire(atUnixMs: WallClock.nowUnixMs()))
            await alerts.pass()
            #expect(await replica.replicatedState.alerts.alerts[stuck.fingerprint]?.status == .firing)
            try await waitUntil("both deliveries to be committed") { await deliveries(replica, stuck).count == 2 }
            for _ in 0..<5 { await alerts.pass() }
            #expect(chat.count == 1 && mail.count == 1, "a committed delivery is never planned again")

            // Raising what already fires writes nothing; resolving is one more message each.
            let applied = await replica.proposals.count
            alerts.raise(stuck.fire(atUnixMs: WallClock.nowUnixMs()))
            await alerts.pass()
            #expect(await replica.proposals.count == applied, "a redundant raise reached the log")
            alerts.raise(stuck.resolve(atUnixMs: WallClock.nowUnixMs()))
            await alerts.pass()
            try await waitUntil("the resolve to reach both") { chat.count == 2 && mail.count == 2 }
            try await waitUntil("the resolve's delivery to be committed") {
                await deliveries(replica, stuck).values.allSatisfy { $0.transition == 2 }
            }
        }
    }

    @Test func aSlowReceiverNeitherHoldsUpTheOtherNorGetsTheSameNotificationTwice() async throws {
        try await withLeader { replica in
            let chat = RecordingReceiver("chat")
            let mail = RecordingReceiver("mail", held: true)
            let alerts = controller(replica, [chat, mail])
            let down = BuiltinAlert.fencingStuck(node: "n2", reason: "test")
            alerts.raise(down.fire(atUnixMs: WallClock.nowUnixMs()))
            await alerts.pass()
            try await waitUntil("chat to be told while mail hangs") { chat.count == 1 && mail.count == 1 }
            try await waitUntil("chat's delivery to be committed while mail hangs") { await deliveries(replica, down)["chat"] != nil }
            #expect(await deliveries(replica, down)["mail"] == nil)
            for _ in 0..<5 { await alerts.pass() }
            #expect(mail.count == 1, "a notification still on its way was sent again")
            mail.held.withLock { $0 = false }
            try await waitUntil("mail's delivery to be committed") { await deliveries(replica, down)["mail"] != nil }
            for _ in 0..<3 { await alerts.pass() }
            let recorded = await deliveries(replica, down)
            #expect(chat.count == 1 && mail.count == 1, "chat \(chat.sent.withLock { $0 }) mail \(mail.sent.withLock { $0 }) \(recorded)")
        }
    }
}
