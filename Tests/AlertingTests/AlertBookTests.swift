import Foundation
import Testing

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// The replicated alert lifecycle: what each committed change does to the book.
@Suite(.watchesCooperativePool) struct AlertBookTests {
    let nodeDown = BuiltinAlert.nodeDown(node: "n3", reason: "no heartbeat")

    @Test func theFingerprintDependsOnRuleAndLabelsOnlyNotOnTheirOrder() {
        let first = Alert.fingerprint(rule: "NodeDown", labels: ["node": "n3", "rack": "r1"])
        let second = Alert.fingerprint(rule: "NodeDown", labels: ["rack": "r1", "node": "n3"])
        #expect(first == second)
        #expect(first.count == 16)
        #expect(first != Alert.fingerprint(rule: "NodeDown", labels: ["node": "n4", "rack": "r1"]))
        #expect(first != Alert.fingerprint(rule: "AgentLost", labels: ["node": "n3", "rack": "r1"]))
        // Moving text between name and value must not collide.
        #expect(Alert.fingerprint(rule: "R", labels: ["ab": "c"]) != Alert.fingerprint(rule: "R", labels: ["a": "bc"]))
        // Pinned (FNV-1a 64, computed independently): replicas on other builds and machines must agree.
        #expect(Alert.fingerprint(rule: "NodeDown", labels: ["node": "n3"]) == "37e03b2d95c87265")
        #expect(StableHash.wideHex(["a"]).count == 32)
    }

    @Test func firingAFiringAlertChangesNothingAndFiringAgainAfterAResolveIsANewTransition() {
        var book = AlertBook()
        #expect(book.apply(nodeDown.fire(atUnixMs: 1_000)) == .applied)
        #expect(book.apply(nodeDown.fire(atUnixMs: 2_000)) == .unchanged)
        var alert = book.alerts[nodeDown.fingerprint]!
        #expect(alert.transition == 1 && alert.status == .firing && alert.startsAtUnixMs == 1_000)

        #expect(book.apply(nodeDown.resolve(atUnixMs: 3_000)) == .applied)
        #expect(book.apply(nodeDown.resolve(atUnixMs: 3_500)) == .unchanged)
        alert = book.alerts[nodeDown.fingerprint]!
        #expect(alert.transition == 2 && alert.status == .resolved && alert.endsAtUnixMs == 3_000)

        book.apply(nodeDown.fire(atUnixMs: 4_000))
        alert = book.alerts[nodeDown.fingerprint]!
        #expect(alert.transition == 3 && alert.status == .firing && alert.startsAtUnixMs == 4_000 && alert.endsAtUnixMs == nil)
        #expect(AlertStatus(transition: alert.transition) == alert.status)
    }

    @Test func anAckCoversOnlyTheCurrentFiringAndExpires() {
        var book = AlertBook()
        book.apply(nodeDown.fire(atUnixMs: 0))
        #expect(book.apply(.ack(fingerprint: nodeDown.fingerprint, untilUnixMs: 60_000, by: "ana", atUnixMs: 1_000)) == .applied)
        #expect(book.alerts[nodeDown.fingerprint]!.isAcked(atUnixMs: 59_999))
        #expect(!book.alerts[nodeDown.fingerprint]!.isAcked(atUnixMs: 60_000), "the ack expires")

        book.apply(nodeDown.resolve(atUnixMs: 2_000))
        book.apply(nodeDown.fire(atUnixMs: 3_000))
        #expect(!book.alerts[nodeDown.fingerprint]!.isAcked(atUnixMs: 4_000), "a new firing needs a new ack")

        #expect(book.apply(.ack(fingerprint: "0000000000000000", untilUnixMs: 9, by: "ana", atUnixMs: 1)) != .applied)
        book.apply(nodeDown.resolve(atUnixMs: 5_000))
        #expect(book.apply(.ack(fingerprint: nodeDown.fingerprint, untilUnixMs: 9_000, by: "ana", atUnixMs: 6_000)) != .applied)
    }

    @Test func silencesAreValidatedAddedOnceAndExpire() {
        var book = AlertBook()
        let silence = Silence(
            id: "s1", matchers: [LabelMatcher("node", .equal, "n3")], startsAtUnixMs: 0, endsAtUnixMs: 3_600_000,
            createdBy: "ana", comment: "BMC firmware update")
        #expect(book.apply(.addSilence(silence)) == .applied)
        #expect(book.apply(.addSilence(silence)) != .applied, "ids are unique")
        var everything = silence
        everything.id = "s2"
        everything.matchers = []
        #expect(book.apply(.addSilence(everything)) != .applied, "a silence must not mute everything")
        var badRegex = silence
        badRegex.id = "s3"
        badRegex.matchers = [LabelMatcher("node", .matchesRegex, "n[")]
        #expect(book.apply(.addSilence(badRegex)) != .applied)

        book.apply(nodeDown.fire(atUnixMs: 10))
        let alert = book.alerts[nodeDown.fingerprint]!
        #expect(book.silences(muting: alert, atUnixMs: 1_000).map(\.id) == ["s1"])
        #expect(book.apply(.expireSilence(id: "s1", atUnixMs: 2_000)) == .applied)
        #expect(book.silences["s1"]!.state(atUnixMs: 2_000) == .expired)
        #expect(book.silences(muting: alert, atUnixMs: 2_000).isEmpty)
    }

    @Test func aStaleMarkNotifiedNeverMovesTheRecordBack() {
        var book = AlertBook()
        book.apply(nodeDown.fire(atUnixMs: 0))
        book.apply(nodeDown.resolve(atUnixMs: 10))
        let id = nodeDown.fingerprint
        #expect(book.apply(.markNotified(fingerprint: id, transition: 2, receiver: "chat", atUnixMs: 20)) == .applied)
        #expect(book.apply(.markNotified(fingerprint: id, transition: 1, receiver: "chat", atUnixMs: 30)) == .unchanged)
        #expect(book.apply(.markNotified(fingerprint: id, transition: 2, receiver: "chat", atUnixMs: 20)) == .unchanged)
        #expect(book.apply(.markNotified(fingerprint: id, transition: 3, receiver: "chat", atUnixMs: 40)) != .applied)
        #expect(book.alerts[id]!.deliveries["chat"] == ReceiverDelivery(transition: 2, atUnixMs: 20))
    }

    @Test func pruneForgetsOnlyWhatEndedBeforeTheCutoff() {
        var book = AlertBook()
        let old = BuiltinAlert.agentLost(node: "n1", lastContact: "-")
        book.apply(old.fire(atUnixMs: 0))
        book.apply(old.resolve(atUnixMs: 100))
        book.apply(nodeDown.fire(atUnixMs: 0))
        book.apply(.addSilence(Silence(id: "s", matchers: [LabelMatcher("node", .equal, "n1")], startsAtUnixMs: 0, endsAtUnixMs: 50,
                                       createdBy: "ana", comment: "")))
        #expect(book.apply(.prune(beforeUnixMs: 200)) == .applied)
        #expect(book.alerts.keys.sorted() == [nodeDown.fingerprint], "firing alerts stay")
        #expect(book.silences.isEmpty)
    }

    @Test func theBookSurvivesACodableRoundTripUnchanged() throws {
        var book = AlertBook()
        book.apply(nodeDown.fire(atUnixMs: 0))
        book.apply(.ack(fingerprint: nodeDown.fingerprint, untilUnixMs: 5_000, by: "ana", atUnixMs: 1))
        book.apply(.markNotified(fingerprint: nodeDown.fingerprint, transition: 1, receiver: "chat", atUnixMs: 2))
        book.apply(.addSilence(Silence(id: "s", matchers: [LabelMatcher("node", .matchesRegex, "n.*")], startsAtUnixMs: 0,
                                       endsAtUnixMs: 50, createdBy: "ana", comment: "x")))
        let copy = try JSONDecoder().decode(AlertBook.self, from: JSONEncoder().encode(book))
        #expect(copy == book)
        let change = AlertChange.markNotified(fingerprint: "f", transition: 3, receiver: "mail", atUnixMs: 9)
        #expect(try JSONDecoder().decode(AlertChange.self, from: JSONEncoder().encode(change)) == change)
    }

    @Test func matchersParseTheOperatorsFormsAndRejectNonsense() throws {
        #expect(try LabelMatcher(parsing: "node=\"n3\"") == LabelMatcher("node", .equal, "n3"))
        #expect(try LabelMatcher(parsing: "node!=n3") == LabelMatcher("node", .notEqual, "n3"))
        #expect(try LabelMatcher(parsing: "alertname=~\"Job.*\"") == LabelMatcher("alertname", .matchesRegex, "Job.*"))
        #expect(try LabelMatcher(parsing: "alertname !~ Node.*") == LabelMatcher("alertname", .notMatchesRegex, "Node.*"))
        #expect(try LabelMatcher(parsing: "msg=\"a!=b\"") == LabelMatcher("msg", .equal, "a!=b"))
        #expect(throws: AlertingError.self) { try LabelMatcher(parsing: "node") }
        #expect(throws: AlertingError.self) { try LabelMatcher(parsing: "=n3") }
        #expect(throws: AlertingError.self) { try LabelMatcher(parsing: "node=~\"(\"") }

        let labels: Labels = ["alertname": "JobFailed", "node": "n3"]
        #expect(LabelMatcher("alertname", .matchesRegex, "Job.*").matches(labels))
        #expect(!LabelMatcher("alertname", .matchesRegex, "Job").matches(labels), "regexes match the whole value")
        #expect(LabelMatcher("rack", .equal, "").matches(labels), "a missing label is empty")
    }
}
