import Foundation
import Testing
import TestSupport

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// A receiver that fails its first `failures` sends with `error`, recording every attempt.
actor ScriptedReceiver: Receiver {
    nonisolated let name: String
    private var failuresLeft: Int
    private let error: DeliveryError
    private(set) var attempts: [String] = []

    init(name: String = Scenario.chat, failures: Int, error: DeliveryError) {
        self.name = name
        failuresLeft = failures
        self.error = error
    }

    func send(_ notification: AlertNotification) async throws {
        attempts.append(notification.idempotencyKey)
        if failuresLeft > 0 {
            failuresLeft -= 1
            throw error
        }
    }
}

/// A receiver whose sends wait until the test opens the gate, to hold a delivery in flight.
actor GatedReceiver: Receiver {
    nonisolated let name = Scenario.chat
    private(set) var started = 0
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func send(_ notification: AlertNotification) async throws {
        started += 1
        if !isOpen { await withCheckedContinuation { waiting.append($0) } }
    }

    func open() {
        isOpen = true
        waiting.forEach { $0.resume() }
        waiting = []
    }
}

/// Retries with backoff, what is not retried, and what the leader commits afterwards.
@Suite(.watchesCooperativePool) struct DeliveryTests {
    let fast = DeliveryRetryPolicy(attempts: 4, initialBackoffMs: 1, maxBackoffMs: 5, jitter: 0.2)
    let serverError = DeliveryError(.httpStatus, "answered 500", retryable: true)

    @Test func backoffDoublesUpToTheMaximumWithinTheJitter() {
        let policy = DeliveryRetryPolicy(attempts: 8, initialBackoffMs: 200, maxBackoffMs: 2_000, jitter: 0.2)
        #expect((1...6).map { policy.backoffMs(afterAttempt: $0, unitRandom: 0.5) } == [200, 400, 800, 1_600, 2_000, 2_000])
        #expect(policy.backoffMs(afterAttempt: 1, unitRandom: 0) == 160)
        #expect(policy.backoffMs(afterAttempt: 1, unitRandom: 0.999_999) == 240)
    }

    @Test func aRetryableFailureIsRetriedAndTheDeliveryCommitsMarkNotified() async {
        let receiver = ScriptedReceiver(failures: 2, error: serverError)
        let notification = Scenario.notification()
        let outcome = await deliver(notification, via: receiver, policy: fast, logger: Scenario.logger, now: { 42 })
        #expect(outcome.isDelivered && outcome.attempts == 3 && outcome.error == nil)
        #expect(await receiver.attempts == Array(repeating: notification.idempotencyKey, count: 3), "one key for every attempt")
        #expect(outcome.changesToCommit == notification.markNotified(atUnixMs: 42))
    }

    @Test func aPermanentFailureIsNotRetriedAndCommitsNothing() async {
        let receiver = ScriptedReceiver(failures: 9, error: DeliveryError(.httpStatus, "answered 400", retryable: false))
        let outcome = await deliver(Scenario.notification(), via: receiver, policy: fast, logger: Scenario.logger)
        #expect(!outcome.isDelivered && outcome.attempts == 1 && outcome.changesToCommit.isEmpty)
        #expect(outcome.error?.code == .httpStatus)
    }

    @Test func retriesStopAtTheAttemptLimit() async {
        let receiver = ScriptedReceiver(failures: 9, error: serverError)
        let outcome = await deliver(Scenario.notification(), via: receiver, policy: fast, logger: Scenario.logger)
        #expect(!outcome.isDelivered && outcome.attempts == 4)
        #expect(await receiver.attempts.count == 4)
    }

    @Test func theDispatcherNeverSendsANotificationThatIsStillInFlight() async throws {
        let receiver = GatedReceiver()
        let dispatcher = AlertDispatcher(receivers: [receiver], policy: fast, logger: Scenario.logger)
        let notification = Scenario.notification()
        async let first = dispatcher.deliver([notification])
        try await waitUntil("the first delivery to reach the receiver", every: .milliseconds(10)) { await receiver.started == 1 }
        #expect(await dispatcher.deliver([notification]).isEmpty, "the planner offered it again while in flight")
        await receiver.open()
        #expect(await first.map(\.isDelivered) == [true])
        #expect(await receiver.started == 1)
    }

    @Test func theDispatcherHoldsBackAFailedNotificationAndReportsAnUnknownReceiver() async {
        let failing = ScriptedReceiver(failures: 1, error: DeliveryError(.httpStatus, "400", retryable: false))
        let dispatcher = AlertDispatcher(receivers: [failing], policy: fast, retryFailedAfterMs: 3_600_000, logger: Scenario.logger)
        let notification = Scenario.notification()
        #expect(await dispatcher.deliver([notification]).map(\.isDelivered) == [false])
        #expect(await dispatcher.deliver([notification]).isEmpty, "failed a moment ago: not sent again yet")
        #expect(await failing.attempts.count == 1)

        let orphan = Scenario.notification(receiver: "pager")
        let outcomes = await dispatcher.deliver([orphan])
        #expect(outcomes.first?.error?.code == .configuration)
        #expect(outcomes.first?.error?.message.contains("'pager'") == true)
    }
}

/// Pure formatting: times and the e-mail text.
@Suite(.watchesCooperativePool) struct FormattingTests {
    @Test func utcTimesMatchKnownDates() {
        #expect(UTCTime.rfc3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(UTCTime.rfc3339(951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(UTCTime.rfc3339(1_763_632_800_000) == "2025-11-20T10:00:00.000Z")
        #expect(UTCTime.rfc3339(-1) == "1969-12-31T23:59:59.999Z")
        #expect(UTCTime.rfc5322(1_763_632_800_000) == "Thu, 20 Nov 2025 10:00:00 +0000")
        #expect(UTCTime.rfc5322(0) == "Thu, 01 Jan 1970 00:00:00 +0000")
    }

    @Test func theEmailIsDotStuffedWithCRLFLineEndsAndNonASCIIIsEncoded() {
        var message = EmailMessage(
            from: "Specola <alerts@example.org>", to: ["ops@example.org"], subject: "[FIRING:1] n3", body: "line\n.hidden\r\nend",
            messageID: "k@example.org", dateUnixMs: 0)
        let (ascii, asciiNeeds8bit) = message.rendered(allow8bit: false)
        #expect(ascii.contains("\r\n..hidden\r\n") && !asciiNeeds8bit)
        #expect(!ascii.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "no bare LF")
        #expect(ascii.contains("Message-ID: <k@example.org>\r\n"))

        message.subject = "Température critique"
        message.body = "capteur: 95 °C"
        let (eightBit, needs8bit) = message.rendered(allow8bit: true)
        #expect(needs8bit && eightBit.contains("Content-Transfer-Encoding: 8bit") && eightBit.contains("95 °C"))
        #expect(eightBit.contains("Subject: =?UTF-8?B?"))
        let (base64, _) = message.rendered(allow8bit: false)
        #expect(base64.contains("Content-Transfer-Encoding: base64") && !base64.contains("°"))
    }
}
