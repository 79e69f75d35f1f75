import CooperativePoolWatch
import SpecolaAlerting
import SpecolaWire
import Testing
@testable import SpecolaAlerting
@testable import SpecolaClusterCore

/// Storage actions in the replicated state, the fencing hold and the storage alerts.
@Suite(.watchesCooperativePool) struct StorageBookTests {
    static let gv0 = ["gv0": [["n1", "n2", "n3"]]]

    static func restart(_ node: String, _ brick: String) -> Specola_V1_StorageCommand {
        .with { $0.add = .with { $0.kind = .restartBrick; $0.volume = "gv0"; $0.node = node; $0.brick = brick } }
    }

    @Test func anActionGetsAnIdAndASecondOneAboutTheSameBrickIsRefusedUntilItEnds() {
        let cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        var book = StorageBook()
        let brick = StorageFixture.key("n2", "gv0")
        #expect(book.apply(Self.restart("n2", brick), at: 10, nodes: cluster.nodes) == .storageAction(id: "st/1"))
        guard case .rejected(let why) = book.apply(Self.restart("n2", brick), at: 11, nodes: cluster.nodes) else {
            Issue.record("a second restart of the same brick was accepted")
            return
        }
        #expect(why.contains("st/1"))
        book.apply(.with { $0.actionID = "st/1"; $0.ok = true; $0.message = "restarted" }, from: "n2", at: 12)
        #expect(book.actions["st/1"]?.state == .succeeded && book.actions["st/1"]?.finishedAtUnixMs == 12)
        #expect(book.apply(Self.restart("n2", brick), at: 13, nodes: cluster.nodes) == .storageAction(id: "st/2"))
    }

    @Test func onlyTheNodeAnActionWasSentToClosesItAndOnlyOnce() {
        let cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        var book = StorageBook()
        _ = book.apply(Self.restart("n2", StorageFixture.key("n2", "gv0")), at: 10, nodes: cluster.nodes)
        book.apply(.with { $0.actionID = "st/1"; $0.ok = false; $0.message = "from n1" }, from: "n1", at: 11)
        #expect(book.actions["st/1"]?.state == .pending)
        book.apply(.with { $0.actionID = "st/1"; $0.ok = true; $0.message = "done" }, from: "n2", at: 12)
        book.apply(.with { $0.actionID = "st/1"; $0.ok = false; $0.message = "again" }, from: "n2", at: 13)
        #expect(book.actions["st/1"]?.state == .succeeded && book.actions["st/1"]?.message == "done")
        #expect(book.dueInstructions().isEmpty, "a finished action is not sent again")
    }

    @Test func pendingActionsAreInstructionsToTheirNodeAndSurviveASnapshot() throws {
        let cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        var state = ClusterState()
        for node in cluster.nodes.values.sorted(by: { $0.name < $1.name }) {
            _ = state.apply(.registerNode(name: node.name, address: "", agentVersion: "", labels: [:], autoAccept: true, atUnixMs: 1))
        }
        let action = Specola_V1_StorageAction.with { $0.kind = .heal; $0.volume = "gv0"; $0.node = "n3"; $0.full = true }
        #expect(state.apply(.storage(add: action, atUnixMs: 5)) == .storageAction(id: "st/1"))
        let due = state.storage.dueInstructions()
        #expect(due.map(\.node) == ["n3"] && due.first?.instruction.id == "st/1" && due.first?.instruction.storageAction.full == true)
        let restored = try ClusterState(snapshot: state.snapshot())
        #expect(restored.storage.actions == state.storage.actions && restored.storage.sequence == 1)
        #expect(restored.snapshot() == state.snapshot())
    }

    @Test func onlyAFencedNodesActionIsAbandoned() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        var book = StorageBook()
        _ = book.apply(Self.restart("n2", StorageFixture.key("n2", "gv0")), at: 10, nodes: cluster.nodes)
        let abandon = Specola_V1_StorageCommand.with { $0.abandon = .with { $0.id = "st/1"; $0.reason = "fenced" } }
        guard case .rejected = book.apply(abandon, at: 11, nodes: cluster.nodes) else {
            Issue.record("the action of a live node was abandoned")
            return
        }
        cluster.fence("n2", since: 11)
        #expect(book.apply(abandon, at: 12, nodes: cluster.nodes) == .done)
        #expect(book.actions["st/1"]?.state == .failed)
    }

    @Test func theOnlyUpToDateCopyOfPendingHealsIsNamed() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.healPending = 40 }
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.online = false; $0.clearHealPending() }
        #expect(StorageView.soleHealSources(cluster.nodes).keys.sorted() == ["n1"])
        cluster.brick(StorageFixture.key("n3", "gv0")) { $0.healPending = 40 }
        #expect(StorageView.soleHealSources(cluster.nodes).isEmpty, "two bricks hold the data")
    }

    @Test func healCountsComeFromOneAgentsReportWhichTheViewNames() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        // Each agent counted at another moment: n1 and n3 saw 40 entries on n1's brick, n2 already 0.
        for node in ["n1", "n2", "n3"] {
            for v in cluster.nodes[node]!.facts.gluster.volumes.indices {
                for b in cluster.nodes[node]!.facts.gluster.volumes[v].bricks.indices {
                    let onN1 = cluster.nodes[node]!.facts.gluster.volumes[v].bricks[b].host == "n1.lan"
                    cluster.nodes[node]!.facts.gluster.volumes[v].bricks[b].healPending = onN1 && node != "n2" ? 40 : 0
                }
            }
            cluster.nodes[node]!.glusterCollectedAtUnixMs = node == "n2" ? 2_000 : 1_000
        }
        var volume = try #require(StorageView.volumes(cluster.nodes).first)
        #expect(volume.healCountsFrom == "n2", "the latest report counts every brick")
        #expect(volume.bricks.map(\.brick.healPending) == [0, 0, 0], "no mix of reports: n1's own older count is not used")
        #expect(StorageView.volumeList(Array(cluster.nodes.values)).volumes.first?.healCountsFrom == "n2")

        // A report that counts more bricks wins over a later one that counts fewer.
        for b in cluster.nodes["n2"]!.facts.gluster.volumes[0].bricks.indices where b > 0 {
            cluster.nodes["n2"]!.facts.gluster.volumes[0].bricks[b].clearHealPending()
        }
        volume = try #require(StorageView.volumes(cluster.nodes).first)
        #expect(volume.healCountsFrom == "n1" && volume.bricks[0].brick.healPending == 40)
        #expect(volume.bricks[1].brick.hasHealPending && volume.bricks[2].brick.hasHealPending)

        // No report counts anything: every count is unknown, and no node is named the sole source.
        for node in ["n1", "n2", "n3"] {
            for b in cluster.nodes[node]!.facts.gluster.volumes[0].bricks.indices {
                cluster.nodes[node]!.facts.gluster.volumes[0].bricks[b].clearHealPending()
            }
        }
        volume = try #require(StorageView.volumes(cluster.nodes).first)
        #expect(volume.healCountsFrom.isEmpty && volume.bricks.allSatisfy { !$0.brick.hasHealPending })
        #expect(StorageView.soleHealSources(cluster.nodes).isEmpty)
    }

    @Test func fencingDoesNotPowerOffTheSoleHealSourceWhileItsBMCSaysOn() {
        let bmc = HostPort(host: "127.0.1.21", port: 9623)
        var ladder = FailureLadder(settings: .init(policy: FailureLadderTests.policy, bmcAddresses: ["n1": bmc], bmcCredentials: true))
        var node = FailureLadderTests.node("n1", .fencing, since: 10_000, lastSeen: 9_000)
        node.facts.bmc.power = .on
        let other = FailureLadderTests.node("n2", lastSeen: 100_000)
        let held = [FailureLadder.NodeView(node: node, lastContactUnixMs: 9_000, soleHealSource: "brick X holds 40 entries"),
                    FailureLadder.NodeView(node: other, lastContactUnixMs: 100_000)]
        let directives = ladder.onPass(held, leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(!directives.contains(.powerOff(node: "n1", bmc: bmc)), "\(directives)")
        #expect(directives.contains { if case .raise(let alert) = $0 { alert.rule == BuiltinRule.fencingHeldForStorage } else { false } })
        #expect(ladder.onPass(held, leaderSinceUnixMs: 0, nowUnixMs: 20_250).isEmpty, "raised once")
        var off = held
        off[0].node.facts.bmc.power = .off
        #expect(ladder.onPass(off, leaderSinceUnixMs: 0, nowUnixMs: 20_500).contains(.powerOff(node: "n1", bmc: bmc)),
                "a BMC that already reports off loses nothing")
    }

    @Test func anOperatorFenceOfTheSoleHealSourceNeedsForce() {
        let ladder = FailureLadder(settings: .init(policy: FailureLadderTests.policy))
        let nodes = [FailureLadderTests.node("n1"), FailureLadderTests.node("n2"), FailureLadderTests.node("n3")]
        let sources = ["n1": "brick X holds 40 entries"]
        guard case .failure(let refusal) = ladder.operatorFence("n1", nodes: nodes, by: "user/ops", force: false, soleHealSources: sources) else {
            Issue.record("fenced the sole heal source without --force")
            return
        }
        #expect(refusal.description.contains("--force") && refusal.description.contains("brick X"))
        #expect((try? ladder.operatorFence("n1", nodes: nodes, by: "user/ops", force: true, soleHealSources: sources).get()) != nil)
    }

    @Test func aDownBrickAlertCarriesItsNodeSoNodeDownMutesIt() throws {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n2", "gv0")) { $0.online = false }
        var evaluator = AlertRuleEvaluator()
        var book = AlertBook()
        _ = cluster.evaluate(&evaluator, &book)
        let brickDown = try #require(book.alerts.values.first { $0.rule == BuiltinRule.brickDown })
        #expect(brickDown.labels["node"] == "n2" && brickDown.labels["volume"] == "gv0")
        #expect(book.alerts.values.contains { $0.rule == BuiltinRule.volumeDegraded && $0.labels["node"] == nil },
                "VolumeDegraded is about the volume, so no node mutes it")
        _ = book.apply(BuiltinAlert.nodeDown(node: "n2", reason: "silent").fire(atUnixMs: cluster.now))
        let nodeDown = try #require(book.alerts.values.first { $0.rule == BuiltinRule.nodeDown })
        #expect(InhibitRule.nodeDownMutesItsAlerts.inhibits(brickDown, by: nodeDown))
    }

    @Test func healBacklogFiresOnlyAfterItLastedAndResolvesWhenItDrains() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.healPending = 5_000 }
        var settings = BuiltinRuleSettings()
        settings.storage.healBacklogThreshold = 1_000
        settings.storage.healBacklogForMs = 60_000
        var evaluator = AlertRuleEvaluator(settings: settings)
        var book = AlertBook()
        _ = cluster.evaluate(&evaluator, &book)
        #expect(!book.alerts.values.contains { $0.rule == BuiltinRule.healBacklog })
        cluster.now += 60_000
        _ = cluster.evaluate(&evaluator, &book)
        #expect(book.alerts.values.contains { $0.rule == BuiltinRule.healBacklog && $0.status == .firing })
        cluster.brick(StorageFixture.key("n1", "gv0")) { $0.healPending = 0 }
        _ = cluster.evaluate(&evaluator, &book)
        #expect(book.alerts.values.contains { $0.rule == BuiltinRule.healBacklog && $0.status == .resolved })
    }

    @Test func aFailedActionAlertsOnceAndAFailingDiskAlertsByNode() {
        var cluster = StorageFixture(nodes: 3, volumes: Self.gv0)
        cluster.nodes["n3"]!.facts.storage.disks[1].smartStatus = "failed"
        _ = cluster.storage.apply(Self.restart("n2", StorageFixture.key("n2", "gv0")), at: cluster.now, nodes: cluster.nodes)
        cluster.finish("st/1", ok: false, message: "brick still offline")
        var evaluator = AlertRuleEvaluator()
        var book = AlertBook()
        _ = cluster.evaluate(&evaluator, &book)
        #expect(cluster.evaluate(&evaluator, &book).isEmpty, "a quiet second pass commits nothing")
        let failed = book.alerts.values.filter { $0.rule == BuiltinRule.storageActionFailed }
        #expect(failed.count == 1 && failed.first?.labels["action"] == "st/1" && failed.first?.description == "brick still offline")
        #expect(book.alerts.values.contains { $0.rule == BuiltinRule.diskFailing && $0.labels["node"] == "n3" && $0.labels["disk"] == "sd1" })
    }
}
