import SpecolaClusterCore
import Foundation
import Logging
import SpecolaAlertDelivery
import SpecolaAlerting
import SpecolaProtocol
import Synchronization

/// The leader's alert loop. Level-triggered: each pass evaluates the rules over a copy of the
/// state, commits the fire and resolve changes through Raft, plans the notifications that the
/// committed book owes with the pure `NotificationPlanner`, and hands them to the dispatcher in
/// a task of their own; a delivered notification's `markNotified` is committed so that no
/// leader sends it again. Passes run on a timer and whenever something nudges the loop, and a
/// pass that commits a transition plans at once, so a webhook leaves within milliseconds of it.
final class AlertController: Sendable {
    struct Settings: Sendable {
        /// Longest time between two passes when nothing nudges.
        var interval: Duration = .milliseconds(250)
        var rules = BuiltinRuleSettings()
        var thresholdRules: [ThresholdRule] = []
        var routing = AlertRouting(routes: [])
        /// Resolved alerts and expired silences are forgotten this long after they ended.
        var keepResolvedMs: Int64 = 7 * 86_400_000
        /// How often to propose the prune.
        var pruneEveryMs: Int64 = 3_600_000
    }

    let replica: any ClusterLog
    let settings: Settings
    private let planner: NotificationPlanner
    private let dispatcher: AlertDispatcher
    private let logger: Logger
    private let loop: LeaderLoop
    /// Changes other controllers raised, proposed on the next pass.
    private let raised = Mutex<[AlertChange]>([])
    /// Leader-local: the threshold rules' `for` memory.
    private let evaluator: Mutex<AlertRuleEvaluator>
    /// Idempotency keys sent or being sent whose `markNotified` is not committed yet, so a
    /// pass in between does not send them again.
    private let unsettled = Mutex<Set<String>>([])
    private let deliveries = Mutex<Deliveries>(Deliveries())

    /// Deliveries under way, and the callers of `settle` waiting for them all to end.
    private struct Deliveries {
        var next = 0
        var tasks: [Int: Task<Void, Never>] = [:]
        var idleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]

        /// Ends delivery `id`; returns the waiters to resume if none is left.
        mutating func finish(_ id: Int?) -> [CheckedContinuation<Void, Never>] {
            if let id { tasks.removeValue(forKey: id) } else { tasks.removeAll() }
            guard tasks.isEmpty else { return [] }
            defer { idleWaiters.removeAll() }
            return Array(idleWaiters.values)
        }
    }
    private let lastPruneUnixMs = Mutex<Int64>(0)
    /// The certificates this replica uses, read when a pass runs (for CertificateExpiring).
    private let certificates: @Sendable () -> [CertificateExpiry]
    /// Set before a planned leadership change: no new delivery starts here.
    private let settling = Mutex<Bool>(false)

    init(replica: any ClusterLog, receivers: [any Receiver], settings: Settings = .init(),
         certificates: @escaping @Sendable () -> [CertificateExpiry] = { [] }, logger: Logger) {
        self.replica = replica
        self.certificates = certificates
        self.settings = settings
        self.logger = logger
        planner = NotificationPlanner(routing: settings.routing)
        dispatcher = AlertDispatcher(receivers: receivers, logger: logger)
        evaluator = Mutex(AlertRuleEvaluator(settings: settings.rules, thresholdRules: settings.thresholdRules))
        loop = LeaderLoop(interval: settings.interval)
    }

    /// Asks for a pass soon.
    func nudge() { loop.nudge() }

    /// Proposes `change` on the next pass (at once: it nudges). For other controllers, e.g.
    /// the fencing loop's `BuiltinAlert.fencingStuck(...).fire(atUnixMs:)` and its resolve.
    /// Only the leader acts on it; a follower drops it at its next pass.
    func raise(_ change: AlertChange) {
        raised.withLock { $0.append(change) }
        nudge()
    }

    /// Why `alert` is not being sent now, with the configured routing.
    func muteReason(for alert: Alert, in book: AlertBook, atUnixMs now: Int64) -> MuteReason? {
        planner.muteReason(for: alert, in: book, atUnixMs: now)
    }

    func run() async {
        defer { cancelDeliveries() }
        // Evaluation and planning start only on everything the previous leader committed, its markNotified included.
        await loop.run(replica, pass: { _ in await pass() }, stepDown: lostLeadership, follower: {
            raised.withLock { $0.removeAll() }
        })
    }

    private func lostLeadership() {
        logger.info("alerting stops: no longer leader; in-flight deliveries are cancelled")
        cancelDeliveries()
        evaluator.withLock { $0 = AlertRuleEvaluator(settings: settings.rules, thresholdRules: settings.thresholdRules) }
    }

    func pass() async {
        var input = await replica.alertingInput()
        input.certificates = certificates()
        var changes = raised.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }.filter { !AlertRuleEvaluator.isRedundant($0, in: input.state.alerts) }
        changes += evaluator.withLock { $0.evaluate(input) }
        let prune = lastPruneUnixMs.withLock { last in
            guard input.nowUnixMs - last >= settings.pruneEveryMs else { return false }
            last = input.nowUnixMs
            return true
        }
        if prune { changes.append(.prune(beforeUnixMs: input.nowUnixMs - settings.keepResolvedMs)) }
        if !changes.isEmpty { await commit(changes) }
        await deliverDue()
    }

    /// Proposes the changes concurrently (Raft batches them) and waits until each is committed.
    private func commit(_ changes: [AlertChange]) async {
        let now = WallClock.nowUnixMs()
        await withTaskGroup(of: Void.self) { group in
            for change in changes {
                group.addTask { [replica, logger] in
                    do {
                        let outcome = try await replica.propose(.alert(change, atUnixMs: now))
                        if case .rejected(let reason) = outcome {
                            logger.warning("alert change rejected", metadata: ["alert.change": "\(change)", "reason": "\(reason)"])
                        } else {
                            Self.log(change, logger)
                        }
                    } catch {
                        logger.warning("alert change not committed; the next pass proposes it again", metadata: [
                            "alert.change": "\(change)", "error": "\(error)",
                        ])
                    }
                }
            }
        }
    }

    private static func log(_ change: AlertChange, _ logger: Logger) {
        switch change {
        case .fire(let rule, let labels, let severity, let summary, _, _):
            logger.warning("alert firing", metadata: [
                "alert.rule": "\(rule)", "alert.labels": "\(labels.sorted { $0.key < $1.key })", "alert.severity": "\(severity)",
                "alert.summary": "\(summary)",
            ])
        case .resolve(let fingerprint, _):
            logger.info("alert resolved", metadata: ["alert.id": "\(fingerprint)"])
        default:
            break
        }
    }

    /// Before a planned leadership change (a graceful stop): starts no new delivery and waits, up to
    /// `limit`, for those under way to finish and their `notified` to commit, so the next leader does
    /// not send them again. Returns how many were still under way at the limit.
    @discardableResult
    func settle(within limit: Duration) async -> Int {
        settling.withLock { $0 = true }
        // Resumed by the last delivery to end, or by the timer at `limit`, whichever comes first.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiter: Int? = deliveries.withLock { deliveries in
                guard !deliveries.tasks.isEmpty else { return nil }
                let id = deliveries.next
                deliveries.next += 1
                deliveries.idleWaiters[id] = continuation
                return id
            }
            guard let waiter else { return continuation.resume() }
            Task { [self] in
                try? await Task.sleep(for: limit)
                deliveries.withLock { $0.idleWaiters.removeValue(forKey: waiter) }?.resume()
            }
        }
        let underWay = deliveries.withLock { $0.tasks.count }
        if underWay > 0 {
            logger.warning("leadership handed off with notifications still being delivered; the next leader may send them again under the same idempotency key",
                           metadata: ["alert.deliveries": "\(underWay)"])
        }
        return underWay
    }

    /// After a planned leadership change that did not happen: deliveries start again.
    func resumeAfterSettling() { settling.withLock { $0 = false } }

    /// Plans on the committed book and starts delivering what is due and not already on its way.
    private func deliverDue() async {
        guard !settling.withLock({ $0 }) else { return }
        let book = await replica.replicatedState.alerts
        let plan = planner.plan(book, atUnixMs: WallClock.nowUnixMs())
        let due = unsettled.withLock { unsettled in
            let fresh = plan.notifications.filter { !unsettled.contains($0.idempotencyKey) }
            unsettled.formUnion(fresh.map(\.idempotencyKey))
            return fresh
        }
        // One task each, so a slow receiver holds up neither the others nor their markNotified.
        for notification in due { startDelivery([notification]) }
    }

    private func startDelivery(_ notifications: [AlertNotification]) {
        deliveries.withLock { running in
            let id = running.next
            running.next += 1
            running.tasks[id] = Task { [self] in
                defer {
                    for waiter in deliveries.withLock({ $0.finish(id) }) { waiter.resume() }
                    unsettled.withLock { $0.subtract(notifications.map(\.idempotencyKey)) }
                }
                let outcomes = await dispatcher.deliver(notifications)
                let changes = outcomes.flatMap(\.changesToCommit)
                guard !changes.isEmpty else { return }
                // Tried even when cancelled by a leadership change: if this replica can still
                // commit, the next leader knows the notification went out.
                await commit(changes)
                // A group interval counts from this delivery; plan again now that it is committed.
                nudge()
            }
        }
    }

    private func cancelDeliveries() {
        let (tasks, waiters) = deliveries.withLock { deliveries in
            let tasks = Array(deliveries.tasks.values)
            return (tasks, deliveries.finish(nil))
        }
        for waiter in waiters { waiter.resume() }
        for task in tasks { task.cancel() }
        unsettled.withLock { $0.removeAll() }
    }
}
