import SpecolaJobs
import SpecolaWire
@testable import SpecolaClusterCore

/// A small cluster for the storage deciders: nodes n1...nN, each running glusterd (peer
/// `uuid-nX`, host `nX.lan`), and volumes whose bricks (`nX.lan:/bricks/VOL`) every node
/// reports, its own marked local. Changes to a brick apply to every node's view of it.
struct StorageFixture {
    var nodes: [String: Specola_V1_Node] = [:]
    var status: [String: NodeStatus] = [:]
    var storage = StorageBook()
    var now: Int64 = 1_000_000

    /// `volumes`: name → replica sets, each a list of node names.
    init(nodes count: Int, volumes: [String: [[String]]]) {
        let names = (1...count).map { "n\($0)" }
        for name in names {
            var node = Specola_V1_Node.with {
                $0.name = name
                $0.committedStatus = .ready
                $0.facts.gluster.available = true
                $0.facts.gluster.localPeerUuid = "uuid-\(name)"
                $0.facts.gluster.peers = names.map { peer in
                    .with { $0.uuid = "uuid-\(peer)"; $0.hostname = peer == name ? "localhost" : "\(peer).lan"; $0.local = peer == name; $0.connected = true }
                }
            }
            for (volume, sets) in volumes.sorted(by: { $0.key < $1.key }) {
                node.facts.gluster.volumes.append(.with {
                    $0.name = volume
                    $0.type = "Replicate"
                    $0.status = "Started"
                    $0.replicaCount = UInt32(sets.first?.count ?? 0)
                    for (set, members) in sets.enumerated() {
                        for member in members {
                            $0.bricks.append(.with {
                                $0.host = "\(member).lan"
                                $0.path = "/bricks/\(volume)\(sets.count > 1 ? "-\(set)" : "")"
                                $0.peerUuid = "uuid-\(member)"
                                $0.replicaSet = UInt32(set)
                                $0.local = member == name
                                $0.online = true
                                $0.healPending = 0
                                $0.splitBrain = 0
                                if member == name {
                                    $0.pid = 4000 + Int32(set)
                                    $0.disks = ["sd\(set)"]
                                }
                            })
                        }
                    }
                })
            }
            node.facts.storage.disks = (0..<4).map { index in .with { $0.name = "sd\(index)"; $0.smartStatus = "passed" } }
            nodes[name] = node
            status[name] = .ready
        }
    }

    static func key(_ node: String, _ volume: String, set: Int? = nil) -> String {
        "\(node).lan:/bricks/\(volume)\(set.map { "-\($0)" } ?? "")"
    }

    /// Changes brick HOST:PATH in every node's report.
    mutating func brick(_ key: String, _ change: (inout Specola_V1_GlusterBrick) -> Void) {
        for name in nodes.keys {
            for v in nodes[name]!.facts.gluster.volumes.indices {
                for b in nodes[name]!.facts.gluster.volumes[v].bricks.indices
                where StorageView.key(nodes[name]!.facts.gluster.volumes[v].bricks[b]) == key {
                    change(&nodes[name]!.facts.gluster.volumes[v].bricks[b])
                }
            }
        }
    }

    mutating func volume(_ name: String, _ change: (inout Specola_V1_GlusterVolume) -> Void) {
        for node in nodes.keys {
            for v in nodes[node]!.facts.gluster.volumes.indices where nodes[node]!.facts.gluster.volumes[v].name == name {
                change(&nodes[node]!.facts.gluster.volumes[v])
            }
        }
    }

    mutating func fence(_ node: String, since: Int64) {
        nodes[node]!.committedStatus = .fenced
        nodes[node]!.statusSinceUnixMs = since
        status[node] = .fenced
    }

    var input: HealPlanner.Input { HealPlanner.Input(nodes: nodes, status: status, storage: storage, nowUnixMs: now) }

    /// Commits what the planner decided, as the controller would; returns the new actions' ids.
    @discardableResult
    mutating func commit(_ plan: HealPlanner.Plan) -> [String] {
        var ids: [String] = []
        for directive in plan.directives {
            switch directive {
            case .propose(let action):
                let command = Specola_V1_StorageCommand.with { $0.add = action }
                if case .storageAction(let id) = storage.apply(command, at: now, nodes: nodes) { ids.append(id) }
            case .abandon(let id, let reason):
                _ = storage.apply(.with { $0.abandon = .with { $0.id = id; $0.reason = reason } }, at: now, nodes: nodes)
            }
        }
        return ids
    }

    mutating func finish(_ id: String, ok: Bool, message: String = "") {
        let node = storage.actions[id]!.node
        storage.apply(.with { $0.actionID = id; $0.ok = ok; $0.message = message; $0.atUnixMs = now }, from: node, at: now)
    }

    static func proposals(_ plan: HealPlanner.Plan) -> [Specola_V1_StorageAction] {
        plan.directives.compactMap { if case .propose(let action) = $0 { action } else { nil } }
    }
}
