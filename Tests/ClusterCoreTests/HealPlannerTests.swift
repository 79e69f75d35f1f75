import CooperativePoolWatch
import SpecolaAlerting
import SpecolaWire
import Testing
@testable import SpecolaClusterCore

/// The heal planner as a value: one rule per test, over a cluster of reports; no glusterd.
@Suite(.watchesCooperativePool) struct HealPlannerTests {
    static let gv0 = ["gv0": [["n1", "n2", "n3"]]]
    static let policy = StoragePolicy(spareBricks: ["n4": ["/spare/s1"]], replaceAfterMs: 60_000)

    @Test func aDeadBrickOnALiveNodeIsRestartedByItsOwnNodeThenHealed() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let dead = StorageFixture.key("n2", "gv0")
        cluster.brick(dead) { $0.online = false; $0.pid = 0 }
        var planner = HealPlanner(policy: Self.policy)
        let actions = StorageFixture.proposals(planner.onPass(cluster.input))
        #expect(actions.count == 1, "\(actions)")
        #expect(actions.first?.kind == .restartBrick)
        #expect(actions.first?.node == "n2" && actions.first?.brick == dead && actions.first?.volume == "gv0")
        #expect(actions.first?.reason.contains("not running") == true)
    }

    @Test func aBrickIsNotRestartedWhenNoNodeCouldReadWhetherItRuns() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let key = StorageFixture.key("n3", "gv0")
        // n3's `volume status` failed (glusterd's lock was held): its bricks read as offline.
        cluster.nodes["n3"]!.facts.gluster.volumes[0].statusUnreadable = true
        for index in cluster.nodes["n3"]!.facts.gluster.volumes[0].bricks.indices { cluster.nodes["n3"]!.facts.gluster.volumes[0].bricks[index].online = false }
        var planner = HealPlanner(policy: Self.policy)
        #expect(planner.onPass(cluster.input).directives.isEmpty, "n1 and n2 read the status: the brick runs")
        cluster.volume("gv0") { $0.statusUnreadable = true }
        cluster.brick(key) { $0.online = false }
        #expect(planner.onPass(cluster.input).directives.isEmpty, "nobody knows: nothing is done")
    }

    @Test func aRestartIsNotRepeatedWhileOneIsPendingNorBeforeAFreshReportNorPastTheLimit() {
        // A report collected before the restart ended still shows the brick down; only a later one counts.
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let dead = StorageFixture.key("n2", "gv0")
        cluster.brick(dead) { $0.online = false }
        var planner = HealPlanner(policy: StoragePolicy(maxRestartAttempts: 2))
        let first = cluster.commit(planner.onPass(cluster.input))
        #expect(first == ["st/1"])
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "one restart at a time")
        cluster.finish("st/1", ok: true)
        cluster.now += 1_000
        let waiting = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(waiting).isEmpty && waiting.heldBack["gv0"]?.first?.contains("fresh report") == true)
        cluster.now += 15_000
        cluster.nodes["n2"]!.glusterCollectedAtUnixMs = cluster.now - 16_500
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "that report began before the restart ended")
        cluster.nodes["n2"]!.glusterCollectedAtUnixMs = cluster.now - 1_000
        #expect(cluster.commit(planner.onPass(cluster.input)) == ["st/2"])
        cluster.finish("st/2", ok: false, message: "still offline")
        cluster.now += 15_000
        let spent = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(spent).isEmpty)
        #expect(spent.heldBack["gv0"]?.first?.contains("after 2 restarts") == true, "\(spent.heldBack)")
    }

    @Test func aBrickOnAFailingDiskIsReplacedOntoASpareOutsideItsReplicaSetOnceTheFailureLasts() throws {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.nodes["n2"]!.facts.storage.disks[0].smartStatus = "failed"
        var planner = HealPlanner(policy: Self.policy)
        let early = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(early).isEmpty, "not before replaceAfter")
        #expect(early.heldBack["gv0"]?.first?.contains("SMART reports disk sd0 on n2 failing") == true, "\(early.heldBack)")
        cluster.now += 60_000
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .replaceBrick)
        #expect(action.brick == StorageFixture.key("n2", "gv0") && action.newBrick == "n4.lan:/spare/s1")
        #expect(action.node == "n4", "the spare's node carries it out")
    }

    @Test func aSpareOnANodeThatHoldsABrickOfTheSameSetIsNeverUsed() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.readOnly = true }
        cluster.now += 60_000
        var planner = HealPlanner(policy: StoragePolicy(spareBricks: ["n1": ["/spare/s1"], "n3": ["/spare/s2"]], replaceAfterMs: 0))
        let plan = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(plan).isEmpty)
        #expect(plan.heldBack["gv0"]?.first?.contains("no spare brick") == true, "\(plan.heldBack)")
    }

    @Test func aBrickOfANodeFencedForGoodIsReplacedAndItsPendingActionAbandoned() throws {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.online = false }
        var planner = HealPlanner(policy: Self.policy)
        #expect(cluster.commit(planner.onPass(cluster.input)) == ["st/1"])
        cluster.fence("n2", since: cluster.now)
        let abandoned = planner.onPass(cluster.input)
        #expect(abandoned.directives.contains { if case .abandon("st/1", _) = $0 { true } else { false } })
        #expect(StorageFixture.proposals(abandoned).isEmpty, "fenced only just now")
        cluster.commit(abandoned)
        #expect(cluster.storage.actions["st/1"]?.state == .failed)
        cluster.now += 60_000
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .replaceBrick && action.brick == StorageFixture.key("n2", "gv0") && action.node == "n4")
    }

    @Test func noReplacementWhileAnotherBrickOfTheSameSetIsUnhealthyUnlessAnOperatorForces() throws {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.nodes["n2"]!.facts.storage.disks[0].ioErrors = 12
        cluster.status["n3"] = .down
        cluster.now += 60_000
        var planner = HealPlanner(policy: StoragePolicy(spareBricks: ["n4": ["/spare/s1"]], replaceAfterMs: 0))
        let plan = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(plan).isEmpty)
        #expect(plan.heldBack["gv0"]?.first?.contains("lose redundancy further") == true, "\(plan.heldBack)")
        let request = Specola_V1_StorageRequest.with {
            $0.volume = "gv0"
            $0.action = "replace-brick"
            $0.oldBrick = StorageFixture.key("n2", "gv0")
            $0.newBrick = "n4.lan:/spare/s1"
        }
        guard case .failure(let refusal) = planner.operatorRequest(request, by: "user/ops", cluster.input) else {
            Issue.record("an unforced replacement must be refused")
            return
        }
        #expect(refusal.code == .refused && refusal.description.contains("--force"))
        var forced = request
        forced.force = true
        let action = try planner.operatorRequest(forced, by: "user/ops", cluster.input).get()
        #expect(action.forced && action.node == "n4" && action.requestedBy == "user/ops")
    }

    @Test func aBrickHoldingTheOnlyCopyOfPendingHealsIsNotReplaced() {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.healPending = 40 }
        cluster.fence("n2", since: 0)
        cluster.now = 100_000
        var planner = HealPlanner(policy: StoragePolicy(spareBricks: ["n4": ["/spare/s1"]], replaceAfterMs: 0))
        let plan = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(plan).isEmpty)
        #expect(plan.heldBack["gv0"]?.first?.contains("only up-to-date copy of 40 entries") == true, "\(plan.heldBack)")
    }

    /// A failing brick still online whose heal count no summary gave may be the only good copy:
    /// unknown is not zero. Once a summary counts it, the replacement goes ahead.
    @Test func anOnlineBrickWithAnUnknownHealCountIsNotReplaced() throws {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.nodes["n2"]!.facts.storage.disks[0].smartStatus = "failed"
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.clearHealPending() }
        var planner = HealPlanner(policy: Self.policy)
        _ = planner.onPass(cluster.input)
        cluster.now += 60_000
        let plan = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(plan).isEmpty)
        #expect(plan.heldBack["gv0"]?.first?.contains("heal count is unknown") == true, "\(plan.heldBack)")
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.healPending = 0 }
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .replaceBrick && action.brick == StorageFixture.key("n2", "gv0"))
    }

    @Test func replacementsAreCappedAndTheHigherPriorityVolumeTakesTheSlot() {
        var cluster = StorageFixture(nodes: 4, volumes: ["archive": [["n1", "n2", "n3"]], "scratch": [["n1", "n2", "n3"]]])
        cluster.fence("n2", since: 0)
        cluster.now = 100_000
        var policy = StoragePolicy(spareBricks: ["n4": ["/spare/s1", "/spare/s2"]], maxConcurrentReplacements: 1, replaceAfterMs: 0)
        policy.volumes = ["archive": .init(priority: 10)]
        var planner = HealPlanner(policy: policy)
        let plan = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(plan).map(\.volume) == ["archive"])
        #expect(plan.heldBack["scratch"]?.first?.contains("replacement slot") == true, "\(plan.heldBack)")
        cluster.commit(plan)
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "the slot is taken until st/1 ends")
    }

    @Test func splitBrainFilesAreResolvedByTheVolumesPolicy() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.splitBrain = 2 }
        cluster.volume("gv0") { $0.splitBrainFiles = ["/a.txt", "/b.txt"] }
        for rule in [StoragePolicy.SplitBrainPolicy.latestMtime, .biggerFile, .sourceBrick] {
            var policy = StoragePolicy()
            policy.volumes = ["gv0": .init(splitBrain: rule, sourceBrick: rule == .sourceBrick ? StorageFixture.key("n3", "gv0") : "")]
            var planner = HealPlanner(policy: policy)
            let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
            #expect(action.kind == .resolveSplitBrain && action.splitBrainPolicy == rule.rawValue)
            #expect(action.files == ["/a.txt", "/b.txt"])
            #expect(action.sourceBrick == (rule == .sourceBrick ? StorageFixture.key("n3", "gv0") : ""))
        }
    }

    /// latest-mtime and bigger-file compare the copies gluster reaches: with one out of sight (its
    /// brick offline, its status unknown, or its node not ready) the newest copy may be that one,
    /// so the planner waits instead of making a stale copy the source.
    @Test func splitBrainWaitsWhileACopyIsOutOfSight() throws {
        for rule in [StoragePolicy.SplitBrainPolicy.latestMtime, .biggerFile, .sourceBrick] {
            var policy = StoragePolicy()
            policy.volumes = ["gv0": .init(splitBrain: rule, sourceBrick: rule == .sourceBrick ? StorageFixture.key("n1", "gv0") : "")]
            let offline: (inout StorageFixture) -> Void = { $0.brick(StorageFixture.key("n2", "gv0")) { $0.online = false } }
            let notReady: (inout StorageFixture) -> Void = { $0.status["n3"] = .down }
            for (name, hide) in [("offline brick", offline), ("node down", notReady)] {
                var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
                cluster.brick(StorageFixture.key("n1", "gv0")) { $0.splitBrain = 1 }
                cluster.volume("gv0") { $0.splitBrainFiles = ["/a.txt"] }
                hide(&cluster)
                var planner = HealPlanner(policy: policy)
                let plan = planner.onPass(cluster.input)
                #expect(!StorageFixture.proposals(plan).contains { $0.kind == .resolveSplitBrain }, "\(rule) \(name): \(plan.directives)")
                #expect(plan.heldBack["gv0"]?.contains { $0.contains("split-brain waits") && $0.contains("in sight") } == true,
                        "\(rule) \(name): \(plan.heldBack)")
            }
        }
    }

    @Test func manualSplitBrainChangesNothingAndItsAlertNamesEachFile() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.splitBrain = 2 }
        cluster.volume("gv0") { $0.splitBrainFiles = ["/a.txt", "/b.txt"] }
        var planner = HealPlanner(policy: StoragePolicy())
        let plan = planner.onPass(cluster.input)
        #expect(plan.directives.isEmpty)
        #expect(plan.heldBack["gv0"] == ["2 file(s) in split-brain wait for an operator (policy manual)"])
        var evaluator = AlertRuleEvaluator()
        var book = AlertBook()
        let changes = cluster.evaluate(&evaluator, &book)
        let fired = try #require(changes.compactMap { change -> String? in
            if case .fire("SplitBrain", _, _, _, let description, _) = change { description } else { nil }
        }.first)
        #expect(fired.contains("/a.txt") && fired.contains("/b.txt") && fired.contains("policy manual"), "\(fired)")
    }

    @Test func anUnknownVolumeOrBrickIsRefusedWithAdvice() {
        let cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let planner = HealPlanner(policy: Self.policy)
        let volume = planner.operatorRequest(.with { $0.volume = "nope"; $0.action = "heal" }, by: "user/ops", cluster.input)
        guard case .failure(let refusal) = volume else { Issue.record("unknown volume accepted"); return }
        #expect(refusal.code == .unknownVolume && refusal.description.contains("specola volumes") && refusal.description.contains("gv0"))
        let brick = planner.operatorRequest(.with {
            $0.volume = "gv0"; $0.action = "replace-brick"; $0.oldBrick = "n9.lan:/x"; $0.newBrick = "n3.lan:/spare"
        }, by: "user/ops", cluster.input)
        guard case .failure(let refusal) = brick else { Issue.record("unknown brick accepted"); return }
        #expect(refusal.code == .unknownBrick && refusal.description.contains(StorageFixture.key("n1", "gv0")))
    }

    @Test func aHealRequestRunsOnAReadyNodeHostingABrick() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.status["n1"] = .down
        let action = try HealPlanner(policy: Self.policy)
            .operatorRequest(.with { $0.volume = "gv0"; $0.action = "heal"; $0.full = true }, by: "user/ops", cluster.input).get()
        #expect(action.kind == .heal && action.full && action.node == "n2")
    }

    @Test func nothingIsProposedWhenRepairIsTurnedOff() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.online = false }
        var planner = HealPlanner(policy: StoragePolicy(enabled: false))
        #expect(planner.onPass(cluster.input).directives.isEmpty)
    }
}

extension StorageFixture {
    /// A replicated state holding these nodes, actions and alerts, for the alert rules.
    func state(alerts: AlertBook = AlertBook()) -> ClusterState {
        var snapshot = Specola_V1_ClusterSnapshot()
        snapshot.nodes = nodes.values.sorted { $0.name < $1.name }
        storage.write(into: &snapshot)
        snapshot.alertBook = .init(alerts)
        return try! ClusterState(snapshot: snapshot)
    }

    /// One rule pass over the state with `book`, whose changes are applied to `book`.
    func evaluate(_ evaluator: inout AlertRuleEvaluator, _ book: inout AlertBook) -> [AlertChange] {
        let changes = evaluator.evaluate(AlertRuleInput(state: state(alerts: book), status: status, lastContactUnixMs: [:], nowUnixMs: now))
        for change in changes { _ = book.apply(change) }
        return changes
    }
}
