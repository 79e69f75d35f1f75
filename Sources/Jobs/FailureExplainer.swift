import SpecolaWire

/// What a failure explanation depends on; equal keys get the same reason within one plan.
struct FailureKey: Hashable {
    var resources: Resources
    var constraints: [Constraint]
}

extension PlanningState {
    /// Why `request` found no node: impossible on this cluster as it is built, or waiting for room or for nodes
    /// to return to service. Called only for failures, so it may scan nodes; the cache keeps it cheap for
    /// thousands of identical requests.
    mutating func explain(_ request: TaskRequest) -> PlacementFailure {
        let key = FailureKey(resources: request.resources, constraints: request.constraints)
        if let cached = failureCache[key] { return cached }
        let failure = computeExplanation(request)
        failureCache[key] = failure
        return failure
    }

    private mutating func computeExplanation(_ request: TaskRequest) -> PlacementFailure {
        let need = request.resources
        let constraints = request.constraints
        let matches = classMatches(constraints)
        if let matches, !matches.contains(true) {
            // Name the first constraint no node satisfies on its own; otherwise they only clash together.
            if let alone = constraints.first(where: { constraint in !classLabels.contains { constraint.isSatisfied(by: $0) } }) {
                return PlacementFailure(.impossible, "no node matches constraint \(alone)")
            }
            let all = constraints.map(\.description).joined(separator: ", ")
            return PlacementFailure(.impossible, "no node matches all constraints together: \(all)")
        }
        let matching = nodes.indices.filter { matches?[Int(labelClassOfNode[$0])] ?? true }
        let capable = matching.filter { need.fits(in: nodes[$0].capacity) }
        let scope = constraints.isEmpty ? "" : " matching \(constraints.map(\.description).joined(separator: ", "))"
        if capable.isEmpty {
            var largest = Resources.zero
            for node in matching {
                let capacity = nodes[node].capacity
                largest.cpuMillicores = max(largest.cpuMillicores, capacity.cpuMillicores)
                largest.memoryBytes = max(largest.memoryBytes, capacity.memoryBytes)
                largest.gpus = max(largest.gpus, capacity.gpus)
                largest.scratchBytes = max(largest.scratchBytes, capacity.scratchBytes)
            }
            var shortfalls: [String] = []
            if need.cpuMillicores > largest.cpuMillicores {
                shortfalls.append("needs \(Quantity.formatCores(need.cpuMillicores)) but the largest node\(scope) has \(Quantity.formatCoreNumber(largest.cpuMillicores))")
            }
            if need.memoryBytes > largest.memoryBytes {
                shortfalls.append("needs \(Quantity.formatBytes(need.memoryBytes)) of memory but the largest node\(scope) has \(Quantity.formatBytes(largest.memoryBytes))")
            }
            if need.gpus > largest.gpus {
                shortfalls.append("needs \(need.gpus) GPU\(need.gpus == 1 ? "" : "s") but the largest node\(scope) has \(largest.gpus)")
            }
            if need.scratchBytes > largest.scratchBytes {
                shortfalls.append("needs \(Quantity.formatBytes(need.scratchBytes)) of scratch but the largest node\(scope) has \(Quantity.formatBytes(largest.scratchBytes))")
            }
            if shortfalls.isEmpty {
                shortfalls.append("needs \(describe(need)) on one node, but no node\(scope) has all of that together")
            }
            return PlacementFailure(.impossible, shortfalls.joined(separator: "; "))
        }
        let inService = capable.filter { nodes[$0].acceptsWork }
        if inService.isEmpty {
            return PlacementFailure(.waiting, "waiting: the \(capable.count) node\(capable.count == 1 ? "" : "s") that could run it \(capable.count == 1 ? "is" : "are") out of service (\(outOfService(capable)))")
        }
        let mostFree = inService.map { freeCPU[$0] }.max() ?? 0
        return PlacementFailure(.waiting, "waiting: all feasible nodes are full (\(inService.count) could run it; the most free CPU on one is \(Quantity.formatCores(max(mostFree, 0))))")
    }

    /// "2 down, 1 cordoned".
    private func outOfService(_ numbers: [Int]) -> String {
        var counts: [String: Int] = [:]
        for number in numbers {
            let node = nodes[number]
            let state = node.status != .ready ? node.status.word : NodeStatus.schedulingWord(cordoned: true, draining: node.draining)
            counts[state, default: 0] += 1
        }
        return counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// "64 cores, 512GiB memory, 4 GPUs, 1TiB scratch", leaving out zero amounts.
    private func describe(_ need: Resources) -> String {
        var parts = [Quantity.formatCores(need.cpuMillicores), "\(Quantity.formatBytes(need.memoryBytes)) memory"]
        if need.gpus > 0 { parts.append("\(need.gpus) GPUs") }
        if need.scratchBytes > 0 { parts.append("\(Quantity.formatBytes(need.scratchBytes)) scratch") }
        return parts.joined(separator: ", ")
    }
}
