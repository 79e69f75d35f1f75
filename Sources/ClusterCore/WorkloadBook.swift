import Foundation
import SpecolaJobs
import SpecolaWire

/// The kinds of HA workload: a libvirt domain or a podman pod (kube YAML).
public enum WorkloadKind: String, Sendable, CaseIterable {
    case vm, pod
}

/// What an operator wants of a workload.
public enum WorkloadDesired: String, Sendable, CaseIterable {
    /// Kept running: restarted after a crash, relocated after its node is fenced.
    case started
    /// Not running; `enable` starts it with the spent restarts and relocations kept.
    case stopped
    /// Not running and out of HA care; `enable` starts it with fresh limits (also the way out of `error`).
    case disabled
}

/// Where a workload is in its life, as the replicated state records it.
public enum WorkloadPhase: String, Sendable, CaseIterable {
    /// To be started; no instance exists.
    case pending
    /// A start was committed for (node, generation); the agent has not confirmed it yet.
    case starting
    case running
    /// A stop is due for the current instance.
    case stopping
    /// Nothing runs, as the agent confirmed (or fencing proved).
    case stopped
    /// The current instance ended by itself or failed to start; the agent confirmed nothing runs.
    case crashed
    /// The restart and relocation limits are spent; nothing is started until an operator enables it again.
    case error

    /// Phases in which an instance may be running on the workload's node.
    public var mayRun: Bool { self == .starting || self == .running || self == .stopping }
}

/// Whether a node's committed status proves it runs nothing. The lead's failure
/// ladder commits `fenced` only with proof (BMC power off, or an expired self-fence lease).
public func nodeIsFenced(_ state: ClusterState, _ node: String) -> Bool {
    WorkloadBook.isFenced(node, in: state.nodes)
}

/// HA workloads inside the replicated state: their definitions and policies,
/// the current instance of each (node and generation), the restarts and
/// relocations spent, and instances found running where they should not be.
///
/// It enforces the no-double-start rule itself, whatever a controller proposes:
/// a new instance is accepted only while no other instance may run, that is
/// when the agent reported the previous one ended or its node is `fenced`.
/// Deterministic like the rest of `ClusterState`: time arrives inside commands.
public struct WorkloadBook: Sendable {
    public private(set) var workloads: [String: Specola_V1_Workload] = [:]
    /// Instances an agent reported running that are not current, by instance id; each gets a stop.
    public private(set) var strays: [String: Specola_V1_StrayWorkload] = [:]

    /// A crash or fence after this long running starts the restart and relocation counts afresh.
    public static let stableRunMs: Int64 = 10 * 60 * 1000
    public static let defaultMaxRestarts: UInt32 = 1
    public static let defaultMaxRelocations: UInt32 = 1
    public static let controller = "controller"

    public init() {}

    public init(snapshot: Specola_V1_ClusterSnapshot) {
        for workload in snapshot.workloads { workloads[workload.name] = workload }
        for stray in snapshot.workloadStrays {
            strays[Self.instanceID(stray.name, stray.generation)] = stray
        }
    }

    public func write(into snapshot: inout Specola_V1_ClusterSnapshot) {
        snapshot.workloads = workloads.values.sorted { $0.name < $1.name }
        snapshot.workloadStrays = strays.sorted { $0.key < $1.key }.map(\.value)
    }

    public static func isFenced(_ node: String, in nodes: [String: Specola_V1_Node]) -> Bool {
        nodes[node]?.committed == .fenced
    }

    /// The cores and memory that HA workloads which may be running hold, by node; the job
    /// scheduler and the HA planner both leave them out of what a node offers.
    public var heldByNode: [String: Resources] {
        var held: [String: Resources] = [:]
        for workload in workloads.values where WorkloadPhase(rawValue: workload.phase)?.mayRun == true {
            held[workload.node, default: .zero] += WorkloadPlanner.request(workload)
        }
        return held
    }

    /// The relocations that count against the limit. An instance that ran `stableRunMs` before
    /// its node was fenced starts the count afresh, so a VM is not put in error by the death of
    /// a second node months after the first.
    public static func relocationsSpent(_ workload: Specola_V1_Workload, nodes: [String: Specola_V1_Node]) -> UInt32 {
        guard workload.startedAtUnixMs > 0, let node = nodes[workload.node], node.committed == .fenced,
              node.statusSinceUnixMs - workload.startedAtUnixMs >= stableRunMs else { return workload.relocations }
        return 0
    }

    /// The id of the instruction that starts an instance (see `InstructionID`).
    public static func instanceID(_ name: String, _ generation: UInt64) -> String { InstructionID.workloadInstance(name, generation) }

    /// Workload names become pod names, domain names and instruction ids: keep them plain.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty else { return "a workload needs a name" }
        guard name.count <= 63 else { return "name '\(name)' is longer than 63 characters" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard name.allSatisfy(allowed.contains), name.first!.isLetter || name.first!.isNumber else {
            return "name '\(name)' may hold only letters, digits, '-', '_' and '.', and must start with a letter or digit"
        }
        return nil
    }

    // MARK: - Commands

    public mutating func apply(_ command: Specola_V1_WorkloadCommand, at: Int64, nodes: [String: Specola_V1_Node]) -> ApplyOutcome {
        let name = command.name
        if case .define(let definition) = command.op {
            return define(definition, name: name, by: command.requestedBy, at: at)
        }
        guard var workload = workloads[name] else { return .rejected(reason: "no workload '\(name)'") }
        let phase = WorkloadPhase(rawValue: workload.phase) ?? .pending
        switch command.op {
        case .define, nil:
            return .rejected(reason: "workload command without an operation")
        case .setDesired(let text):
            guard let desired = WorkloadDesired(rawValue: text) else {
                return .rejected(reason: "'\(text)' is not a desired state; use started, stopped or disabled")
            }
            setDesired(desired, of: &workload, phase: phase)
        case .delete:
            guard !phase.mayRun else {
                return .rejected(reason: "\(workload.kind) '\(name)' may still run on \(workload.node) (\(phase.rawValue)); disable it and wait until it is stopped")
            }
            workloads.removeValue(forKey: name)
            return .done
        case .place(let placement):
            if let problem = placementProblem(placement, workload, phase: phase, nodes: nodes) {
                return .rejected(reason: problem)
            }
            switch placement.reason {
            case "restart": workload.restarts += 1
            case "relocate":
                workload.relocations = Self.relocationsSpent(workload, nodes: nodes) + 1
                workload.restarts = 0
            default: break
            }
            workload.generation = placement.generation
            workload.node = placement.node
            // Whatever an agent claimed about this instance before it existed is void.
            strays.removeValue(forKey: Self.instanceID(name, placement.generation))
            workload.phase = WorkloadPhase.starting.rawValue
            workload.startedAtUnixMs = 0
            workload.message = placement.message
        case .fail(let failure):
            guard failure.generation == workload.generation else { return .rejected(reason: "stale failure of '\(name)'") }
            guard !phase.mayRun || Self.isFenced(workload.node, in: nodes) else {
                return .rejected(reason: "'\(name)' may still run on \(workload.node); it cannot be declared failed")
            }
            workload.phase = WorkloadPhase.error.rawValue
            workload.message = failure.reason
        case .release(let release):
            guard release.generation == workload.generation, Self.isFenced(workload.node, in: nodes),
                workload.desired != WorkloadDesired.started.rawValue
            else { return .rejected(reason: "'\(name)' cannot be released: its node is not fenced or it is to run") }
            workload.phase = WorkloadPhase.stopped.rawValue
            workload.message = release.reason
        case .evacuate(let evacuate):
            guard evacuate.generation == workload.generation, phase == .starting || phase == .running,
                workload.desired == WorkloadDesired.started.rawValue
            else { return .rejected(reason: "'\(name)' cannot be evacuated now (\(phase.rawValue))") }
            // Stopped for a move: once the agent confirms, it is pending again and placed elsewhere.
            workload.phase = WorkloadPhase.stopping.rawValue
            workload.message = evacuate.reason
        }
        workload.changedAtUnixMs = at
        workload.revision += 1
        workloads[name] = workload
        return .done
    }

    private mutating func define(_ definition: Specola_V1_Workload, name: String, by: String, at: Int64) -> ApplyOutcome {
        if let problem = Self.nameProblem(name) { return .rejected(reason: problem) }
        guard WorkloadKind(rawValue: definition.kind) != nil else {
            return .rejected(reason: "'\(definition.kind)' is not a workload kind; use vm or pod")
        }
        guard !definition.definition.isEmpty else { return .rejected(reason: "\(definition.kind) '\(name)' has an empty definition") }
        let desired = definition.desired.isEmpty ? .started : WorkloadDesired(rawValue: definition.desired)
        guard let desired else { return .rejected(reason: "'\(definition.desired)' is not a desired state; use started, stopped or disabled") }
        if let existing = workloads[name] {
            return .rejected(reason: "a \(existing.kind) named '\(name)' exists already; delete it first or pick another name")
        }
        var workload = Specola_V1_Workload.with {
            $0.name = name
            $0.kind = definition.kind
            $0.definition = definition.definition
            $0.desired = desired.rawValue
            $0.homeNode = definition.homeNode
            $0.maxRestarts = definition.maxRestarts
            $0.maxRelocations = definition.maxRelocations
            $0.cpuMillicores = max(0, definition.cpuMillicores)
            $0.memoryBytes = max(0, definition.memoryBytes)
            $0.createdAtUnixMs = at
            $0.changedAtUnixMs = at
            $0.createdBy = by
            $0.revision = 1
        }
        workload.phase = (desired == .started ? WorkloadPhase.pending : .stopped).rawValue
        workloads[name] = workload
        return .done
    }

    private func setDesired(_ desired: WorkloadDesired, of workload: inout Specola_V1_Workload, phase: WorkloadPhase) {
        let previous = WorkloadDesired(rawValue: workload.desired) ?? .started
        workload.desired = desired.rawValue
        switch desired {
        case .started:
            // Enabling after disable or error starts with fresh limits, as Proxmox does.
            if previous == .disabled || phase == .error {
                workload.restarts = 0
                workload.relocations = 0
            }
            if phase == .stopped || phase == .error {
                workload.phase = WorkloadPhase.pending.rawValue
                workload.message = ""
            }
        case .stopped, .disabled:
            switch phase {
            case .starting, .running: workload.phase = WorkloadPhase.stopping.rawValue
            case .pending, .crashed, .error: workload.phase = WorkloadPhase.stopped.rawValue
            case .stopping, .stopped: break
            }
        }
    }

    /// Why a placement must not be applied, or nil. This is where a double start is refused.
    private func placementProblem(
        _ placement: Specola_V1_WorkloadPlacement, _ workload: Specola_V1_Workload, phase: WorkloadPhase,
        nodes: [String: Specola_V1_Node]
    ) -> String? {
        let name = workload.name
        guard placement.generation == workload.generation + 1 else { return "stale placement of '\(name)'" }
        guard workload.desired == WorkloadDesired.started.rawValue else { return "'\(name)' is not to run" }
        guard nodes[placement.node] != nil else { return "no node '\(placement.node)'" }
        guard !Self.isFenced(placement.node, in: nodes) else { return "node \(placement.node) is fenced" }
        if phase.mayRun && !Self.isFenced(workload.node, in: nodes) {
            return "'\(name)' may still run on \(workload.node); a second instance would be a double start"
        }
        switch placement.reason {
        case "start":
            guard phase == .pending else { return "'\(name)' is \(phase.rawValue), not pending" }
        case "restart":
            guard phase == .crashed, placement.node == workload.node else { return "'\(name)' has not crashed on \(placement.node)" }
            guard workload.restarts < workload.maxRestarts else { return "'\(name)' has spent its \(workload.maxRestarts) restart(s)" }
        case "relocate":
            guard placement.node != workload.node else { return "a relocation of '\(name)' must go to another node" }
            guard Self.relocationsSpent(workload, nodes: nodes) < workload.maxRelocations else {
                return "'\(name)' has spent its \(workload.maxRelocations) relocation(s)"
            }
        default:
            return "'\(placement.reason)' is not a placement reason"
        }
        return nil
    }

    // MARK: - Agent reports

    /// An agent's word about one instance. Only the node that runs the current
    /// instance moves the workload; a report of another instance running makes it a stray.
    public mutating func apply(_ event: Specola_V1_WorkloadEvent, from node: String, at: Int64) {
        let id = Self.instanceID(event.name, event.generation)
        guard var workload = workloads[event.name], workload.node == node, workload.generation == event.generation,
            let phase = WorkloadPhase(rawValue: workload.phase), phase.mayRun
        else {
            if event.kind == .started {
                strays[id] = .with {
                    $0.name = event.name
                    $0.kind = event.workloadKind
                    $0.generation = event.generation
                    $0.node = node
                }
            } else {
                strays.removeValue(forKey: id)
            }
            return
        }
        let desired = WorkloadDesired(rawValue: workload.desired) ?? .started
        switch event.kind {
        case .started:
            guard phase == .starting else { return }
            workload.phase = WorkloadPhase.running.rawValue
            workload.startedAtUnixMs = at
            workload.message = event.message
        case .failedToStart, .exited, .stopped:
            if phase == .stopping {
                workload.phase = (desired == .started ? WorkloadPhase.pending : .stopped).rawValue
            } else {
                workload.phase = WorkloadPhase.crashed.rawValue
                if workload.startedAtUnixMs > 0 && at - workload.startedAtUnixMs >= Self.stableRunMs {
                    workload.restarts = 0
                    workload.relocations = 0
                }
            }
            workload.message = event.message
        case .unspecified, .UNRECOGNIZED:
            return
        }
        workload.changedAtUnixMs = at
        workload.revision += 1
        workloads[event.name] = workload
    }

    // MARK: - Instructions

    /// Every start and stop the state calls for, by node: stops of strays first,
    /// then each workload's. The hub sends each id once per connection; agents run each at most once.
    public func dueInstructions() -> [(node: String, instruction: Specola_V1_Instruction)] {
        var due: [(node: String, instruction: Specola_V1_Instruction)] = []
        for (_, stray) in strays.sorted(by: { $0.key < $1.key }) {
            due.append((stray.node, Self.stop(name: stray.name, kind: stray.kind, generation: stray.generation,
                                              reason: "not the current instance of \(stray.name)")))
        }
        for workload in workloads.values.sorted(by: { $0.name < $1.name }) {
            let id = Self.instanceID(workload.name, workload.generation)
            switch WorkloadPhase(rawValue: workload.phase) {
            case .starting:
                due.append((workload.node, .with {
                    $0.id = id
                    $0.startWorkload = .with {
                        $0.name = workload.name
                        $0.kind = workload.kind
                        $0.generation = workload.generation
                        $0.definition = workload.definition
                    }
                }))
            case .stopping:
                due.append((workload.node, Self.stop(name: workload.name, kind: workload.kind,
                                                     generation: workload.generation, reason: "\(workload.kind) \(workload.desired)")))
            default:
                break
            }
        }
        return due
    }

    private static func stop(name: String, kind: String, generation: UInt64, reason: String) -> Specola_V1_Instruction {
        .with {
            $0.id = InstructionID.stopWorkload(name: name, generation: generation).text
            $0.stopWorkload = .with {
                $0.name = name
                $0.kind = kind
                $0.generation = generation
                $0.reason = reason
            }
        }
    }
}

/// Shorthands for building workload commands.
extension Specola_V1_Command {
    public static func workload(_ name: String, at: Int64, by: String, _ op: Specola_V1_WorkloadCommand.OneOf_Op) -> Self {
        .with {
            $0.proposedAtUnixMs = at
            $0.workload = .with {
                $0.name = name
                $0.op = op
                $0.requestedBy = by
            }
        }
    }
}
