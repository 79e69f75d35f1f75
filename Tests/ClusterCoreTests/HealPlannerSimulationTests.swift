import CooperativePoolWatch
import SpecolaWire
import SeededRandom
import Testing
@testable import SpecolaClusterCore

/// The heal planner over random brick, disk and node failures in time, with agents that carry
/// out (or fail) its actions and leaders that change (a new planner, no memory). Replays from
/// its seed. After every pass: a replacement never starts while another brick of the same set is
/// unhealthy, never lands on a node that already holds the set, never exceeds the cap; the
/// state never has to refuse a duplicate; each action is carried out at most once.
@Suite(.watchesCooperativePool, .cpuBoundOffThePool) struct HealPlannerSimulationTests {
    static let volumes = ["gv0": [["n1", "n2", "n3"]], "gv1": [["n2", "n3", "n4"], ["n5", "n6", "n1"]]]
    static let nodeNames = (1...6).map { "n\($0)" }

    @Test(arguments: [1, 7, 42, 1234, 99_991] as [UInt64])
    func randomFailuresNeverBreakTheRedundancyRules(seed: UInt64) async {
        var random = SeededRandom(seed: seed)
        var cluster = StorageFixture(nodes: 6, volumes: Self.volumes)
        let policy = StoragePolicy(
            spareBricks: Dictionary(uniqueKeysWithValues: Self.nodeNames.map { ($0, ["/spare/a", "/spare/b"]) }),
            maxConcurrentReplacements: 2, volumes: ["gv1": .init(priority: 3)], replaceAfterMs: 10_000, restartRetryAfterMs: 5_000)
        var planner = HealPlanner(policy: policy)
        var carriedOut: Set<String> = []
        var replacements = 0
        for step in 0..<400 {
            cluster.now += 2_500
            Self.disturb(&cluster, &random)
            if random.next() % 50 == 0 { planner = HealPlanner(policy: policy) }

            let input = cluster.input
            let volumes = StorageView.volumes(input.nodes)
            let plan = planner.onPass(input)
            for action in StorageFixture.proposals(plan) where action.kind == .replaceBrick {
                let volume = volumes.first { $0.name == action.volume }!
                let set = volume.replicaSet(action.replicaSet)
                let others = set.filter { $0.key != action.brick }
                let unhealthy = others.filter { !HealPlanner.health(of: $0, nodes: input.nodes, status: input.status).isHealthy }
                #expect(unhealthy.isEmpty, "seed \(seed) step \(step): \(action.brick) replaced while \(unhealthy.map(\.key)) unhealthy")
                #expect(!set.contains { $0.node == action.node }, "seed \(seed) step \(step): spare on \(action.node), which holds set \(action.replicaSet)")
            }
            let before = cluster.storage.actions.count
            let ids = cluster.commit(plan)
            #expect(ids.count == StorageFixture.proposals(plan).count,
                    "seed \(seed) step \(step): the state refused a proposal as a duplicate: \(StorageFixture.proposals(plan).map(StorageBook.describe))")
            #expect(cluster.storage.actions.count >= before)
            let running = HealPlanner.replacementsRunning(cluster.storage, volumes: StorageView.volumes(cluster.nodes))
            #expect(cluster.storage.pending.filter { $0.kind == .replaceBrick }.count <= policy.maxConcurrentReplacements,
                    "seed \(seed) step \(step): \(running) replacements at once")

            // Agents on ready nodes finish some pending actions, each id once.
            for action in cluster.storage.pending where cluster.status[action.node] == .ready && random.next() % 3 == 0 {
                #expect(carriedOut.insert(action.id).inserted, "seed \(seed): \(action.id) carried out twice")
                let ok = random.next() % 5 != 0
                if ok { Self.effect(of: action, on: &cluster) }
                if ok && action.kind == .replaceBrick { replacements += 1 }
                cluster.finish(action.id, ok: ok, message: ok ? "done" : "simulated failure")
                cluster.nodes[action.node]!.glusterCollectedAtUnixMs = cluster.now + 1
            }
        }
        #expect(replacements > 0, "seed \(seed): the simulation never exercised a replacement")
    }

    /// One random event: a brick process dies, a disk fails or recovers, a node goes down,
    /// is fenced, or comes back.
    static func disturb(_ cluster: inout StorageFixture, _ random: inout SeededRandom) {
        let bricks = StorageView.volumes(cluster.nodes).flatMap(\.bricks)
        guard !bricks.isEmpty else { return }
        let brick = bricks[Int(random.next() % UInt64(bricks.count))]
        let node = nodeNames[Int(random.next() % UInt64(nodeNames.count))]
        switch random.next() % 12 {
        case 0, 1: cluster.brick(brick.key) { $0.online = false; $0.pid = 0 }
        case 2: cluster.brick(brick.key) { $0.readOnly = true }
        case 3: cluster.brick(brick.key) { $0.readOnly = false }
        case 4: cluster.status[node] = .down
        case 5 where cluster.status.values.filter({ $0 == .fenced }).isEmpty: cluster.fence(node, since: cluster.now)
        case 6, 7:
            cluster.status[node] = .ready
            cluster.nodes[node]!.committedStatus = .ready
        default: break
        }
    }

    /// What a successful action does to the reports.
    static func effect(of action: Specola_V1_StorageAction, on cluster: inout StorageFixture) {
        switch action.kind {
        case .restartBrick:
            cluster.brick(action.brick) { $0.online = true; $0.pid = 5000 }
        case .replaceBrick:
            let (host, path) = split(action.newBrick)
            for name in cluster.nodes.keys {
                for v in cluster.nodes[name]!.facts.gluster.volumes.indices where cluster.nodes[name]!.facts.gluster.volumes[v].name == action.volume {
                    for b in cluster.nodes[name]!.facts.gluster.volumes[v].bricks.indices
                    where StorageView.key(cluster.nodes[name]!.facts.gluster.volumes[v].bricks[b]) == action.brick {
                        cluster.nodes[name]!.facts.gluster.volumes[v].bricks[b] = .with {
                            $0.host = host
                            $0.path = path
                            $0.peerUuid = "uuid-\(action.node)"
                            $0.replicaSet = action.replicaSet
                            $0.local = name == action.node
                            $0.online = true
                            $0.pid = 6000
                            $0.healPending = 0
                            $0.splitBrain = 0
                        }
                    }
                }
            }
        default:
            break
        }
    }

    static func split(_ key: String) -> (String, String) {
        let colon = key.firstIndex(of: ":")!
        return (String(key[..<colon]), String(key[key.index(after: colon)...]))
    }
}
