import SpecolaAlerting
import Foundation
import Logging

/// How often and how patiently one notification is retried.
public struct DeliveryRetryPolicy: Sendable, Hashable, Codable {
    /// Tries in all, the first included.
    public var attempts: Int
    public var initialBackoffMs: Int64
    public var maxBackoffMs: Int64
    /// Each wait is spread by ± this fraction, so retries from many notifications do not arrive in step.
    public var jitter: Double

    public init(attempts: Int = 5, initialBackoffMs: Int64 = 200, maxBackoffMs: Int64 = 10_000, jitter: Double = 0.2) {
        self.attempts = attempts
        self.initialBackoffMs = initialBackoffMs
        self.maxBackoffMs = maxBackoffMs
        self.jitter = jitter
    }

    /// The wait after failed attempt `attempt` (1-based): doubling from the initial backoff up to the
    /// maximum, then spread by the jitter. `unitRandom` in [0, 1) makes it deterministic for tests.
    public func backoffMs(afterAttempt attempt: Int, unitRandom: Double) -> Int64 {
        let doubled = Double(initialBackoffMs) * pow(2, Double(max(0, attempt - 1)))
        let base = min(Double(maxBackoffMs), doubled)
        return Int64((base * (1 - jitter + 2 * jitter * unitRandom)).rounded())
    }
}

/// The result of delivering one notification, retries included.
public struct DeliveryOutcome: Sendable {
    public var notification: AlertNotification
    public var attempts: Int
    /// When the receiver accepted it; nil when it failed.
    public var deliveredAtUnixMs: Int64?
    /// The last error; nil when delivered.
    public var error: DeliveryError?

    public var isDelivered: Bool { deliveredAtUnixMs != nil }

    /// What the leader commits so no leader sends it again: `markNotified` per alert, or nothing on failure.
    public var changesToCommit: [AlertChange] {
        deliveredAtUnixMs.map { notification.markNotified(atUnixMs: $0) } ?? []
    }
}

/// The wall clock in Unix milliseconds; the I/O shell reads it, the model never does.
public func wallClockUnixMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

/// Sends `notification` through `receiver`, retrying retryable failures with exponential
/// backoff and jitter, and stops early when the task is cancelled.
public func deliver(
    _ notification: AlertNotification, via receiver: any Receiver, policy: DeliveryRetryPolicy = DeliveryRetryPolicy(),
    logger: Logger, now: @Sendable () -> Int64 = wallClockUnixMs
) async -> DeliveryOutcome {
    var metadata: Logger.Metadata = [
        "alert.receiver": "\(receiver.name)", "alert.group": "\(notification.groupKey)",
        "alert.idempotency_key": "\(notification.idempotencyKey)",
    ]
    var attempt = 0
    var lastError: DeliveryError
    repeat {
        attempt += 1
        do {
            try Task.checkCancellation()
            try await receiver.send(notification)
            metadata["delivery.attempts"] = "\(attempt)"
            logger.info("alert notification delivered", metadata: metadata)
            return DeliveryOutcome(notification: notification, attempts: attempt, deliveredAtUnixMs: now(), error: nil)
        } catch let error as DeliveryError {
            lastError = error
        } catch is CancellationError {
            lastError = DeliveryError(.cancelled, "delivery to \(receiver.name) was cancelled", retryable: false)
        } catch {
            lastError = DeliveryError(.protocolViolation, "receiver \(receiver.name): \(error)", retryable: true)
        }
        guard lastError.isRetryable, attempt < policy.attempts, !Task.isCancelled else { break }
        var waitMs = policy.backoffMs(afterAttempt: attempt, unitRandom: Double.random(in: 0..<1))
        if let asked = lastError.retryAfter { waitMs = max(waitMs, min(policy.maxBackoffMs, asked.milliseconds)) }
        metadata["delivery.attempts"] = "\(attempt)"
        metadata["delivery.retry_in_ms"] = "\(waitMs)"
        logger.warning("alert notification failed, will retry", metadata: metadata.merging(["error": "\(lastError)"]) { $1 })
        do { try await Task.sleep(for: .milliseconds(waitMs)) } catch { break }
    } while true
    metadata["delivery.attempts"] = "\(attempt)"
    logger.error("alert notification not delivered", metadata: metadata.merging(["error": "\(lastError)"]) { $1 })
    return DeliveryOutcome(notification: notification, attempts: attempt, deliveredAtUnixMs: nil, error: lastError)
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// The leader's delivery shell: sends planned notifications to their receivers at most once at a
/// time each, and holds back one that failed for a while, since the planner offers it again on
/// every pass until its `markNotified` is committed.
public actor AlertDispatcher {
    private let receivers: [String: any Receiver]
    private let policy: DeliveryRetryPolicy
    private let retryFailedAfterMs: Int64
    private let logger: Logger
    private var inFlight: Set<String> = []
    private var failedAtUnixMs: [String: Int64] = [:]

    public init(
        receivers: [any Receiver], policy: DeliveryRetryPolicy = DeliveryRetryPolicy(), retryFailedAfterMs: Int64 = 60_000,
        logger: Logger
    ) {
        self.receivers = Dictionary(receivers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.policy = policy
        self.retryFailedAfterMs = retryFailedAfterMs
        self.logger = logger
    }

    /// Delivers the notifications concurrently and returns the outcome of each one it sent;
    /// those already in flight or failed recently are skipped. Commit `changesToCommit` of each.
    public func deliver(_ notifications: [AlertNotification]) async -> [DeliveryOutcome] {
        let now = wallClockUnixMs()
        failedAtUnixMs = failedAtUnixMs.filter { now - $0.value < retryFailedAfterMs }
        let due = notifications.filter { notification in
            let key = notification.idempotencyKey
            return !inFlight.contains(key) && failedAtUnixMs[key] == nil
        }
        inFlight.formUnion(due.map(\.idempotencyKey))
        let outcomes = await withTaskGroup(of: DeliveryOutcome.self) { group in
            for notification in due {
                guard let receiver = receivers[notification.receiver] else {
                    let error = DeliveryError(
                        .configuration, "no receiver named '\(notification.receiver)'; check the alerting routes", retryable: false)
                    group.addTask { DeliveryOutcome(notification: notification, attempts: 0, deliveredAtUnixMs: nil, error: error) }
                    continue
                }
                group.addTask { [policy, logger] in
                    await SpecolaAlertDelivery.deliver(notification, via: receiver, policy: policy, logger: logger)
                }
            }
            var outcomes: [DeliveryOutcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        for outcome in outcomes {
            let key = outcome.notification.idempotencyKey
            inFlight.remove(key)
            failedAtUnixMs[key] = outcome.isDelivered ? nil : wallClockUnixMs()
        }
        return outcomes
    }
}
