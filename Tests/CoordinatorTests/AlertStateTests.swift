import Foundation
import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaJobs
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// Builders shared by the alert state and rule tests.
enum AlertFixture {
    static func registered(_ names: String..., at: Int64 = 1_000) -> ClusterState {
        var state = ClusterState()
        for name in names {
            _ = state.apply(.registerNode(name: name, address: "127.0.1.1", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: at))
        }
        return state
    }

    /// Commits `changes` as the leader does, one command each.
    static func commit(_ changes: [AlertChange], to state: inout ClusterState, at now: Int64) {
        for change in changes { _ = state.apply(.alert(change, atUnixMs: now)) }
    }

    static func report(_ state: inout ClusterState, node: String, seq: UInt64, at: Int64, full: Bool = true,
                       _ edit: (inout Specola_V1_Report) -> Void = { _ in }) {
        let report = Specola_V1_Report.with {
            $0.seq = seq
            $0.full = full
            $0.facts.capacity.cpuCores = 4
            $0.facts.capacity.memoryBytes = 8 << 30
            $0.facts.capacity.memoryAvailableBytes = 4 << 30
            edit(&$0)
        }
        _ = state.apply(.applyReport(node: node, report: report, receivedAtUnixMs: at))
    }
}

/// The alert book as part of the replicated state: committed through `Command.alert`,
/// applied the same on every replica, and carried whole by snapshots.
@Suite(.watchesCooperativePool) struct AlertStateTests {
    let t0: Int64 = 1_763_632_800_000
    let down = BuiltinAlert.nodeDown(node: "n1", reason: "no heartbeat for 12 s")

    /// A history that touches every kind of change.
    func history() -> [Specola_V1_Command] {
        let silence = Silence(
            id: "s1", matchers: [LabelMatcher("node", .equal, "n2")], startsAtUnixMs: t0, endsAtUnixMs: t0 + 3_600_000,
            createdBy: "user/admin", comment: "maintenance")
        return [
            .alert(down.fire(atUnixMs: t0), atUnixMs: t0),
            .alert(.markNotified(fingerprint: down.fingerprint, transition: 1, receiver: "chat", atUnixMs: t0 + 20), atUnixMs: t0 + 20),
            .alert(.ack(fingerprint: down.fingerprint, untilUnixMs: t0 + 7_200_000, by: "user/admin", atUnixMs: t0 + 30), atUnixMs: t0 + 30),
            .alert(.addSilence(silence), atUnixMs: t0 + 40),
            .alert(BuiltinAlert.sensorCritical(node: "n2", sensor: "CPU Temp", reading: "97 C").fire(atUnixMs: t0 + 50), atUnixMs: t0 + 50),
        ]
    }

    @Test func replicasApplyingTheSameAlertCommandsHoldTheSameBook() {
        var first = AlertFixture.registered("n1", "n2")
        var second = AlertFixture.registered("n1", "n2")
        for command in history() {
            #expect(first.apply(command) == .done)
            _ = second.apply(command)
        }
        #expect(first.alerts == second.alerts)
        let alert = try! #require(first.alerts.alerts[down.fingerprint])
        #expect(alert.status == .firing && alert.transition == 1)
        #expect(alert.deliveries["chat"]?.transition == 1)
        #expect(alert.ack?.by == "user/admin")
        #expect(first.alerts.silences["s1"]?.comment == "maintenance")
    }

    @Test func theBookSurvivesASnapshotByteForByte() throws {
        var state = AlertFixture.registered("n1", "n2")
        for command in history() { _ = state.apply(command) }
        let image = state.snapshot()
        #expect(image.hasAlertBook && !image.alertBook.alerts.isEmpty)
        let restored = try ClusterState(snapshot: Specola_V1_ClusterSnapshot(serializedBytes: try image.serializedBytes() as [UInt8]))
        #expect(restored.alerts == state.alerts)
        #expect(try restored.snapshot().serializedBytes() as [UInt8] == image.serializedBytes() as [UInt8])
        // A restored replica goes on applying exactly as the others do.
        var a = state
        var b = restored
        let resolve = Specola_V1_Command.alert(down.resolve(atUnixMs: t0 + 60_000), atUnixMs: t0 + 60_000)
        _ = a.apply(resolve)
        _ = b.apply(resolve)
        #expect(a.alerts == b.alerts && a.alerts.alerts[down.fingerprint]?.status == .resolved)
    }

    @Test func aSnapshotFromBeforeAlertingRestoresAnEmptyBook() throws {
        var state = AlertFixture.registered("n1")
        _ = state.apply(.alert(down.fire(atUnixMs: t0), atUnixMs: t0))
        var image = state.snapshot()
        image.clearAlertBook()
        let restored = try ClusterState(snapshot: image)
        #expect(restored.alerts == AlertBook())
        #expect(restored.nodes["n1"] != nil)
    }

    @Test func aRejectedOrUndecodableChangeChangesNothing() {
        var state = AlertFixture.registered("n1")
        _ = state.apply(.alert(down.fire(atUnixMs: t0), atUnixMs: t0))
        let before = state.alerts
        let ackUnknown = state.apply(.alert(.ack(fingerprint: "nope", untilUnixMs: t0 + 10, by: "u", atUnixMs: t0), atUnixMs: t0))
        guard case .rejected(let reason) = ackUnknown else {
            Issue.record("an ack of an unknown alert must be rejected, got \(ackUnknown)")
            return
        }
        #expect(reason.contains("nope"))
        var garbage = Specola_V1_Command()
        garbage.proposedAtUnixMs = t0
        garbage.alert.legacyChangeJson = Data("{not json".utf8)
        guard case .rejected = state.apply(garbage) else {
            Issue.record("an undecodable alert change must be rejected")
            return
        }
        #expect(state.alerts == before)
    }

    @Test func firingWhatAlreadyFiresIsANoOpSoRetriedProposalsAreHarmless() {
        var state = AlertFixture.registered("n1")
        _ = state.apply(.alert(down.fire(atUnixMs: t0), atUnixMs: t0))
        let once = state.alerts
        _ = state.apply(.alert(down.fire(atUnixMs: t0 + 500), atUnixMs: t0 + 500))
        #expect(state.alerts == once, "the start time and transition stay those of the first fire")
    }
}
