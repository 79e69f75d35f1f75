import SpecolaJobs
import SpecolaWire

/// The HA policy as a pure function of a state snapshot and node liveness:
/// what to start, restart, relocate, give up on or release. The controller
/// proposes the decisions; `WorkloadBook` checks them again when applying.
///
/// - A crashed workload is restarted on its node while restarts remain and the
///   node is usable, else relocated while relocations remain, else it goes to `error`.
/// - A workload whose node is `fenced` is relocated (never before: a node that is
///   only down may still run it), or goes to `error` when relocations are spent.
/// - A workload on a draining node is stopped and started again elsewhere, once
///   another node can take it; a drain spends no restart or relocation.
/// - A relocation target is a ready, uncordoned node whose agent reaches the
///   workload's runtime and that has the cores and memory free (best fit).
public struct WorkloadPlanner {
    /// One thing to commit.
    public enum Decision: Equatable, Sendable {
        case place(name: String, generation: UInt64, node: String, reason: String, message: String)
        case fail(name: String, generation: UInt64, reason: String)
        case release(name: String, generation: UInt64, reason: String)
        /// Stop it on a draining node so it starts again elsewhere.
        case evacuate(name: String, generation: UInt64, reason: String)
    }

    public struct Plan: Sendable {
        public var decisions: [Decision] = []
        /// Why a workload that should run is not placed now, by name.
        public var waiting: [String: String] = [:]
    }

    /// Committed node statuses of the failure ladder that take no new work.
    public static let unhealthy: Set<NodeStatus> = [.suspect, .down, .fencing, .fenced]

    public static func plan(state: ClusterState, status: [String: NodeStatus]) -> Plan {
        var plan = Plan()
        var free = freeResources(state: state)
        for workload in state.workloads.workloads.values.sorted(by: { $0.name < $1.name }) {
            guard workload.desired == WorkloadDesired.started.rawValue || WorkloadPhase(rawValue: workload.phase)?.mayRun == true else {
                continue
            }
            decide(workload, state: state, status: status, free: &free, plan: &plan)
        }
        return plan
    }

    private static func decide(
        _ workload: Specola_V1_Workload, state: ClusterState, status: [String: NodeStatus],
        free: inout [String: Resources], plan: inout Plan
    ) {
        let name = workload.name
        let next = workload.generation + 1
        let phase = WorkloadPhase(rawValue: workload.phase) ?? .pending
        let fenced = !workload.node.isEmpty && nodeIsFenced(state, workload.node)
        let wanted = workload.desired == WorkloadDesired.started.rawValue
        func place(_ node: String, _ reason: String, _ message: String) {
            plan.decisions.append(.place(name: name, generation: next, node: node, reason: reason, message: message))
            free[node, default: .zero] = free[node, default: .zero] - request(workload)
        }
        func relocate(because why: String) {
            guard WorkloadBook.relocationsSpent(workload, nodes: state.nodes) < workload.maxRelocations else {
                plan.decisions.append(.fail(name: name, generation: workload.generation, reason:
                    "\(why); relocation limit \(workload.maxRelocations) reached"))
                return
            }
            if let target = bestFit(workload, state: state, status: status, free: free, excluding: workload.node) {
                place(target, "relocate", "\(why); relocated from \(workload.node)")
            } else {
                plan.waiting[name] = "\(why); " + noTargetReason(workload)
            }
        }

        switch phase {
        case .starting, .running, .stopping:
            guard fenced else {
                if status[workload.node] != .ready {
                    plan.waiting[name] = "node \(workload.node) is \(status[workload.node]?.word ?? "unknown"); waiting until it is fenced"
                } else if wanted, phase == .running, state.nodes[workload.node]?.draining == true {
                    if bestFit(workload, state: state, status: status, free: free, excluding: workload.node) != nil {
                        plan.decisions.append(.evacuate(name: name, generation: workload.generation, reason: "node \(workload.node) is draining"))
                    } else {
                        plan.waiting[name] = "node \(workload.node) is draining; " + noTargetReason(workload)
                    }
                }
                return
            }
            if wanted {
                relocate(because: "node \(workload.node) was fenced")
            } else {
                plan.decisions.append(.release(name: name, generation: workload.generation, reason: "node \(workload.node) was fenced"))
            }
        case .pending:
            let preferred = [workload.homeNode, workload.node].filter { !$0.isEmpty }
            if let node = preferred.first(where: { usable($0, for: workload, state: state, status: status, free: free) })
                ?? bestFit(workload, state: state, status: status, free: free, excluding: nil)
            {
                place(node, "start", "started on \(node)")
            } else {
                plan.waiting[name] = noTargetReason(workload)
            }
        case .crashed:
            let crashed = "crashed on \(workload.node)\(workload.message.isEmpty ? "" : " (\(workload.message))")"
            if workload.restarts < workload.maxRestarts {
                if !fenced, usable(workload.node, for: workload, state: state, status: status, free: free, restarting: true) {
                    place(workload.node, "restart", "\(crashed); restart \(workload.restarts + 1) of \(workload.maxRestarts)")
                } else if workload.relocations < workload.maxRelocations {
                    relocate(because: crashed)
                } else {
                    plan.waiting[name] = "\(crashed); waiting for \(workload.node) to take it back"
                }
            } else if workload.relocations < workload.maxRelocations {
                relocate(because: "\(crashed); restart limit \(workload.maxRestarts) reached")
            } else {
                plan.decisions.append(.fail(name: name, generation: workload.generation, reason:
                    "\(crashed); restart limit \(workload.maxRestarts) and relocation limit \(workload.maxRelocations) reached"))
            }
        case .stopped, .error:
            break
        }
    }

    /// What the workload asks of a node.
    public static func request(_ workload: Specola_V1_Workload) -> Resources {
        Resources(cpuMillicores: workload.cpuMillicores, memoryBytes: workload.memoryBytes)
    }

    /// Each node's capacity less what jobs and workloads that may run there hold.
    public static func freeResources(state: ClusterState) -> [String: Resources] {
        var free: [String: Resources] = [:]
        for node in state.nodes.values {
            free[node.name] = SchedulingInput.capacity(of: node) - (state.jobs.allocatedByNode[node.name] ?? .zero)
        }
        for (node, held) in state.workloads.heldByNode {
            free[node, default: .zero] = free[node, default: .zero] - held
        }
        return free
    }

    /// Whether `node` can take the workload now. A restart in place needs no
    /// new room (its own share was freed by the crash) and ignores a cordon.
    public static func usable(
        _ node: String, for workload: Specola_V1_Workload, state: ClusterState, status: [String: NodeStatus],
        free: [String: Resources], restarting: Bool = false
    ) -> Bool {
        guard let record = state.nodes[node], status[node] == .ready, !unhealthy.contains(record.committed),
            !record.draining, restarting || !record.cordoned
        else { return false }
        switch WorkloadKind(rawValue: workload.kind) {
        case .vm: guard record.facts.vms.available else { return false }
        case .pod: guard record.facts.containers.available else { return false }
        case nil: return false
        }
        let room = free[node] ?? .zero
        let wants = request(workload)
        return room.cpuMillicores >= wants.cpuMillicores && room.memoryBytes >= wants.memoryBytes
    }

    /// The usable node that the workload leaves with the least memory to spare (then cores, then name).
    public static func bestFit(
        _ workload: Specola_V1_Workload, state: ClusterState, status: [String: NodeStatus], free: [String: Resources],
        excluding: String?
    ) -> String? {
        state.nodes.keys
            .filter { $0 != excluding && usable($0, for: workload, state: state, status: status, free: free) }
            .min { a, b in
                let left = (free[a]!.memoryBytes, free[a]!.cpuMillicores, a)
                let right = (free[b]!.memoryBytes, free[b]!.cpuMillicores, b)
                return left < right
            }
    }

    public static func noTargetReason(_ workload: Specola_V1_Workload) -> String {
        let runtime = workload.kind == WorkloadKind.vm.rawValue ? "libvirt" : "podman"
        let wants = request(workload)
        return "no ready, uncordoned node with \(runtime) and \(wants.cpuMillicores)m CPU, \(wants.memoryBytes / (1 << 20)) MiB free"
    }
}
