import CooperativePoolWatch
import SpecolaWire
import Testing
@testable import SpecolaClusterCore

/// The heal planner's throttles and the operator's volume policy, one rule per test.
@Suite(.watchesCooperativePool) struct HealPlannerThrottleTests {
    static let gv0 = ["gv0": [["n1", "n2", "n3"]]]

    @Test func aSpareTheAgentRefusedIsNotPickedAgainAndTheNextOneIs() throws {
        var cluster = StorageFixture(nodes: 4, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.readOnly = true }
        var planner = HealPlanner(policy: StoragePolicy(spareBricks: ["n4": ["/missing/b", "/spare/s2"]], replaceAfterMs: 0))
        let first = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(first.newBrick == "n4.lan:/missing/b")
        let id = try #require(cluster.commit(planner.onPass(cluster.input)).first)
        let node = cluster.storage.actions[id]!.node
        cluster.storage.apply(.with { $0.actionID = id; $0.ok = false; $0.message = "spare brick directory /missing does not exist"; $0.spareUnusable = true },
                              from: node, at: cluster.now)
        #expect(cluster.storage.actions[id]!.spareUnusable)
        let second = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(second.newBrick == "n4.lan:/spare/s2", "\(second)")

        // With only the refused spare left, the planner says so instead of trying it again.
        var alone = HealPlanner(policy: StoragePolicy(spareBricks: ["n4": ["/missing/b"]], replaceAfterMs: 0))
        let held = alone.onPass(cluster.input)
        #expect(StorageFixture.proposals(held).isEmpty)
        #expect(held.heldBack["gv0"]?.first?.contains("refused earlier: n4.lan:/missing/b") == true, "\(held.heldBack)")
    }

    @Test func aFinishedReplacementHoldsItsSlotUntilItsHealDrains() throws {
        var cluster = StorageFixture(nodes: 5, volumes: ["a": [["n1", "n2", "n3"]], "b": [["n1", "n2", "n3"]]])
        cluster.brick(StorageFixture.key("n2", "a")) { $0.readOnly = true }
        var planner = HealPlanner(policy: StoragePolicy(spareBricks: ["n4": ["/spare/s1"], "n5": ["/spare/s2"]], maxConcurrentReplacements: 1, replaceAfterMs: 0))
        let id = try #require(cluster.commit(planner.onPass(cluster.input)).first)
        let action = cluster.storage.actions[id]!
        // The replacement took effect: n4's spare is a brick of `a`, still healing.
        cluster.brick(StorageFixture.key("n2", "a")) {
            $0.host = "n4.lan"; $0.path = "/spare/s1"; $0.peerUuid = "uuid-n4"; $0.readOnly = false; $0.healPending = 0
        }
        cluster.brick(StorageFixture.key("n1", "a")) { $0.healPending = 300 }
        cluster.finish(action.id, ok: true)
        cluster.brick(StorageFixture.key("n2", "b")) { $0.readOnly = true }
        let busy = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(busy).isEmpty)
        #expect(busy.heldBack["b"]?.first?.contains("replacement slot") == true, "\(busy.heldBack)")
        cluster.brick(StorageFixture.key("n1", "a")) { $0.healPending = 0 }
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).map(\.volume) == ["b"], "the heal drained: the slot is free")
    }

    @Test func theHealThrottleIsSetOnceToTheVolumePolicysThreads() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.volume("gv0") { $0.options["cluster.shd-max-threads"] = "1" }
        var planner = HealPlanner(policy: StoragePolicy(volumes: ["gv0": .init(shdMaxThreads: 4)]))
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .setOption && action.optionName == "cluster.shd-max-threads" && action.optionValue == "4")
        #expect(cluster.commit(planner.onPass(cluster.input)).count == 1)
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "one at a time")
        cluster.finish("st/1", ok: true)
        cluster.volume("gv0") { $0.options["cluster.shd-max-threads"] = "4" }
        cluster.now += 60_000
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "already as wanted")
        var untouched = HealPlanner(policy: StoragePolicy())
        #expect(StorageFixture.proposals(untouched.onPass(cluster.input)).isEmpty, "0 leaves gluster's value")
    }

    @Test func healsAreServedAtNormalPriorityUnlessThePolicySaysLeast() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        var planner = HealPlanner(policy: StoragePolicy())
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "an agent that does not report the option: left alone")
        cluster.volume("gv0") { $0.options["performance.enable-least-priority"] = "on" }
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .setOption && action.optionName == "performance.enable-least-priority" && action.optionValue == "off")
        #expect(action.reason.contains("(now on)"), "\(action.reason)")
        cluster.volume("gv0") { $0.options["performance.enable-least-priority"] = "false" }
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "gluster's spelling of off")
        var yielding = HealPlanner(policy: StoragePolicy(volumes: ["gv0": .init(healPriority: .least)]))
        let back = try #require(StorageFixture.proposals(yielding.onPass(cluster.input)).first)
        #expect(back.optionName == "performance.enable-least-priority" && back.optionValue == "on")
    }

    @Test func aPolicyCommittedWithoutAHealPriorityHealsAtNormalPriority() {
        #expect(StoragePolicy.VolumePolicy(Specola_V1_VolumeStoragePolicy.with { $0.splitBrain = "manual" }).healPriority == .normal)
        #expect(StoragePolicy.VolumePolicy(Specola_V1_VolumeStoragePolicy.with { $0.healPriority = "least" }).healPriority == .least)
    }

    @Test func aSplitBrainResolutionThatKeepsFailingIsLeftToAnOperator() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.splitBrain = 1 }
        cluster.volume("gv0") { $0.splitBrainFiles = ["/f"] }
        var planner = HealPlanner(policy: StoragePolicy(volumes: ["gv0": .init(splitBrain: .latestMtime)], restartRetryAfterMs: 1_000, maxRestartAttempts: 2))
        for attempt in 1...2 {
            let ids = cluster.commit(planner.onPass(cluster.input))
            #expect(ids.count == 1, "attempt \(attempt)")
            cluster.finish(ids[0], ok: false, message: "No difference in mtime")
            cluster.now += 2_000
        }
        let spent = planner.onPass(cluster.input)
        #expect(StorageFixture.proposals(spent).isEmpty)
        #expect(spent.heldBack["gv0"]?.contains { $0.contains("2 attempts failed") && $0.contains("No difference in mtime") } == true, "\(spent.heldBack)")
    }

    @Test func anOperatorsPolicyOverridesTheConfigAndSurvivesASnapshot() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.splitBrain = 1 }
        cluster.volume("gv0") { $0.splitBrainFiles = ["/f"] }
        var planner = HealPlanner(policy: StoragePolicy())
        #expect(StorageFixture.proposals(planner.onPass(cluster.input)).isEmpty, "config: manual")

        let request = Specola_V1_StorageRequest.with {
            $0.volume = "gv0"
            $0.action = "policy"
            $0.policy = .with { $0.splitBrain = "bigger-file"; $0.priority = 7 }
        }
        let policy = try planner.policyRequest(request, by: "user/ops", cluster.input).get()
        #expect(policy.volume == "gv0" && policy.setBy == "user/ops")
        #expect(cluster.storage.apply(.with { $0.setPolicy = policy }, at: cluster.now, nodes: cluster.nodes) == .done)
        let action = try #require(StorageFixture.proposals(planner.onPass(cluster.input)).first)
        #expect(action.kind == .resolveSplitBrain && action.splitBrainPolicy == "bigger-file")
        #expect(planner.policy.volume("gv0", in: cluster.storage).priority == 7)

        var snapshot = Specola_V1_ClusterSnapshot()
        cluster.storage.write(into: &snapshot)
        #expect(StorageBook(snapshot: snapshot).volumePolicies["gv0"]?.splitBrain == "bigger-file")
    }

    @Test func aBadPolicyIsRefusedWithAdvice() {
        let cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        let planner = HealPlanner(policy: StoragePolicy())
        func refusal(_ volume: String, _ change: (inout Specola_V1_VolumeStoragePolicy) -> Void) -> HealPlanner.Refusal? {
            var policy = Specola_V1_VolumeStoragePolicy.with { $0.splitBrain = "manual" }
            change(&policy)
            let request = Specola_V1_StorageRequest.with { $0.volume = volume; $0.action = "policy"; $0.policy = policy }
            if case .failure(let refusal) = planner.policyRequest(request, by: "user/ops", cluster.input) { return refusal }
            return nil
        }
        #expect(refusal("nope") { _ in }?.code == .unknownVolume)
        #expect(refusal("gv0") { $0.splitBrain = "source-brick"; $0.sourceBrick = "x:/y" }?.code == .unknownBrick)
        #expect(refusal("gv0") { $0.splitBrain = "source-brick" }?.description.contains("needs the source brick") == true)
        #expect(refusal("gv0") { $0.splitBrain = "coin-toss" }?.description.contains("latest-mtime") == true)
        #expect(refusal("gv0") { $0.shdMaxThreads = 65 }?.description.contains("at most 64") == true)
        #expect(refusal("gv0") { $0.healPriority = "urgent" }?.description.contains("normal, least") == true)
        #expect(refusal("gv0") { $0.splitBrain = "latest-mtime"; $0.shdMaxThreads = 8; $0.healPriority = "least" } == nil)
    }
}
