import SpecolaWire
import CooperativePoolWatch
import SpecolaJobs
import Testing

private let gib: Int64 = 1 << 30

private func node(
    _ name: String, cores: Int64 = 16, memoryGiB: Int64 = 64, gpus: Int64 = 0, usedCores: Int64 = 0,
    labels: [String: String] = [:], status: NodeStatus = .ready, cordoned: Bool = false, draining: Bool = false
) -> NodeView {
    NodeView(
        name: name, status: status, cordoned: cordoned, draining: draining, labels: labels,
        capacity: Resources(cpuMillicores: cores * 1000, memoryBytes: memoryGiB * gib, gpus: gpus, scratchBytes: 500 * gib),
        allocated: Resources(cpuMillicores: usedCores * 1000, memoryBytes: usedCores * gib))
}

private func task(
    _ id: String, cores: Int64 = 1, memoryGiB: Int64 = 1, gpus: Int64 = 0, job: String = "job", project: String = "p",
    priority: Int = 50, submitIndex: UInt64 = 0, constraints: [Constraint] = [], affinities: [Affinity] = [], spread: Bool = false
) -> TaskRequest {
    TaskRequest(
        id: id, job: job, project: project, priority: priority, submitIndex: submitIndex,
        resources: Resources(cpuMillicores: cores * 1000, memoryBytes: memoryGiB * gib, gpus: gpus),
        constraints: constraints, affinities: affinities, spread: spread)
}

private func plan(_ nodes: [NodeView], _ tasks: [TaskRequest], usage: FairShareUsage = .none) -> Plan {
    Scheduler.plan(cluster: ClusterView(nodes: nodes), pending: tasks, usage: usage)
}

@Test(.watchesCooperativePool) func binPackingPicksTheFullestNodeThatFits() {
    let nodes = [node("a", usedCores: 12), node("b", usedCores: 4), node("c")]
    let result = plan(nodes, [task("small", cores: 2), task("large", cores: 6)])
    #expect(result.nodeByTask == ["small": "a", "large": "b"])
}

@Test(.watchesCooperativePool) func spreadPutsInstancesOfOneJobOnDifferentNodes() {
    let nodes = [node("a"), node("b"), node("c")]
    let tasks = (0..<3).map { task("sim#\($0)", spread: true) }
    #expect(Set(plan(nodes, tasks).placements.map(\.node)) == ["a", "b", "c"])
    let packed = (0..<3).map { task("sim#\($0)") }
    #expect(Set(plan(nodes, packed).placements.map(\.node)) == ["a"])
}

@Test(.watchesCooperativePool) func spreadPrefersTheLeastLoadedNode() {
    let nodes = [node("a", usedCores: 8), node("b", usedCores: 2), node("c", usedCores: 12)]
    #expect(plan(nodes, [task("t", spread: true)]).nodeByTask == ["t": "b"])
}

@Test(.watchesCooperativePool) func equalNodesTieBreakByName() {
    let nodes = [node("n3"), node("n1"), node("n2")]
    #expect(plan(nodes, [task("t")]).nodeByTask == ["t": "n1"])
}

@Test(.watchesCooperativePool) func nodesOutOfServiceGetNoWorkAndTheTaskWaits() {
    let nodes = [node("a", status: .down), node("b", cordoned: true), node("c", draining: true), node("d", status: .suspect)]
    let result = plan(nodes, [task("t")])
    #expect(result.placements.isEmpty)
    #expect(result.unplaced == [Plan.Unplaced(taskID: "t", reason: PlacementFailure(
        .waiting, "waiting: the 4 nodes that could run it are out of service (1 cordoned, 1 down, 1 draining, 1 suspect)"))])
}

@Test(.watchesCooperativePool) func tooLargeRequestsAreImpossibleAndSayWhy() {
    let nodes = [node("a", cores: 48, memoryGiB: 256), node("b", cores: 32, memoryGiB: 512)]
    let reasons = plan(nodes, [
        task("cpu", cores: 64), task("mem", memoryGiB: 1024), task("gpu", gpus: 2),
        task("both", cores: 40, memoryGiB: 300),
    ]).reasonByTask
    #expect(reasons["cpu"] == PlacementFailure(.impossible, "needs 64 cores but the largest node has 48"))
    #expect(reasons["mem"] == PlacementFailure(.impossible, "needs 1TiB of memory but the largest node has 512GiB"))
    #expect(reasons["gpu"] == PlacementFailure(.impossible, "needs 2 GPUs but the largest node has 0"))
    #expect(reasons["both"] == PlacementFailure(
        .impossible, "needs 40 cores, 300GiB memory on one node, but no node has all of that together"))
}

@Test(.watchesCooperativePool) func unmatchedConstraintsAreImpossibleAndNameTheConstraint() {
    let nodes = [node("a", labels: ["gpu": "v100"]), node("b")]
    let a100 = Constraint(label: "gpu", op: .equal, values: ["a100"])
    #expect(plan(nodes, [task("t", constraints: [a100])]).reasonByTask["t"] == PlacementFailure(.impossible, "no node matches constraint gpu=a100"))
    let clash = [Constraint(label: "gpu", op: .exists), Constraint(label: "gpu", op: .notEqual, values: ["v100"])]
    #expect(plan(nodes, [task("t", constraints: clash)]).reasonByTask["t"]?.message == "no node matches all constraints together: exists(gpu), gpu!=v100")
}

@Test(.watchesCooperativePool) func aFullClusterMakesTasksWaitNotFail() {
    let nodes = [node("a", cores: 4), node("b", cores: 4)]
    let result = plan(nodes, (0..<10).map { task("t\($0)", cores: 1, submitIndex: UInt64($0)) })
    #expect(result.placements.count == 8)
    #expect(result.unplaced.map(\.taskID) == ["t8", "t9"])
    #expect(result.unplaced[0].reason.kind == .waiting)
    #expect(result.unplaced[0].reason.message.hasPrefix("waiting: all feasible nodes are full"))
}

@Test(.watchesCooperativePool) func affinityOutweighsBinPacking() {
    let nodes = [node("a", usedCores: 12, labels: ["rack": "r1"]), node("b", labels: ["rack": "r2"])]
    let likesR2 = Affinity(Constraint(label: "rack", op: .equal, values: ["r2"]), weight: 50)
    #expect(plan(nodes, [task("t", affinities: [likesR2])]).nodeByTask == ["t": "b"])
    let avoidsR1 = Affinity(Constraint(label: "rack", op: .equal, values: ["r1"]), weight: -50)
    #expect(plan(nodes, [task("t", affinities: [avoidsR1])]).nodeByTask == ["t": "b"])
}

@Test(.watchesCooperativePool) func gpuNodesAreKeptForGPUWork() {
    let nodes = [node("gpu1", gpus: 4, usedCores: 8), node("cpu1")]
    let result = plan(nodes, [task("cpu-task"), task("gpu-task", gpus: 1)])
    #expect(result.nodeByTask == ["cpu-task": "cpu1", "gpu-task": "gpu1"])
}

@Test(.watchesCooperativePool) func higherPriorityIsPlacedFirst() {
    let nodes = [node("a", cores: 4)]
    let result = plan(nodes, [task("low", cores: 4, priority: 10, submitIndex: 1), task("high", cores: 4, priority: 90, submitIndex: 2)])
    #expect(result.nodeByTask == ["high": "a"])
    #expect(result.unplaced.map(\.taskID) == ["low"])
}

@Test(.watchesCooperativePool) func fairShareServesTheProjectThatUsedLeast() {
    let nodes = [node("a", cores: 4)]
    let tasks = (0..<4).map { task("heavy\($0)", project: "heavy", submitIndex: UInt64($0)) }
        + (0..<4).map { task("light\($0)", project: "light", submitIndex: UInt64(10 + $0)) }
    let usage = FairShareUsage(usage: ["heavy": 1.0, "light": 0])
    #expect(plan(nodes, tasks, usage: usage).placements.map(\.taskID) == ["light0", "light1", "light2", "light3"])
    // Without history the projects alternate, each turn charged with the task's dominant share.
    #expect(plan(nodes, tasks).placements.map(\.taskID) == ["heavy0", "light0", "heavy1", "light1"])
    // A bigger share entitles a project to more of the cluster.
    let shares = FairShareUsage(shares: ["heavy": 3, "light": 1])
    #expect(plan(nodes, tasks, usage: shares).placements.filter { $0.taskID.hasPrefix("heavy") }.count == 3)
}

@Test(.watchesCooperativePool) func submissionOrderHoldsWithinAProject() {
    let nodes = [node("a", cores: 2)]
    let tasks = [task("third", submitIndex: 30), task("first", submitIndex: 10), task("second", submitIndex: 20)]
    #expect(plan(nodes, tasks).placements.map(\.taskID) == ["first", "second"])
}

@Test(.watchesCooperativePool) func jobPlanDiffShowsAddedRemovedAndChangedInstances() throws {
    func instances(_ yaml: String) throws -> [TaskInstance] {
        try JobSpecParser.parse(yaml, file: "v.yaml").get().instances()
    }
    let v1 = try instances("""
        apiVersion: specola/v1
        kind: Job
        metadata: {name: sweep, owner: ann, project: theory}
        tasks:
          - {name: sim, driver: exec, command: /bin/sim, array: {size: 3}}
          - {name: report, driver: exec, command: /bin/report}
        """)
    let v2 = try instances("""
        apiVersion: specola/v1
        kind: Job
        metadata: {name: sweep, owner: ann, project: theory}
        tasks:
          - {name: sim, driver: exec, command: /bin/sim, array: {size: 4}, resources: {cpu: 2}}
        """)
    let running = v1.map { RunningTask(instance: $0, node: "a") }
    let job = try JobSpecParser.parse("""
        apiVersion: specola/v1
        kind: Job
        metadata: {name: sweep, owner: ann, project: theory}
        tasks: [{name: sim, driver: exec, command: /bin/sim, array: {size: 4}, resources: {cpu: 2}}]
        """, file: "v2.yaml").get()
    let requests = v2.map { TaskRequest(instance: $0, job: job, submitIndex: 1) }
    let result = plan([node("a", usedCores: 3), node("b")], requests)
    let diff = result.diff(running: running, proposed: v2)
    #expect(diff.added.map(\.taskID) == ["sweep/sim#3"])
    #expect(diff.added[0].plannedNode == "a")
    #expect(diff.changed.map(\.taskID) == ["sweep/sim#0", "sweep/sim#1", "sweep/sim#2"])
    #expect(diff.changed.allSatisfy { $0.changedFields == ["resources"] && $0.currentNode == "a" })
    #expect(diff.removed.map(\.taskID) == ["sweep/report"])
    #expect(diff.unchanged.isEmpty && !diff.isEmpty)
    #expect(result.diff(running: running, proposed: v1).isEmpty)
}
