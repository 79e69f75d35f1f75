import Foundation
import Testing

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// Threshold rules from config: fire after holding for the `for` period, resolve when they stop holding.
@Suite(.watchesCooperativePool) struct ThresholdRuleTests {
    let hot = ThresholdRule(name: "CPUHot", metric: "cpu_temp_c", comparison: .greater, value: 90, forMs: 60_000, severity: .critical)
    let node: Labels = ["node": "n2"]

    /// Evaluates and applies, as the leader does by proposing the changes.
    func step(_ evaluator: inout ThresholdEvaluator, _ book: inout AlertBook, _ samples: [String: Double], at now: Int64) -> [AlertChange] {
        let changes = evaluator.evaluate(samples, subject: node, book: book, atUnixMs: now)
        for change in changes { book.apply(change) }
        return changes
    }

    @Test func aConditionFiresOnlyAfterHoldingForItsPeriodAndResolvesWhenItStops() {
        var evaluator = ThresholdEvaluator(rules: [hot])
        var book = AlertBook()
        let fingerprint = Alert.fingerprint(rule: "CPUHot", labels: node)
        #expect(step(&evaluator, &book, ["cpu_temp_c": 95], at: 0).isEmpty)
        #expect(step(&evaluator, &book, ["cpu_temp_c": 96], at: 59_999).isEmpty)
        let fired = step(&evaluator, &book, ["cpu_temp_c": 97], at: 60_000)
        #expect(fired.count == 1)
        #expect(book.alerts[fingerprint]?.status == .firing && book.alerts[fingerprint]?.severity == .critical)
        #expect(book.alerts[fingerprint]!.summary == "cpu_temp_c > 90 on node=n2")
        #expect(step(&evaluator, &book, ["cpu_temp_c": 97], at: 70_000).isEmpty, "already firing")
        #expect(step(&evaluator, &book, [:], at: 80_000).isEmpty, "no data changes nothing")
        #expect(step(&evaluator, &book, ["cpu_temp_c": 80], at: 90_000) == [.resolve(fingerprint: fingerprint, atUnixMs: 90_000)])
    }

    @Test func aDipBelowTheThresholdRestartsTheForPeriod() {
        var evaluator = ThresholdEvaluator(rules: [hot])
        var book = AlertBook()
        _ = step(&evaluator, &book, ["cpu_temp_c": 95], at: 0)
        _ = step(&evaluator, &book, ["cpu_temp_c": 85], at: 30_000)
        #expect(step(&evaluator, &book, ["cpu_temp_c": 95], at: 40_000).isEmpty)
        #expect(step(&evaluator, &book, ["cpu_temp_c": 95], at: 99_999).isEmpty)
        #expect(step(&evaluator, &book, ["cpu_temp_c": 95], at: 100_000).count == 1)
    }

    @Test func aNewLeadersEvaluatorResolvesWhatAnEarlierLeaderFired() {
        var book = AlertBook()
        var old = ThresholdEvaluator(rules: [hot])
        _ = step(&old, &book, ["cpu_temp_c": 95], at: 0)
        _ = step(&old, &book, ["cpu_temp_c": 95], at: 60_000)
        var fresh = ThresholdEvaluator(rules: [hot])
        #expect(step(&fresh, &book, ["cpu_temp_c": 20], at: 70_000).count == 1)
        #expect(book.alerts.values.first?.status == .resolved)
    }

    @Test func everyComparisonAndTheConfigChecks() throws {
        let cases: [(ThresholdRule.Comparison, Double, Bool)] = [
            (.greater, 10, false), (.greaterOrEqual, 10, true), (.less, 9, true), (.lessOrEqual, 11, false),
            (.equal, 10, true), (.notEqual, 10, false),
        ]
        for (comparison, sample, expected) in cases {
            #expect(ThresholdRule(name: "R", metric: "m", comparison: comparison, value: 10).holds(for: sample) == expected)
        }
        #expect(throws: AlertingError.self) {
            try ThresholdRule(name: BuiltinRule.nodeDown, metric: "m", comparison: .greater, value: 1).validate()
        }
        #expect(throws: AlertingError.self) { try ThresholdRule(name: "R", metric: "", comparison: .greater, value: 1).validate() }
        let decoded = try JSONDecoder().decode(
            ThresholdRule.self, from: Data(#"{"name":"DiskFull","metric":"disk_used_ratio","comparison":">=","value":0.95}"#.utf8))
        #expect(decoded == ThresholdRule(name: "DiskFull", metric: "disk_used_ratio", comparison: .greaterOrEqual, value: 0.95))
    }
}
