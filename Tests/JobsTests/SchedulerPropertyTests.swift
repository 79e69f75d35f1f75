import SpecolaWire
import CooperativePoolWatch
import SeededRandom
import SpecolaJobs
import Testing

/// A random cluster and queue drawn from a seed: a few label classes, mixed health, partial allocations.
private struct Scenario {
    var nodes: [NodeView]
    var tasks: [TaskRequest]

    init(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let gib: Int64 = 1 << 30
        let statuses: [NodeStatus] = [.ready, .ready, .ready, .ready, .suspect, .down]
        nodes = (0..<Int.random(in: 1...40, using: &random)).map { number in
            let cores = Int64([8, 16, 32, 48].randomElement(using: &random)!)
            let memory = Int64([32, 64, 128, 256].randomElement(using: &random)!) * gib
            let gpus: Int64 = Bool.random(using: &random) && Int.random(in: 0..<4, using: &random) == 0 ? 4 : 0
            let capacity = Resources(cpuMillicores: cores * 1000, memoryBytes: memory, gpus: gpus, scratchBytes: 200 * gib)
            let used = Double.random(in: 0...1, using: &random)
            let allocated = Resources(
                cpuMillicores: Int64(Double(capacity.cpuMillicores) * used), memoryBytes: Int64(Double(memory) * used / 2),
                gpus: gpus > 0 ? Int64.random(in: 0...gpus, using: &random) : 0, scratchBytes: 0)
            var labels = ["rack": "r\(Int.random(in: 1...3, using: &random))"]
            if gpus > 0 { labels["gpu"] = ["a100", "v100"].randomElement(using: &random)! }
            return NodeView(
                name: "node\(number)", status: statuses.randomElement(using: &random)!,
                cordoned: Int.random(in: 0..<10, using: &random) == 0, draining: Int.random(in: 0..<20, using: &random) == 0,
                labels: labels, capacity: capacity, allocated: allocated)
        }
        let constraintChoices: [[Constraint]] = [
            [], [], [], [Constraint(label: "rack", op: .equal, values: ["r1"])],
            [Constraint(label: "gpu", op: .in, values: ["a100"])], [Constraint(label: "rack", op: .notIn, values: ["r3"])],
        ]
        tasks = (0..<Int.random(in: 1...200, using: &random)).map { number in
            let gpus: Int64 = Int.random(in: 0..<8, using: &random) == 0 ? Int64.random(in: 1...2, using: &random) : 0
            return TaskRequest(
                id: "t\(number)", job: "job\(Int.random(in: 0..<5, using: &random))",
                project: ["survey", "theory", "instrument"].randomElement(using: &random)!,
                priority: [10, 50, 90].randomElement(using: &random)!, submitIndex: UInt64.random(in: 0..<50, using: &random),
                resources: Resources(
                    cpuMillicores: Int64.random(in: 1...64, using: &random) * 500,
                    memoryBytes: Int64.random(in: 1...64, using: &random) * gib, gpus: gpus,
                    scratchBytes: Int64.random(in: 0...50, using: &random) * gib),
                constraints: constraintChoices.randomElement(using: &random)!,
                affinities: Bool.random(using: &random) ? [Affinity(Constraint(label: "rack", op: .equal, values: ["r2"]), weight: 40)] : [],
                spread: Int.random(in: 0..<3, using: &random) == 0)
        }
    }
}

@Test(.watchesCooperativePool, .cpuBoundOffThePool, arguments: 0..<300 as Range<UInt64>)
func planningNeverBreaksItsPromises(seed: UInt64) {
    let scenario = Scenario(seed: seed)
    let plan = Scheduler.plan(cluster: ClusterView(nodes: scenario.nodes), pending: scenario.tasks, usage: .none)
    let nodes = Dictionary(uniqueKeysWithValues: scenario.nodes.map { ($0.name, $0) })
    let tasks = Dictionary(uniqueKeysWithValues: scenario.tasks.map { ($0.id, $0) })

    // Every task is decided exactly once.
    let decided = plan.placements.map(\.taskID) + plan.unplaced.map(\.taskID)
    #expect(decided.sorted() == scenario.tasks.map(\.id).sorted())

    // No node ends up over-committed, and every placement is feasible.
    var load: [String: Resources] = [:]
    for placement in plan.placements {
        let node = nodes[placement.node]!
        let request = tasks[placement.taskID]!
        #expect(node.acceptsWork, "seed \(seed): \(placement.taskID) on \(node.name) which is \(node.status)")
        #expect(request.constraints.allSatisfy { $0.isSatisfied(by: node.labels) }, "seed \(seed): \(placement.taskID)")
        load[placement.node, default: node.allocated] += request.resources
    }
    for (name, total) in load {
        #expect(total.fits(in: nodes[name]!.capacity), "seed \(seed): \(name) over-committed")
    }

    // A waiting higher-priority task never loses to a lower-priority one that needs at least as much.
    let placed = plan.placements.map { tasks[$0.taskID]! }
    for waiting in plan.unplaced.map({ tasks[$0.taskID]! }) {
        for winner in placed where winner.priority < waiting.priority && winner.constraints == waiting.constraints {
            #expect(!waiting.resources.fits(in: winner.resources), "seed \(seed): \(waiting.id) waits while \(winner.id) ran")
        }
    }

    // "Impossible" is only said when no node could ever take the task as asked.
    for entry in plan.unplaced where entry.reason.kind == .impossible {
        let request = tasks[entry.taskID]!
        let possible = scenario.nodes.contains { node in
            request.resources.fits(in: node.capacity) && request.constraints.allSatisfy { $0.isSatisfied(by: node.labels) }
        }
        #expect(!possible, "seed \(seed): \(entry.taskID) called impossible: \(entry.reason)")
    }

    // The plan depends on the snapshot's content, not on the order nodes are listed in.
    var shuffler = SeededRandom(seed: seed ^ 0xABCD)
    let shuffled = Scheduler.plan(
        cluster: ClusterView(nodes: scenario.nodes.shuffled(using: &shuffler)), pending: scenario.tasks, usage: .none)
    #expect(shuffled == plan)
}

/// Guards the property test against vacuous scenarios: across seeds, every outcome must actually occur.
@Test(.watchesCooperativePool, .cpuBoundOffThePool) func randomScenariosCoverEveryOutcome() async {
    var placed = 0
    var waiting = 0
    var impossible = 0
    for seed in 0..<300 as Range<UInt64> {
        let scenario = Scenario(seed: seed)
        let plan = Scheduler.plan(cluster: ClusterView(nodes: scenario.nodes), pending: scenario.tasks, usage: .none)
        placed += plan.placements.count
        waiting += plan.unplaced.filter { $0.reason.kind == .waiting }.count
        impossible += plan.unplaced.filter { $0.reason.kind == .impossible }.count
    }
    print("scenarios: placed \(placed), waiting \(waiting), impossible \(impossible)")
    #expect(placed > 1000 && waiting > 1000 && impossible > 100, "placed \(placed), waiting \(waiting), impossible \(impossible)")
}
