import Foundation
import Logging
import SpecolaProtocol
import SpecolaWire

/// Long-running work the agent claimed in its ledger, as the `WorkRunner` holds it: a task
/// (`RunTask`) or an HA workload instance (`StartWorkload`). What differs between the two lives
/// here: ids and names, the driver, and how an event goes on the wire.
public enum ClaimedWork: Sendable {
    case task(Specola_V1_RunTask)
    case workload(Specola_V1_StartWorkload)

    /// Reads back a ledger entry's payload; nil when it cannot be read.
    init?(_ entry: LedgerEntry) {
        guard let payload = entry.payload else { return nil }
        switch entry.family ?? WorkFamily(instructionID: entry.id) {
        case .task:
            guard var run = try? Specola_V1_RunTask(serializedBytes: payload) else { return nil }
            run.allocationID = entry.id
            self = .task(run)
        case .workload:
            guard let start = try? Specola_V1_StartWorkload(serializedBytes: payload), !start.name.isEmpty else { return nil }
            self = .workload(start)
        case .storage:
            return nil
        }
    }

    public var family: WorkFamily {
        switch self {
        case .task: .task
        case .workload: .workload
        }
    }

    /// The instruction id, the key of its ledger entry.
    public var id: String {
        switch self {
        case .task(let run): run.allocationID
        case .workload(let start): InstructionID.workloadInstance(start.name, start.generation)
        }
    }

    /// The name the runtime knows it by: the allocation id of a task, the name of a workload.
    public var name: String {
        switch self {
        case .task(let run): run.allocationID
        case .workload(let start): start.name
        }
    }

    public var generation: UInt64 {
        switch self {
        case .task: 0
        case .workload(let start): start.generation
        }
    }

    /// The driver that runs it: "podman" or "exec" for a task, "vm" or "pod" for a workload.
    public var driverKind: String {
        switch self {
        case .task(let run): run.driver == "exec" ? "exec" : "podman"
        case .workload(let start): start.kind
        }
    }

    var driverWork: DriverWork {
        switch self {
        case .task(let run): .task(Self.launch(run))
        case .workload(let start): .workload(name: start.name, generation: start.generation, definition: start.definition)
        }
    }

    var logMetadata: Logger.Metadata {
        switch self {
        case .task(let run): ["allocation.id": "\(run.allocationID)", "task.id": "\(run.taskID)", "driver": "\(run.driver)"]
        case .workload(let start):
            ["workload.name": "\(start.name)", "workload.kind": "\(start.kind)", "workload.generation": "\(start.generation)"]
        }
    }

    /// Whether the ledger records an outcome of `kind` as a success.
    func succeeded(_ kind: WorkEventKind, exitCode: Int32) -> Bool {
        switch self {
        case .task: kind == .exited && exitCode == 0
        case .workload: kind == .stopped
        }
    }

    /// Why it cannot start: no driver for its kind on this agent.
    var noDriverMessage: String {
        switch self {
        case .task(let run): "this agent has no \(run.driver) task driver"
        case .workload(let start): "this agent runs no \(start.kind) workloads (no \(start.kind == "vm" ? "libvirt.uri" : "podman") configured)"
        }
    }

    /// What the event and the ledger say about work a restarted agent could not adopt.
    func lostAfterRestart(runtimeMissing: Bool) -> (event: String, ledger: String) {
        switch self {
        case .task:
            ("the agent restarted before the task finished and cannot re-attach to it", "lost in an agent restart")
        case .workload(let start):
            runtimeMissing
                ? ("the agent restarted without a \(start.kind) runtime", "the agent restarted without a \(start.kind) runtime")
                : ("not running after an agent restart", "not running after an agent restart")
        }
    }

    /// The event for `kind` on the wire; `outcome` adds a task's exit code, output tails and declared outputs.
    func event(_ kind: WorkEventKind, message: String, outcome: TaskOutcome? = nil, atUnixMs: Int64) -> WireEvent {
        switch self {
        case .task(let run):
            var event = Specola_V1_TaskEvent.with {
                $0.allocationID = run.allocationID
                $0.message = message
                $0.atUnixMs = atUnixMs
            }
            switch kind {
            case .started: event.kind = .started
            case .exited: event.kind = .exited
            case .stopped: event.kind = .stopped
            case .timedOut: event.kind = .timedOut
            case .failedToStart: event.kind = .failedToStart
            case .lost: event.kind = .lost
            }
            if let outcome {
                event.exitCode = outcome.exitCode
                event.stdoutTail = outcome.stdout
                event.stderrTail = outcome.stderr
                if kind == .exited { event.outputs = WorkRunner.outputs(in: outcome.stdout, declared: run.outputs) }
            }
            return .task(event)
        case .workload(let start):
            return .workload(.with {
                $0.name = start.name
                $0.workloadKind = start.kind
                $0.generation = start.generation
                switch kind {
                case .started: $0.kind = .started
                case .failedToStart: $0.kind = .failedToStart
                case .stopped: $0.kind = .stopped
                // A workload that ended by itself, timed out or was not found after a restart has exited.
                case .exited, .timedOut, .lost: $0.kind = .exited
                }
                $0.message = message
                $0.atUnixMs = atUnixMs
            })
        }
    }

    static func launch(_ run: Specola_V1_RunTask) -> TaskLaunch {
        var spec = TaskLaunch(allocationID: run.allocationID, image: run.image, command: run.command)
        spec.environment = run.env
        spec.mounts = run.mounts.map { TaskLaunch.Mount(source: $0.source, target: $0.target, readOnly: $0.readOnly) }
        if run.cpuMillicores > 0 { spec.cpus = Double(run.cpuMillicores) / 1000 }
        if run.memoryBytes > 0 { spec.memoryBytes = UInt64(run.memoryBytes) }
        if run.timeoutSeconds > 0 { spec.timeout = .seconds(run.timeoutSeconds) }
        return spec
    }
}

/// What happened to claimed work, whatever its family.
enum WorkEventKind: Sendable {
    case started, exited, stopped, timedOut, failedToStart, lost
}

/// An event as it goes into the outbox.
enum WireEvent {
    case task(Specola_V1_TaskEvent)
    case workload(Specola_V1_WorkloadEvent)
}
