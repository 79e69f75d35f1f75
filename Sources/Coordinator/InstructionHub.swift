import SpecolaClusterCore
import Foundation
import Logging
import SpecolaJobs
import SpecolaProtocol
import Synchronization

/// The leader's outgoing side of the agent streams. Level-triggered: each
/// `dispatch` compares the allocations, workloads and pending storage actions in
/// the replicated state with what this connection was already sent, and sends
/// the rest. A fresh connection (agent restart, new leader) gets everything again;
/// the agent's instruction ledger makes the repeat harmless.
package final class InstructionHub: Sendable {
    private struct Connection {
        let id: UInt64
        let outgoing: AsyncStream<Specola_V1_CoordinatorMessage>.Continuation
        var sent: Set<String> = []
    }

    private let connections = Mutex<[String: Connection]>([:])
    private let nextID = Atomic<UInt64>(1)
    private let logger: Logger

    package init(logger: Logger) {
        self.logger = logger
    }

    /// Registers an agent's stream; a newer stream of the same node replaces the older one.
    func attach(node: String, outgoing: AsyncStream<Specola_V1_CoordinatorMessage>.Continuation) -> UInt64 {
        let id = nextID.add(1, ordering: .relaxed).newValue
        connections.withLock { $0[node] = Connection(id: id, outgoing: outgoing) }
        return id
    }

    func detach(node: String, id: UInt64) {
        connections.withLock { all in
            if all[node]?.id == id { all.removeValue(forKey: node) }
        }
    }

    var connectedNodes: Set<String> { connections.withLock { Set($0.keys) } }

    /// Sends every instruction the state calls for that a connection has not had yet.
    func dispatch(_ state: ClusterState) {
        let due = connections.withLock { all -> [(Specola_V1_CoordinatorMessage, AsyncStream<Specola_V1_CoordinatorMessage>.Continuation)] in
            guard !all.isEmpty else { return [] }
            var due: [(Specola_V1_CoordinatorMessage, AsyncStream<Specola_V1_CoordinatorMessage>.Continuation)] = []
            for allocation in state.jobs.allocations.values {
                guard let outgoing = all[allocation.node]?.outgoing else { continue }
                let id = (allocation.stopping ? InstructionID.stopTask(allocation: allocation.id) : .runTask(allocation: allocation.id)).text
                guard all[allocation.node]?.sent.contains(id) == false else { continue }
                var instruction = Specola_V1_Instruction.with { $0.id = id }
                if allocation.stopping {
                    instruction.stopTask = .with { $0.allocationID = allocation.id; $0.reason = allocation.stopReason }
                } else if !allocation.started, let run = Self.runTask(allocation, state: state) {
                    instruction.runTask = run
                } else {
                    continue
                }
                all[allocation.node]?.sent.insert(id)
                due.append((.with { $0.instruction = instruction }, outgoing))
            }
            for (node, instruction) in state.workloads.dueInstructions() + state.storage.dueInstructions() {
                guard let outgoing = all[node]?.outgoing, all[node]?.sent.contains(instruction.id) == false else { continue }
                all[node]?.sent.insert(instruction.id)
                due.append((.with { $0.instruction = instruction }, outgoing))
            }
            return due
        }
        for (message, outgoing) in due {
            outgoing.yield(message)
        }
        if !due.isEmpty {
            logger.debug("instructions sent", metadata: ["count": "\(due.count)"])
        }
    }

    /// What the agent needs to run one allocation, with step inputs read from the KV.
    static func runTask(_ allocation: Specola_V1_Allocation, state: ClusterState) -> Specola_V1_RunTask? {
        guard let entry = state.jobs.jobs[allocation.jobID], let instance = entry.instances[allocation.taskID] else { return nil }
        let task = instance.task
        var env = instance.env
        env["SPECOLA_JOB"] = entry.id
        env["SPECOLA_TASK"] = instance.id
        env["SPECOLA_ALLOCATION_ID"] = allocation.id
        for input in task.inputs {
            let prefix = JobBook.outputPrefix(job: entry.id, step: input.step)
            let values = state.kv.values
                .filter { $0.key.hasPrefix(prefix) && $0.key.hasSuffix("/" + input.key) }
                .sorted { $0.key < $1.key }
                .map { String(decoding: $0.value, as: UTF8.self) }
            env[input.variable] = values.joined(separator: "\n")
        }
        return .with {
            $0.allocationID = allocation.id
            $0.jobID = entry.id
            $0.taskID = instance.id
            switch task.driver {
            case let .podman(image, command, args):
                $0.driver = "podman"
                $0.image = image
                $0.command = (command.map { [$0] } ?? []) + args
            case let .exec(command, args):
                $0.driver = "exec"
                $0.command = [command] + args
            }
            $0.env = env
            $0.mounts = task.mounts.map { mount in
                .with { $0.source = mount.source; $0.target = mount.target; $0.readOnly = mount.readOnly }
            }
            $0.cpuMillicores = task.resources.cpuMillicores
            $0.memoryBytes = task.resources.memoryBytes
            $0.timeoutSeconds = task.timeoutSeconds ?? 0
            $0.outputs = task.outputs
        }
    }
}
