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
            #expect(!command.alert.legacyChangeJson.isEmpty && !command.alert.hasChange, "fixture \(index) is JSON")
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
        #expect(!snapshot.legacyAlertBookJson.isEmpty && !snapshot.hasAlertBook)
        let restored = try ClusterState(snapshot: snapshot)
        #expect(restored.alerts == state.alerts)
        #expect(try ClusterState(snapshot: restored.snapshot()).alerts == state.alerts)
    }

    /// Each alert fixture means what its change in the new form means, and the old book written
    /// again is the new form's book.
    @Test func alertChangesFromTheJSONEncoderMatchTheirNewForm() throws {
        var old = ClusterState()
        var new = ClusterState()
        for index in 1...6 {
            let legacy = try Specola_V1_Command(serializedBytes: try Self.fixture("alert-command-\(index).bin"))
            let change = try legacy.alert.decodedChange()
            let current = Specola_V1_Command.alert(change, atUnixMs: legacy.proposedAtUnixMs)
            #expect(current.alert.hasChange && current.alert.legacyChangeJson.isEmpty)
            #expect(try current.alert.decodedChange() == change)
            #expect(old.apply(legacy) == new.apply(current), "fixture \(index)")
        }
        #expect(old.alerts == new.alerts)
        let rewritten = try ClusterState(snapshot: Specola_V1_ClusterSnapshot(serializedBytes: try Self.fixture("alert-snapshot.bin"))).snapshot()
        #expect(rewritten.hasAlertBook && rewritten.legacyAlertBookJson.isEmpty)
        #expect(rewritten.alertBook == new.snapshot().alertBook)
    }

    /// Job specs travelled as JSON in `SubmitJobCommand.legacy_spec_json`; the fixtures were written by
    /// that encoder (`LegacyJobScenario`, see the fixtures' README).
    @Test func jobSubmissionsFromTheJSONEncoderApplyAsTheirNewFormDoes() throws {
        var old = ClusterState()
        var new = ClusterState()
        for command in LegacyJobScenario.nodes() {
            _ = old.apply(command)
            _ = new.apply(command)
        }
        let specs = [LegacyJobScenario.pipeline, LegacyJobScenario.arrayJob]
        for (index, current) in LegacyJobScenario.submissions().enumerated() {
            let legacy = try Specola_V1_Command(serializedBytes: try Self.fixture("submit-job-command-\(index + 1).bin"))
            #expect(!legacy.submitJob.legacySpecJson.isEmpty && !legacy.submitJob.hasSpec, "fixture \(index + 1) is JSON")
            #expect(try legacy.submitJob.decodedSpec() == specs[index])
            #expect(current.submitJob.hasSpec && current.submitJob.legacySpecJson.isEmpty)
            #expect(try current.submitJob.decodedSpec() == specs[index])
            #expect(old.apply(legacy) == .job(specs[index].metadata.jobID))
            #expect(new.apply(current) == .job(specs[index].metadata.jobID))
        }
        for command in LegacyJobScenario.progress() {
            _ = old.apply(command)
            _ = new.apply(command)
        }
        #expect(old.snapshot() == new.snapshot())
        #expect(old.jobs.jobs["astro/reduce"]?.run.tasks["astro/reduce/calibrate[0]"]?.failures == 1)
    }

    /// Job records kept spec and run as JSON (`JobRecord.legacy_spec_json`/`legacy_run_json`).
    @Test func aJobSnapshotFromTheJSONEncoderRestoresToTheStateOfTheNewForm() throws {
        let snapshot = try Specola_V1_ClusterSnapshot(serializedBytes: try Self.fixture("job-snapshot.bin"))
        #expect(snapshot.jobs.count == 2)
        #expect(snapshot.jobs.allSatisfy { !$0.legacySpecJson.isEmpty && !$0.legacyRunJson.isEmpty && !$0.hasSpec && !$0.hasRun })
        let restored = try ClusterState(snapshot: snapshot)
        var state = ClusterState()
        for command in LegacyJobScenario.nodes() + LegacyJobScenario.submissions() + LegacyJobScenario.progress() {
            _ = state.apply(command)
        }
        let rewritten = restored.snapshot()
        #expect(rewritten == state.snapshot())
        #expect(rewritten.jobs.allSatisfy { $0.legacySpecJson.isEmpty && $0.legacyRunJson.isEmpty && $0.hasSpec && $0.hasRun })
        #expect(try ClusterState(snapshot: rewritten).snapshot() == rewritten)
        let retrying = try #require(restored.jobs.jobs["astro/reduce"]?.run.tasks["astro/reduce/calibrate[0]"])
        #expect(retrying.failures == 1 && retrying.exitCode == 3 && retrying.notBeforeUnixMs == 5_030 && retrying.node == nil)
    }

    /// A message a newer build wrote (an enum value or a kind this build lacks) is rejected on every
    /// replica alike, naming the upgrade; a snapshot holding one is refused.
    @Test func whatOnlyANewerBuildCanReadIsRejectedNamingTheUpgrade() throws {
        var state = ClusterState()
        var alert = Specola_V1_Command.alert(
            .fire(rule: "NodeDown", labels: ["node": "n1"], severity: .critical, summary: "s", description: "d", atUnixMs: 5), atUnixMs: 5)
        alert.alert.change.fire.severity = .UNRECOGNIZED(9)
        guard case .rejected(let reason) = state.apply(alert) else {
            Issue.record("an alert of an unknown severity applied")
            return
        }
        #expect(reason.contains("upgrade"), "\(reason)")
        #expect(state.alerts == AlertBook())

        var submit = LegacyJobScenario.submissions()[0]
        submit.submitJob.spec.tasks[0].driver = nil
        guard case .rejected(let why) = state.apply(submit) else {
            Issue.record("a task without a known driver applied")
            return
        }
        #expect(why.contains("upgrade"), "\(why)")

        var snapshot = ClusterState().snapshot()
        snapshot.jobs = [.with { $0.id = "astro/x"; $0.spec = .init(LegacyJobScenario.pipeline); $0.run.tasks = [.with { $0.id = "t"; $0.state = .UNRECOGNIZED(12) }] }]
        #expect(throws: ReplicatedFormError.self) { try ClusterState(snapshot: snapshot) }
    }
}
