/// The dependency DAG of a pipeline's steps: validation (unknown names, cycles) and the order steps may run in.
public struct PipelineGraph: Sendable, Hashable {
    /// Step names in the order written.
    public let steps: [String]
    /// For each step, the steps it depends on directly.
    public let depends: [String: [String]]

    /// A problem that makes the graph unusable.
    public enum Problem: Sendable, Hashable {
        /// `step` depends on `missing`, which is not a step.
        case unknownDependency(step: String, missing: String)
        /// The steps form a loop, each depending on the next; the first name is repeated at the end, e.g. `[a, b, a]`.
        case cycle([String])
    }

    /// Creates the graph; call `problems()` before relying on `order()`.
    public init(steps: [String], depends: [String: [String]]) {
        self.steps = steps
        self.depends = depends
    }

    /// Every unknown dependency and every distinct cycle, in the order the steps are written.
    public func problems() -> [Problem] {
        let known = Set(steps)
        var found: [Problem] = []
        for step in steps {
            for dependency in depends[step, default: []] where !known.contains(dependency) {
                found.append(.unknownDependency(step: step, missing: dependency))
            }
        }
        // Depth-first search with an explicit path; a back edge closes a cycle along that path.
        var state: [String: Int] = [:]  // 1 = on the current path, 2 = finished
        var path: [String] = []
        var seenCycles: Set<Set<String>> = []
        func visit(_ step: String) {
            state[step] = 1
            path.append(step)
            for dependency in depends[step, default: []] where known.contains(dependency) {
                switch state[dependency] {
                case 1:
                    let start = path.lastIndex(of: dependency)!
                    let loop = Array(path[start...])
                    if seenCycles.insert(Set(loop)).inserted {
                        found.append(.cycle(loop + [dependency]))
                    }
                case nil: visit(dependency)
                default: break
                }
            }
            path.removeLast()
            state[step] = 2
        }
        for step in steps where state[step] == nil { visit(step) }
        return found
    }

    /// Steps in an order where every step comes after all it depends on; ties keep the written order.
    /// Only meaningful when `problems()` is empty.
    public func order() -> [String] {
        var remaining = Dictionary(uniqueKeysWithValues: steps.map { ($0, Set(depends[$0, default: []])) })
        var result: [String] = []
        while result.count < steps.count {
            guard let next = steps.first(where: { remaining[$0]?.isEmpty == true }) else { break }
            result.append(next)
            remaining[next] = nil
            for key in remaining.keys { remaining[key]?.remove(next) }
        }
        return result
    }

    /// Every step that `step` waits for, directly or through others.
    public func upstream(of step: String) -> Set<String> {
        var seen: Set<String> = []
        var stack = depends[step, default: []]
        while let next = stack.popLast() {
            if seen.insert(next).inserted { stack.append(contentsOf: depends[next, default: []]) }
        }
        return seen
    }
}
