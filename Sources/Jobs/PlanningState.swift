/// The working copy of a snapshot during one plan: free capacity per node in flat arrays, nodes grouped into pools
/// of identical labels, and per-pool indexes, so that placing a task costs O(pools × log nodes), not O(nodes).
struct PlanningState {
    /// Nodes sorted by name; a node's number is its position here.
    let nodes: [NodeView]
    let capacityCPU: [Int64]
    let capacityMemory: [Int64]
    let capacityGPUs: [Int64]
    var freeCPU: [Int64]
    var freeMemory: [Int64]
    var freeGPUs: [Int64]
    var freeScratch: [Int64]

    /// Nodes that agree on every label some pending task reads share a label class, so constraints are evaluated
    /// per class, not per node, and a per-node label such as a hostname does not split the cluster into
    /// one pool per node.
    let labelClassOfNode: [Int32]
    let classLabels: [[String: String]]

    /// A pool is the nodes that accept work, share a label class and either all have GPUs or none do.
    var pools: [CapacityIndex] = []
    var poolLabelClass: [Int] = []
    var poolHasGPUs: [Bool] = []
    var poolOfNode: [Int32]
    var slotOfNode: [Int32]

    private var constraintCache: [[Constraint]: [Bool]] = [:]
    private var affinityCache: [[Affinity]: [Double]] = [:]
    /// Instances per job and node, for spread scoring.
    private var jobCounts: [String: [Int32: Int]] = [:]
    var failureCache: [FailureKey: PlacementFailure] = [:]

    /// How many fitting nodes a spread placement compares per pool; the emptiest ones come first anyway.
    static let spreadCandidates = 4
    /// Score taken off a GPU node for a task that needs no GPU, so GPU nodes stay free for GPU work.
    static let gpuNodePenalty = 0.5
    /// Score taken off per instance of the same job already on a node, for spread jobs.
    static let sameJobPenalty = 1.0

    init(cluster: ClusterView, readLabels: Set<String>) {
        nodes = cluster.nodes.sorted { $0.name < $1.name }
        capacityCPU = nodes.map(\.capacity.cpuMillicores)
        capacityMemory = nodes.map(\.capacity.memoryBytes)
        capacityGPUs = nodes.map(\.capacity.gpus)
        freeCPU = nodes.map { $0.capacity.cpuMillicores - $0.allocated.cpuMillicores }
        freeMemory = nodes.map { $0.capacity.memoryBytes - $0.allocated.memoryBytes }
        freeGPUs = nodes.map { $0.capacity.gpus - $0.allocated.gpus }
        freeScratch = nodes.map { $0.capacity.scratchBytes - $0.allocated.scratchBytes }

        var classByLabels: [[String: String]: Int32] = [:]
        var classes: [[String: String]] = []
        var labelClassOfNode: [Int32] = []
        labelClassOfNode.reserveCapacity(nodes.count)
        for node in nodes {
            let labels = node.labels.filter { readLabels.contains($0.key) }
            if let existing = classByLabels[labels] {
                labelClassOfNode.append(existing)
            } else {
                classByLabels[labels] = Int32(classes.count)
                labelClassOfNode.append(Int32(classes.count))
                classes.append(labels)
            }
        }
        self.labelClassOfNode = labelClassOfNode
        classLabels = classes

        struct PoolKey: Hashable { var labelClass: Int32; var hasGPUs: Bool }
        var members: [PoolKey: [Int32]] = [:]
        var keys: [PoolKey] = []
        for (number, node) in nodes.enumerated() where node.acceptsWork {
            let key = PoolKey(labelClass: labelClassOfNode[number], hasGPUs: node.capacity.gpus > 0)
            if members[key] == nil { keys.append(key) }
            members[key, default: []].append(Int32(number))
        }
        poolOfNode = [Int32](repeating: -1, count: nodes.count)
        slotOfNode = [Int32](repeating: -1, count: nodes.count)
        for key in keys {
            let pool = Int32(pools.count)
            for node in members[key]! { poolOfNode[Int(node)] = pool }
            pools.append(CapacityIndex(nodes: members[key]!, cpu: freeCPU, memory: freeMemory, slots: &slotOfNode))
            poolLabelClass.append(Int(key.labelClass))
            poolHasGPUs.append(key.hasGPUs)
        }
        for (number, node) in nodes.enumerated() {
            for (job, instances) in node.runningJobs where instances > 0 { jobCounts[job, default: [:]][Int32(number)] = instances }
        }
    }

    /// Whether each label class satisfies every constraint; nil when there are none.
    mutating func classMatches(_ constraints: [Constraint]) -> [Bool]? {
        guard !constraints.isEmpty else { return nil }
        if let cached = constraintCache[constraints] { return cached }
        let result = classLabels.map { labels in constraints.allSatisfy { $0.isSatisfied(by: labels) } }
        constraintCache[constraints] = result
        return result
    }

    private mutating func classAffinity(_ affinities: [Affinity]) -> [Double]? {
        guard !affinities.isEmpty else { return nil }
        if let cached = affinityCache[affinities] { return cached }
        let result = classLabels.map { Affinity.score(affinities, labels: $0) }
        affinityCache[affinities] = result
        return result
    }

    @inline(__always)
    private func fits(_ node: Int, _ need: Resources) -> Bool {
        freeMemory[node] >= need.memoryBytes && freeGPUs[node] >= need.gpus && freeScratch[node] >= need.scratchBytes
    }

    /// Mean utilization of the node's CPU, memory (and GPUs, where it has them) once `need` is added.
    @inline(__always)
    private func utilization(_ node: Int, after need: Resources) -> Double {
        func used(_ capacity: Int64, _ free: Int64, _ extra: Int64) -> Double {
            capacity > 0 ? Double(capacity - free + extra) / Double(capacity) : 1
        }
        var total = used(capacityCPU[node], freeCPU[node], need.cpuMillicores)
            + used(capacityMemory[node], freeMemory[node], need.memoryBytes)
        var dimensions = 2.0
        if capacityGPUs[node] > 0 {
            total += used(capacityGPUs[node], freeGPUs[node], need.gpus)
            dimensions += 1
        }
        return total / dimensions
    }

    /// The best node for the request, or nil when no node accepting work has room and satisfies its constraints.
    mutating func choose(_ request: TaskRequest) -> Int32? {
        let need = request.resources
        let matches = classMatches(request.constraints)
        let affinity = classAffinity(request.affinities)
        let sameJob = request.spread ? jobCounts[request.job] : nil
        var best: Int32 = -1
        var bestScore = -Double.infinity
        for pool in pools.indices {
            let labelClass = poolLabelClass[pool]
            if let matches, !matches[labelClass] { continue }
            if need.gpus > 0 && !poolHasGPUs[pool] { continue }
            let index = pools[pool]
            let first = index.firstPosition(withCPU: need.cpuMillicores)
            guard first < index.count else { continue }
            var candidate: Int32 = -1
            var score = -Double.infinity
            if request.spread {
                // Emptiest first; among a few fitting nodes, avoid the job's own instances.
                var seen = 0
                var position = index.count - 1
                while position >= first && seen < Self.spreadCandidates {
                    let node = index.order[position]
                    position -= 1
                    guard fits(Int(node), need) else { continue }
                    seen += 1
                    let stacked = Double(sameJob?[node] ?? 0)
                    let nodeScore = 1 - utilization(Int(node), after: need) - stacked * Self.sameJobPenalty
                    if nodeScore > score || (nodeScore == score && node < candidate) {
                        candidate = node
                        score = nodeScore
                    }
                }
            } else {
                // Best fit: the node with the least free CPU that still has room for everything.
                for position in first..<index.count {
                    let node = index.order[position]
                    if fits(Int(node), need) {
                        candidate = node
                        score = utilization(Int(node), after: need)
                        break
                    }
                }
            }
            guard candidate >= 0 else { continue }
            if let affinity { score += affinity[labelClass] }
            if need.gpus == 0 && poolHasGPUs[pool] { score -= Self.gpuNodePenalty }
            if score > bestScore || (score == bestScore && candidate < best) {
                best = candidate
                bestScore = score
            }
        }
        return best >= 0 ? best : nil
    }

    /// Takes the request's resources from the node.
    mutating func commit(_ request: TaskRequest, on node: Int32) {
        let number = Int(node)
        let need = request.resources
        freeCPU[number] -= need.cpuMillicores
        freeMemory[number] -= need.memoryBytes
        freeGPUs[number] -= need.gpus
        freeScratch[number] -= need.scratchBytes
        pools[Int(poolOfNode[number])].shrink(node: node, cpu: freeCPU, memory: freeMemory, slots: &slotOfNode)
        if request.spread { jobCounts[request.job, default: [:]][node, default: 0] += 1 }
    }
}
