import TestSupport
import Testing
import CooperativePoolWatch

/// The checker itself, on small hand-made histories whose verdict is known.
@Suite(.watchesCooperativePool) struct LinearizabilityCheckerTests {
    typealias Op = RegisterOperation

    func op(_ client: Int, _ kind: Op.Kind, _ outcome: Op.Outcome = .ok, _ call: UInt64, _ ret: UInt64?) -> Op {
        Op(client: client, kind: kind, outcome: outcome, calledAt: call, returnedAt: ret)
    }

    @Test func sequentialHistoryIsLinearizable() {
        let history = [
            op(1, .put("a"), .ok, 0, 1),
            op(1, .get("a"), .ok, 2, 3),
            op(1, .cas(expected: "a", new: "b"), .ok, 4, 5),
            op(1, .cas(expected: "a", new: "c"), .failed, 6, 7),
            op(1, .get("b"), .ok, 8, 9),
        ]
        #expect(LinearizabilityChecker.check(history) == .linearizable)
    }

    @Test func aStaleReadAfterACompletedWriteIsRejected() {
        let history = [
            op(1, .put("a"), .ok, 0, 10),
            op(1, .put("b"), .ok, 20, 30),
            op(2, .get("a"), .ok, 40, 50),
        ]
        guard case .violation(let explanation) = LinearizabilityChecker.check(history) else {
            Issue.record("a read of a value overwritten before the read began must be rejected")
            return
        }
        #expect(explanation.contains("get -> a"))
    }

    @Test func concurrentOperationsMayTakeEitherOrder() {
        // The read overlaps both writes, so it may see either value.
        for seen in ["a", "b"] {
            let history = [
                op(1, .put("a"), .ok, 0, 100),
                op(2, .put("b"), .ok, 10, 90),
                op(3, .get(seen), .ok, 20, 110),
            ]
            #expect(LinearizabilityChecker.check(history) == .linearizable)
        }
        // But two sequential reads cannot see b then a when nothing writes a again.
        let flipFlop = [
            op(1, .put("a"), .ok, 0, 100),
            op(2, .put("b"), .ok, 10, 90),
            op(3, .get("b"), .ok, 20, 30),
            op(3, .get("a"), .ok, 40, 50),
            op(3, .get("b"), .ok, 110, 120),
        ]
        #expect(LinearizabilityChecker.check(flipFlop) != .linearizable)
    }

    @Test func anUnknownWriteMayHappenLateOrNever() {
        // Seen long after the client gave up on it: fine.
        let late = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .put("x"), .unknown, 2, nil),
            op(1, .get("a"), .ok, 10, 11),
            op(1, .get("x"), .ok, 20, 21),
        ]
        #expect(LinearizabilityChecker.check(late) == .linearizable)
        // Never seen: also fine.
        let never = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .put("x"), .unknown, 2, nil),
            op(1, .get("a"), .ok, 10, 11),
        ]
        #expect(LinearizabilityChecker.check(never) == .linearizable)
        // But it cannot take effect before it was called.
        let early = [
            op(1, .get("x"), .ok, 0, 1),
            op(2, .put("x"), .unknown, 2, nil),
        ]
        #expect(LinearizabilityChecker.check(early) != .linearizable)
    }

    @Test func compareAndSwapOutcomesMustMatchTheState() {
        // A CAS that reports success on a value that was never there.
        let phantom = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .cas(expected: "z", new: "b"), .ok, 2, 3),
        ]
        #expect(LinearizabilityChecker.check(phantom) != .linearizable)
        // A CAS that reports failure although the value matched, with nothing concurrent.
        let refused = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .cas(expected: "a", new: "b"), .failed, 2, 3),
        ]
        #expect(LinearizabilityChecker.check(refused) != .linearizable)
        // Two CAS racing from the same value: exactly one may win.
        let race = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .cas(expected: "a", new: "b"), .ok, 2, 10),
            op(3, .cas(expected: "a", new: "c"), .failed, 3, 9),
            op(1, .get("b"), .ok, 11, 12),
        ]
        #expect(LinearizabilityChecker.check(race) == .linearizable)
        let bothWin = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .cas(expected: "a", new: "b"), .ok, 2, 10),
            op(3, .cas(expected: "a", new: "c"), .ok, 3, 9),
        ]
        #expect(LinearizabilityChecker.check(bothWin) != .linearizable)
    }

    @Test func aLostAcknowledgedWriteIsRejected() {
        let history = [
            op(1, .put("a"), .ok, 0, 1),
            op(1, .put("b"), .ok, 2, 3),
            op(2, .get("absent-means-nil"), .ok, 4, 5),
        ]
        #expect(LinearizabilityChecker.check(history) != .linearizable)
        let absent = [
            op(1, .put("a"), .ok, 0, 1),
            op(2, .get(nil), .ok, 4, 5),
        ]
        #expect(LinearizabilityChecker.check(absent) != .linearizable)
    }

    @Test func aLongConcurrentHistoryChecksQuickly() {
        // 8 clients, 2,000 overlapping operations, a few unknown writes: memoization keeps this fast.
        var history: [Op] = []
        var value: String? = nil
        var time: UInt64 = 0
        for i in 0..<2_000 {
            let client = i % 8
            time += 10
            switch i % 5 {
            case 0, 1:
                let new = "v\(i)"
                history.append(op(client, .put(new), i % 97 == 0 ? .unknown : .ok, time, time + 25))
                value = new
            case 2:
                if let current = value {
                    history.append(op(client, .cas(expected: current, new: "w\(i)"), .ok, time, time + 25))
                    value = "w\(i)"
                }
            default:
                history.append(op(client, .get(value), .ok, time + 1, time + 25))
            }
        }
        let started = ContinuousClock.now
        #expect(LinearizabilityChecker.check(history) == .linearizable)
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
