import Foundation
import SpecolaAlerting
import SpecolaWire
import Testing
@testable import SpecolaClusterCore
import CooperativePoolWatch

/// A replica keeps the log and snapshots an older build wrote. The fixtures in
/// Tests/Fixtures/legacy-format were encoded with the schema of the build before `NodeStatus`,
/// when a node's status travelled as text (`*.txt` shows what each holds).
@Suite(.watchesCooperativePool) struct LegacyFormatTests {
    static func fixture(_ name: String) throws -> Data {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try Data(contentsOf: root.appendingPathComponent("Fixtures/legacy-format/\(name)"))
    }

    @Test func aNodeHealthCommandFromTheOldLogStillApplies() throws {
        let command = try Specola_V1_Command(serializedBytes: try Self.fixture("node-health-command.bin"))
        #expect(command.nodeHealth.status == .fenced)
        var state = ClusterState()
        _ = state.apply(.registerNode(name: "n2", address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
        #expect(state.apply(command, at: 2) == .done)
        let node = try #require(state.nodes["n2"])
        #expect(node.committed == .fenced)
        #expect(node.statusReason == "BMC confirmed chassis power off")
        #expect(node.fenceRequestedBy == "user/alice")
        #expect(state.proposals.answer(for: command.proposalID, proposedAt: 2, appliedThrough: 2) == .applied(at: 2))
    }

    @Test func aSnapshotFromTheOldBuildStillRestores() throws {
        let snapshot = try Specola_V1_ClusterSnapshot(serializedBytes: try Self.fixture("cluster-snapshot.bin"))
        let state = try ClusterState(snapshot: snapshot)
        #expect(state.nodes.mapValues(\.committed) == ["n1": .ready, "n2": .fenced, "n3": .suspect, "n4": .recovered, "n5": .ready])
        #expect(state.nodes.values.allSatisfy { $0.shownStatus.isEmpty }, "the text moved to committed_status")
        #expect(state.nodes["n2"]?.fenceRequestedBy == "user/alice")
        // Written again, it is in the new form and restores to the same state.
        let again = try ClusterState(snapshot: state.snapshot())
        #expect(again.nodes == state.nodes)
        #expect(again.snapshot().nodes.allSatisfy { $0.committedStatus != .unspecified || $0.name == "n5" })
    }

    @Test func everyStatusHasOneWordAndTheWordsNameThemBack() {
        let steps: [NodeStatus] = [.ready, .suspect, .down, .fencing, .fenced, .recovered]
        #expect(steps.map(\.word) == ["ready", "suspect", "down", "fencing", "fenced", "recovered"])
        for step in steps { #expect(NodeStatus(word: step.word) == step) }
        #expect(NodeStatus(word: "sleepy") == nil)
        #expect(NodeStatus.unspecified.committed == .ready)
    }

    /// Alert changes and the alert book travel as JSON inside protobuf fields
    /// (`AlertCommand.change_json`, `ClusterSnapshot.alert_book_json`). These fixtures were written
    /// by that encoder (`Specola_V1_Command.alert`, `ClusterState.snapshot()`) before any change to
    /// it, so whoever moves them to protobuf messages keeps old logs and snapshots readable.
    @Test func alertChangesAndTheBookFromTheJSONEncoderApply() throws {
        var state = ClusterState()
        for index in 1...6 {
            let command = try Specola_V1_Command(serializedBytes: try Self.fixture("alert-command-\(index).bin"))
            #expect(!command.alert.changeJson.isEmpty, "fixture \(index) is JSON")
            #expect(state.apply(command) == .done, "fixture \(index)")
        }
        let down = try #require(state.alerts.alerts[Alert.fingerprint(rule: "NodeDown", labels: ["node": "n2"])])
        #expect(down.status == .firing && down.severity == .critical && down.summary == "node n2 is down")
        #expect(down.ack?.by == "user/alice" && down.ack?.untilUnixMs == 1_767_007_200_000)
        #expect(down.deliveries["ops"]?.transition == 1)
        let sensor = try #require(state.alerts.alerts[Alert.fingerprint(rule: "SensorCritical", labels: ["node": "n1", "sensor": "CPU Temp"])])
        #expect(sensor.status == .resolved && sensor.endsAtUnixMs == 1_767_000_005_000)
        #expect(state.alerts.silences["s-1"]?.matchers.count == 2 && state.alerts.silences["s-1"]?.comment == "rack 3 work")

        let snapshot = try Specola_V1_ClusterSnapshot(serializedBytes: try Self.fixture("alert-snapshot.bin"))
        #expect(!snapshot.alertBookJson.isEmpty)
        let restored = try ClusterState(snapshot: snapshot)
        #expect(restored.alerts == state.alerts)
        #expect(try ClusterState(snapshot: restored.snapshot()).alerts == state.alerts)
    }
}
