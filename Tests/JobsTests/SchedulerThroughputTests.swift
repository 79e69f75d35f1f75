import CooperativePoolWatch
import SpecolaJobs
import Testing

/// A large synthetic cluster: four racks, a per-node host label, one node in eight with GPUs, and staggered
/// allocations so that nodes differ.
private func syntheticCluster(nodes count: Int) -> ClusterView {
    let gib: Int64 = 1 << 30
    return ClusterView(nodes: (0..<count).map { number in
        let gpus: Int64 = number % 8 == 0 ? 4 : 0
        return NodeView(
            name: "node\(number)", labels: ["rack": "r\(number % 4)", "arch": "x86_64", "host": "node\(number)"],
            capacity: Resources(cpuMillicores: 48_000, memoryBytes: 256 * gib, gpus: gpus, scratchBytes: 2_000 * gib),
            allocated: Resources(cpuMillicores: Int64(number % 7) * 4000, memoryBytes: Int64(number % 5) * 16 * gib))
    })
}

/// A queue of mixed work: small and medium tasks, some constrained to a rack, some spread, a few GPU tasks.
private func syntheticQueue(tasks count: Int) -> [TaskRequest] {
    let gib: Int64 = 1 << 30
    let racks = [Constraint(label: "rack", op: .in, values: ["r1", "r2"])]
    let likesR3 = [Affinity(Constraint(label: "rack", op: .equal, values: ["r3"]), weight: 20)]
    let priorities = [30, 50, 70]
    var queue: [TaskRequest] = []
    queue.reserveCapacity(count)
    for number in 0..<count {
        let job = number / 100
        let cpu = Int64(1 + number % 8) * 500
        let memory = Int64(1 + number % 16) * gib
        let gpus: Int64 = number % 50 == 3 ? 1 : 0  // never combined with the rack constraint: GPU nodes are in r0
        let scratch = Int64(number % 10) * gib
        let resources = Resources(cpuMillicores: cpu, memoryBytes: memory, gpus: gpus, scratchBytes: scratch)
        queue.append(TaskRequest(
            id: "job\(job)/task\(number)", job: "job\(job)", project: "project\(number % 6)",
            priority: priorities[number % 3], submitIndex: UInt64(number), resources: resources,
            constraints: number % 5 == 0 ? racks : [], affinities: number % 7 == 0 ? likesR3 : [],
            spread: job % 4 == 0))
    }
    return queue
}

/// Prints placements per second; run `swift test -c release --filter Throughput` for the figure that counts
/// (debug builds are many times slower).
@Test(.watchesCooperativePool, .cpuBoundOffThePool, arguments: [5_000, 10_000])
func planningThroughput(nodes: Int) {
    let cluster = syntheticCluster(nodes: nodes)
    let queue = syntheticQueue(tasks: 10_000)
    let clock = ContinuousClock()
    var plan = Plan(placements: [], unplaced: [])
    let elapsed = clock.measure {
        plan = Scheduler.plan(cluster: cluster, pending: queue, usage: .none)
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(plan.placements.count) / seconds
    print("scheduler: \(plan.placements.count) placements of \(queue.count) tasks on \(nodes) nodes in \(Int(seconds * 1000)) ms = \(Int(rate)) placements/s")
    #expect(plan.placements.count == queue.count)
}
