import Foundation
import SpecolaProtocol
import Testing

@testable import SpecolaCLI
import CooperativePoolWatch

/// `specola volumes` assembles the volumes from every node's GlusterFS section.
@Suite(.watchesCooperativePool) struct VolumesCommandTests {
    static func brick(_ host: String, local: Bool, online: Bool, pending: UInt64?, pid: Int32 = 0) -> Specola_V1_GlusterBrick {
        .with {
            $0.host = host
            $0.path = "/bricks/gv0"
            $0.local = local
            $0.online = online
            $0.pid = pid
            if let pending { $0.healPending = pending; $0.splitBrain = 0; $0.possiblyHealing = 0 }
        }
    }

    /// n1 and n2 run gluster (n2's brick is down), n3 has none, n4 runs an agent without the section.
    static func nodes() -> [Specola_V1_Node] {
        func node(_ name: String, _ gluster: Specola_V1_GlusterSection?) -> Specola_V1_Node {
            .with { node in
                node.name = name
                node.shownStatus = "ready"
                if let gluster { node.facts.gluster = gluster }
            }
        }
        func volume(localIndex: Int, pids: [Int32]) -> Specola_V1_GlusterVolume {
            .with {
                $0.name = "gv0"
                $0.type = "Replicate"
                $0.status = "Started"
                $0.replicaCount = 2
                $0.options = ["cluster.quorum-type": "auto"]
                $0.bricks = [
                    brick("n1", local: localIndex == 0, online: true, pending: 7, pid: localIndex == 0 ? pids[0] : 0),
                    brick("n2", local: localIndex == 1, online: false, pending: nil),
                ]
            }
        }
        return [
            node("n2", .with { $0.available = true; $0.volumes = [volume(localIndex: 1, pids: [0])] }),
            node("n1", .with { $0.available = true; $0.volumes = [volume(localIndex: 0, pids: [4242])] }),
            node("n3", .with { $0.available = false; $0.reason = "no GlusterFS: gluster not found"; $0.unavailableCause = .notInstalled }),
            node("n4", nil),
        ]
    }

    @Test func eachBrickComesFromTheNodeThatHostsIt() throws {
        let list = GlusterOverview.build(from: Self.nodes())
        #expect(list.volumes.count == 1)
        let view = try #require(list.volumes.first)
        #expect(view.volume.name == "gv0" && view.volume.bricks.isEmpty)
        #expect(view.bricks.map(\.node) == ["n1", "n2"])
        #expect(view.bricks[0].brick.pid == 4242)
        #expect(view.bricks[0].brick.healPending == 7)
        #expect(!view.bricks[1].brick.online && !view.bricks[1].brick.hasHealPending)
        #expect(list.nodes.map(\.name) == ["n1", "n2", "n3", "n4"])
        #expect(list.nodes.map(\.available) == [true, true, false, false])
        #expect(list.nodes[3].reason == "no GlusterFS report from this node's agent")
    }

    @Test func theTableShowsOfflineBricksBacklogAndNodesWithoutGluster() {
        let text = GlusterOverview.render(GlusterOverview.build(from: Self.nodes()))
        let lines = text.split(separator: "\n").map(String.init)
        let volumeLine = lines.first { $0.hasPrefix("gv0 ") }
        #expect(volumeLine?.contains("1/2") == true, "\(text)")
        #expect(lines.contains { $0.contains("n2:/bricks/gv0") && $0.contains(" NO ") }, "\(text)")
        #expect(lines.contains { $0.contains("n1:/bricks/gv0") && $0.contains("4242") && $0.contains(" 7 ") }, "\(text)")
        #expect(text.contains("n3 (ready): no GlusterFS: gluster not found"))
        #expect(text.contains("n4 (ready): no GlusterFS report from this node's agent"))
    }

    @Test func jsonNamesBricksWithTheirNodes() throws {
        let json = try GlusterOverview.build(from: Self.nodes()).jsonString()
        #expect(json.contains("\"node\":\"n1\""), "\(json)")
        #expect(json.contains("\"healPending\":\"7\""), "\(json)")
    }

    @Test func volumeShowNamesThePolicyAndWhoSetIt() {
        let view = Specola_V1_GlusterVolumeView.with { $0.volume.name = "gv0"; $0.volume.status = "Started" }
        var detail = Specola_V1_VolumeDetail.with {
            $0.name = "gv0"
            $0.policy = .with { $0.volume = "gv0"; $0.splitBrain = "source-brick"; $0.sourceBrick = "h1:/b"; $0.priority = 5; $0.shdMaxThreads = 4; $0.setBy = "user/ops" }
        }
        let text = VolumeShowCommand.render(view, detail, nowUnixMs: 0)
        #expect(text.contains("Policy (set by user/ops)"), "\(text)")
        #expect(text.contains("split-brain source-brick (source h1:/b), priority 5, cluster.shd-max-threads 4"), "\(text)")
        detail.policy = .with { $0.splitBrain = "manual"; $0.setBy = "config" }
        #expect(VolumeShowCommand.render(view, detail, nowUnixMs: 0).contains("Policy (coordinator config)"))
    }
}
