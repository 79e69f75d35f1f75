import Foundation
import Testing

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// What the planner sends, when, and that it sends each alert transition once per receiver.
@Suite(.watchesCooperativePool) struct NotificationPlannerTests {
    let minute: Int64 = 60_000
    let n3Down = BuiltinAlert.nodeDown(node: "n3", reason: "no heartbeat")
    let n4Down = BuiltinAlert.nodeDown(node: "n4", reason: "no heartbeat")
    let jobOnN3 = BuiltinAlert.jobFailed(job: "reduce", task: "reduce/stack", node: "n3", message: "exit 1")
    let jobOnN4 = BuiltinAlert.jobFailed(job: "calib", task: "calib/prep", node: "n4", message: "exit 2")

    func planner(_ routes: [NotificationRoute] = [NotificationRoute(receiver: Scenario.chat)]) -> NotificationPlanner {
        NotificationPlanner(routing: AlertRouting(routes: routes))
    }

    func fingerprints(_ notification: AlertNotification) -> Set<String> { Set(notification.alerts.map(\.id)) }

    /// The one notification planned; a failed expectation, not a crash, when there are more or none.
    func only(_ notifications: [AlertNotification], _ why: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> AlertNotification
    {
        try #require(notifications.count == 1, why, sourceLocation: sourceLocation)
        return notifications[0]
    }

    @Test func aNewAlertIsDueAtOnceWithTheDefaultGroupWaitOfZero() throws {
        var book = AlertBook()
        Scenario.fire(&book, n3Down, at: 1_000)
        let plan = planner().plan(book, atUnixMs: 1_000)
        let notification = try only(plan.notifications)
        #expect(notification.receiver == Scenario.chat && notification.status == .firing && !notification.isRepeat)
        #expect(notification.alerts.map(\.transition) == [1])
        #expect(notification.alerts.first?.matchLabels == ["alertname": "NodeDown", "severity": "critical", "node": "n3"])
        #expect(notification.title == "[FIRING:1] alertname=NodeDown")
    }

    @Test func alertsWithEqualGroupByLabelsShareOneNotificationAfterTheGroupWait() throws {
        var book = AlertBook()
        let agentLost = BuiltinAlert.agentLost(node: "n5", lastContact: "12 s ago")
        let routes = [NotificationRoute(receiver: Scenario.chat, groupBy: ["alertname"], groupWaitMs: 5_000)]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.fire(&book, n4Down, at: 2_000)
        Scenario.fire(&book, agentLost, at: 3_000)
        #expect(planner(routes).plan(book, atUnixMs: 4_999).notifications.isEmpty, "the group waits 5 s for more alerts")
        #expect(planner(routes).plan(book, atUnixMs: 4_999).nextCheckUnixMs == 5_000)

        let plan = planner(routes).plan(book, atUnixMs: 5_000)
        let nodeDowns = try only(plan.notifications, "NodeDown's group is due, AgentLost's waits until 8 s")
        #expect(fingerprints(nodeDowns) == [n3Down.fingerprint, n4Down.fingerprint])
        #expect(nodeDowns.groupLabels == ["alertname": "NodeDown"])
        #expect(plan.nextCheckUnixMs == 8_000)

        let byNode = [NotificationRoute(receiver: Scenario.chat, groupBy: ["node"])]
        let perNode = planner(byNode).plan(book, atUnixMs: 5_000).notifications
        #expect(perNode.map { fingerprints($0) } == [[n3Down.fingerprint], [n4Down.fingerprint], [agentLost.fingerprint]])
        Scenario.fire(&book, jobOnN4, at: 5_000)
        let single = [NotificationRoute(receiver: Scenario.chat, groupBy: [NotificationRoute.everyLabel])]
        #expect(planner(single).plan(book, atUnixMs: 5_000).notifications.count == 3, "the job on down n4 is inhibited")
    }

    @Test func aGroupThatWasJustNotifiedBatchesNewAlertsUntilTheGroupInterval() throws {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat, groupIntervalMs: 30_000)]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.commit(planner(routes).plan(book, atUnixMs: 0).notifications, to: &book, at: 100)
        Scenario.fire(&book, n4Down, at: 10_000)
        #expect(planner(routes).plan(book, atUnixMs: 10_000).notifications.isEmpty)
        #expect(planner(routes).plan(book, atUnixMs: 10_000).nextCheckUnixMs == 30_100)
        let due = try only(planner(routes).plan(book, atUnixMs: 30_100).notifications)
        #expect(fingerprints(due) == [n4Down.fingerprint], "only the new transition is announced")
    }

    @Test func aStillFiringAlertIsRemindedEveryRepeatIntervalEachTimeWithItsOwnKey() throws {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat, repeatIntervalMs: 60 * minute)]
        Scenario.fire(&book, n3Down, at: 0)
        let first = try only(planner(routes).plan(book, atUnixMs: 0).notifications)
        Scenario.commit([first], to: &book, at: 0)
        #expect(planner(routes).plan(book, atUnixMs: 60 * minute - 1).notifications.isEmpty)
        #expect(planner(routes).plan(book, atUnixMs: 1).nextCheckUnixMs == 60 * minute)

        let reminder = try only(planner(routes).plan(book, atUnixMs: 60 * minute).notifications)
        #expect(reminder.isRepeat && reminder.title.contains("(reminder)"))
        #expect(reminder.idempotencyKey != first.idempotencyKey)
        Scenario.commit([reminder], to: &book, at: 60 * minute + 500)
        #expect(planner(routes).plan(book, atUnixMs: 61 * minute).notifications.isEmpty)
        let next = try only(planner(routes).plan(book, atUnixMs: 120 * minute + 500).notifications)
        #expect(next.idempotencyKey != reminder.idempotencyKey)
    }

    @Test func anAckMutesRemindersUntilItExpires() throws {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat, repeatIntervalMs: 10 * minute)]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.commit(planner(routes).plan(book, atUnixMs: 0).notifications, to: &book, at: 0)
        book.apply(.ack(fingerprint: n3Down.fingerprint, untilUnixMs: 30 * minute, by: "ana", atUnixMs: minute))
        #expect(planner(routes).plan(book, atUnixMs: 20 * minute).notifications.isEmpty, "acked: no reminder")
        #expect(planner(routes).muteReason(for: book.alerts[n3Down.fingerprint]!, in: book, atUnixMs: 20 * minute)
            == .acked(by: "ana", untilUnixMs: 30 * minute))
        #expect(planner(routes).plan(book, atUnixMs: 20 * minute).nextCheckUnixMs == 30 * minute)
        let afterExpiry = try only(planner(routes).plan(book, atUnixMs: 30 * minute).notifications)
        #expect(afterExpiry.isRepeat, "the ack expired: reminders resume")
    }

    @Test func aDownNodeInhibitsAlertsAboutItsOwnWorkloadsOnly() {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat, groupBy: [NotificationRoute.everyLabel])]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.fire(&book, jobOnN3, at: 0)
        Scenario.fire(&book, jobOnN4, at: 0)
        Scenario.fire(&book, .fencingStuck(node: "n3", reason: "BMC unreachable"), at: 0)
        let sent = planner(routes).plan(book, atUnixMs: 0).notifications.flatMap(\.alerts).map { $0.rule + "/" + ($0.labels["node"] ?? "") }
        #expect(Set(sent) == ["NodeDown/n3", "JobFailed/n4", "FencingStuck/n3"], "JobFailed on n3 is inhibited")
        #expect(planner(routes).muteReason(for: book.alerts[jobOnN3.fingerprint]!, in: book, atUnixMs: 0)
            == .inhibited(byFingerprints: [n3Down.fingerprint]))

        Scenario.commit(planner(routes).plan(book, atUnixMs: 0).notifications, to: &book, at: 0)
        book.apply(n3Down.resolve(atUnixMs: 1_000))
        #expect(planner(routes).plan(book, atUnixMs: 1_000).notifications.flatMap(\.alerts).map(\.id) == [jobOnN3.fingerprint],
                "the job alert's group never sent: at once; NodeDown's group sent at 0: after its 30 s group interval")
        let after = planner(routes).plan(book, atUnixMs: 30_000).notifications
        #expect(Set(after.flatMap { $0.alerts.map(\.id) }) == [n3Down.fingerprint, jobOnN3.fingerprint],
                "the node is back: its resolve, and the job alert it muted, are sent")
    }

    @Test func anActiveSilenceMutesAndItsExpiryReleasesAndAPendingOneDoesNothingYet() {
        var book = AlertBook()
        Scenario.fire(&book, n3Down, at: 0)
        let silence = Silence(
            id: "maint", matchers: [LabelMatcher("node", .equal, "n3")], startsAtUnixMs: 0, endsAtUnixMs: 60 * minute,
            createdBy: "ana", comment: "PSU swap")
        book.apply(.addSilence(silence))
        #expect(planner().plan(book, atUnixMs: minute).notifications.isEmpty)
        #expect(planner().plan(book, atUnixMs: minute).nextCheckUnixMs == 60 * minute)
        #expect(planner().plan(book, atUnixMs: 60 * minute).notifications.count == 1, "a silence that ended releases the alert")

        book.apply(.expireSilence(id: "maint", atUnixMs: 2 * minute))
        #expect(planner().plan(book, atUnixMs: 2 * minute).notifications.count == 1, "expired by hand")

        var later = silence
        later.id = "later"
        later.startsAtUnixMs = 90 * minute
        later.endsAtUnixMs = 120 * minute
        book.apply(.addSilence(later))
        #expect(planner().plan(book, atUnixMs: 3 * minute).notifications.count == 1, "a pending silence does not mute yet")
    }

    @Test func whoeverHeardTheFiringHearsTheResolveOnceAndNobodyElseDoes() throws {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat), NotificationRoute(receiver: Scenario.mail, sendResolved: false)]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.commit(planner(routes).plan(book, atUnixMs: 0).notifications, to: &book, at: 0)
        book.apply(n3Down.resolve(atUnixMs: 40_000))
        let resolved = try only(planner(routes).plan(book, atUnixMs: 40_000).notifications, "mail has sendResolved: false")
        #expect(resolved.receiver == Scenario.chat && resolved.status == .resolved)
        #expect(resolved.alerts.map(\.transition) == [2] && resolved.alerts.map(\.endsAtUnixMs) == [40_000])
        Scenario.commit([resolved], to: &book, at: 40_000)
        #expect(planner(routes).plan(book, atUnixMs: 10 * 3_600_000).notifications.isEmpty, "a resolved alert is never reminded")

        // Silenced for its whole life: nobody heard it fire, so nobody hears it resolve.
        let quiet = BuiltinAlert.agentLost(node: "n5", lastContact: "-")
        book.apply(.addSilence(Silence(id: "q", matchers: [LabelMatcher("node", .equal, "n5")], startsAtUnixMs: 0,
                                       endsAtUnixMs: 100_000, createdBy: "ana", comment: "")))
        Scenario.fire(&book, quiet, at: 50_000)
        book.apply(quiet.resolve(atUnixMs: 60_000))
        #expect(planner(routes).plan(book, atUnixMs: 200_000).notifications.isEmpty)
    }

    @Test func eachTransitionIsNotifiedExactlyOncePerReceiverHoweverOftenThePlannerRuns() {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat), NotificationRoute(receiver: Scenario.mail, groupBy: ["node"])]
        Scenario.fire(&book, n3Down, at: 0)
        let first = planner(routes).plan(book, atUnixMs: 0).notifications
        #expect(first.map(\.receiver).sorted() == [Scenario.chat, Scenario.mail])
        #expect(planner(routes).plan(book, atUnixMs: 0).notifications == first, "planning is deterministic until committed")
        Scenario.commit(first, to: &book, at: 10)
        for second in stride(from: Int64(10), to: 3_600_000, by: 7_000) {
            #expect(planner(routes).plan(book, atUnixMs: second).notifications.isEmpty)
        }
        book.apply(n3Down.resolve(atUnixMs: 3_600_000))
        book.apply(n3Down.fire(atUnixMs: 3_600_001))
        let refired = planner(routes).plan(book, atUnixMs: 3_700_000).notifications
        #expect(refired.count == 2 && refired.flatMap(\.alerts).allSatisfy { $0.transition == 3 }, "firing again is a new transition")
        #expect(Set(refired.map(\.idempotencyKey)).isDisjoint(with: first.map(\.idempotencyKey)))
    }

    @Test func aNewLeaderWithTheRestoredBookPlansTheSameKeysAndNothingAlreadyMarked() throws {
        var book = AlertBook()
        let routes = [NotificationRoute(receiver: Scenario.chat), NotificationRoute(receiver: Scenario.mail)]
        Scenario.fire(&book, n3Down, at: 0)
        Scenario.fire(&book, jobOnN4, at: 0)
        let oldLeader = planner(routes).plan(book, atUnixMs: 0).notifications
        // The old leader delivered and committed chat, then died before committing mail.
        Scenario.commit(oldLeader.filter { $0.receiver == Scenario.chat }, to: &book, at: 5)

        let restored = try JSONDecoder().decode(AlertBook.self, from: JSONEncoder().encode(book))
        let newLeader = planner(routes).plan(restored, atUnixMs: 1_000).notifications
        #expect(newLeader.allSatisfy { $0.receiver == Scenario.mail }, "chat was committed: never planned again")
        #expect(newLeader.map(\.idempotencyKey) == oldLeader.filter { $0.receiver == Scenario.mail }.map(\.idempotencyKey),
                "the re-sent mail carries the same key, so a receiver can drop the copy")
    }

    @Test func nextCheckIsNilWhenNothingWaits() {
        var book = AlertBook()
        #expect(planner().plan(book, atUnixMs: 0).nextCheckUnixMs == nil)
        Scenario.fire(&book, n3Down, at: 0)
        book.apply(n3Down.resolve(atUnixMs: 1))
        #expect(planner().plan(book, atUnixMs: 2) == NotificationPlan(notifications: [], nextCheckUnixMs: nil))
    }

    @Test func routingConfigIsCheckedAgainstTheReceivers() throws {
        let routing = AlertRouting(routes: [NotificationRoute(receiver: "pager")])
        #expect(throws: AlertingError.self) { try routing.validate(receiverNames: [Scenario.chat]) }
        try AlertRouting(routes: [NotificationRoute(receiver: Scenario.chat)]).validate(receiverNames: [Scenario.chat])
        let decoded = try JSONDecoder().decode(AlertRouting.self, from: Data(#"{"routes":[{"receiver":"chat"}]}"#.utf8))
        #expect(decoded == AlertRouting(routes: [NotificationRoute(receiver: Scenario.chat)]), "absent fields take defaults")
    }
}
