import Foundation
import SpecolaJobs
import SpecolaWire

/// A job's run in the replicated state: `Specola_V1_JobRun` both ways, and the JSON that builds
/// before it wrote into `JobRecord.legacy_run_json`.
extension Specola_V1_JobRun {
    public init(_ run: JobRun) {
        self = .with {
            $0.id = run.id
            $0.tasks = run.tasks.values.sorted { $0.id < $1.id }.map(Specola_V1_TaskRun.init)
            $0.order = run.order
            $0.cancelled = run.cancelled
        }
    }
}

extension JobRun {
    public init(wire: Specola_V1_JobRun) throws(ReplicatedFormError) {
        self.init(id: wire.id, instances: [])
        for task in wire.tasks { tasks[task.id] = try TaskRun(wire: task) }
        order = wire.order
        cancelled = wire.cancelled
    }

    /// The JSON form of builds before `Specola_V1_JobRun`.
    public init(legacyJSON: Data) throws {
        self = try JSONDecoder().decode(JobRun.self, from: legacyJSON)
    }
}

extension Specola_V1_JobRecord {
    /// The job's spec and run, from whichever form the writing build used.
    public func decodedSpecAndRun() throws -> (spec: JobSpec, run: JobRun) {
        let spec = hasSpec ? try JobSpec(wire: self.spec) : try JobSpec(legacyJSON: legacySpecJson)
        let run = hasRun ? try JobRun(wire: self.run) : try JobRun(legacyJSON: legacyRunJson)
        return (spec, run)
    }
}

extension Specola_V1_TaskRun {
    init(_ task: TaskRun) {
        self = .with {
            $0.id = task.id
            $0.waitsFor = task.waitsFor
            $0.retries = .init(task.retries)
            switch task.state {
            case .pending: $0.state = .pending
            case .placed: $0.state = .placed
            case .running: $0.state = .running
            case .succeeded: $0.state = .succeeded
            case .failed: $0.state = .failed
            case .cancelled: $0.state = .cancelled
            }
            $0.failures = Int64(task.failures)
            $0.relocations = Int64(task.relocations)
            if let node = task.node { $0.node = node }
            if let allocation = task.allocationID { $0.allocationID = allocation }
            if let exitCode = task.exitCode { $0.exitCode = exitCode }
            $0.message = task.message
            $0.notBeforeUnixMs = task.notBeforeUnixMs
        }
    }
}

extension TaskRun {
    init(wire: Specola_V1_TaskRun) throws(ReplicatedFormError) {
        self.init(id: wire.id, waitsFor: wire.waitsFor, retries: RetryPolicy(wire: wire.retries))
        switch wire.state {
        case .pending: state = .pending
        case .placed: state = .placed
        case .running: state = .running
        case .succeeded: state = .succeeded
        case .failed: state = .failed
        case .cancelled: state = .cancelled
        default: throw .unknown("task state of \(wire.id):", wire.state)
        }
        failures = Int(wire.failures)
        relocations = Int(wire.relocations)
        node = wire.hasNode ? wire.node : nil
        allocationID = wire.hasAllocationID ? wire.allocationID : nil
        exitCode = wire.hasExitCode ? wire.exitCode : nil
        message = wire.message
        notBeforeUnixMs = wire.notBeforeUnixMs
    }
}
