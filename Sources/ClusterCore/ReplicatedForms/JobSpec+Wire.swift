import Foundation
import SpecolaJobs
import SpecolaWire

/// A job spec in the replicated state: `Specola_V1_JobSpec` both ways, and the JSON that
/// builds before it wrote into `SubmitJobCommand.legacy_spec_json` and `JobRecord.legacy_spec_json`.
extension Specola_V1_JobSpec {
    public init(_ spec: JobSpec) {
        self = .with {
            $0.kind = spec.kind == .job ? .job : .pipeline
            $0.metadata = .with {
                $0.name = spec.metadata.name
                $0.owner = spec.metadata.owner
                $0.project = spec.metadata.project
                $0.priority = Int64(spec.metadata.priority)
            }
            $0.spread = spec.spread
            $0.tasks = spec.tasks.map(Specola_V1_JobTask.init)
        }
    }
}

extension JobSpec {
    public init(wire: Specola_V1_JobSpec) throws(ReplicatedFormError) {
        let kind: Kind
        switch wire.kind {
        case .job: kind = .job
        case .pipeline: kind = .pipeline
        default: throw .unknown("job kind", wire.kind)
        }
        let metadata = JobMetadata(
            name: wire.metadata.name, owner: wire.metadata.owner, project: wire.metadata.project,
            priority: Int(wire.metadata.priority))
        var tasks: [TaskSpec] = []
        for task in wire.tasks { tasks.append(try TaskSpec(wire: task)) }
        self.init(kind: kind, metadata: metadata, spread: wire.spread, tasks: tasks)
    }

    /// The JSON form of builds before `Specola_V1_JobSpec`.
    public init(legacyJSON: Data) throws {
        self = try JSONDecoder().decode(JobSpec.self, from: legacyJSON)
    }
}

extension Specola_V1_SubmitJobCommand {
    /// The submitted spec, from whichever form the proposing build wrote.
    public func decodedSpec() throws -> JobSpec {
        hasSpec ? try JobSpec(wire: spec) : try JobSpec(legacyJSON: legacySpecJson)
    }
}

extension Specola_V1_JobTask {
    init(_ task: TaskSpec) {
        self = .with {
            $0.name = task.name
            switch task.driver {
            case .podman(let image, let command, let args):
                $0.podman = .with {
                    $0.image = image
                    if let command { $0.command = command }
                    $0.args = args
                }
            case .exec(let command, let args):
                $0.exec = .with { $0.command = command; $0.args = args }
            }
            $0.resources = .with {
                $0.cpuMillicores = task.resources.cpuMillicores
                $0.memoryBytes = task.resources.memoryBytes
                $0.gpus = task.resources.gpus
                $0.scratchBytes = task.resources.scratchBytes
            }
            $0.constraints = task.constraints.map(Specola_V1_LabelConstraint.init)
            $0.affinities = task.affinities.map { affinity in
                .with { $0.constraint = .init(affinity.constraint); $0.weight = Int64(affinity.weight) }
            }
            $0.count = Int64(task.count)
            if let array = task.array {
                $0.array = .with { $0.first = Int64(array.indices.lowerBound); $0.last = Int64(array.indices.upperBound) }
            }
            $0.env = .init(task.env)
            $0.mounts = task.mounts.map { mount in
                .with { $0.source = mount.source; $0.target = mount.target; $0.readOnly = mount.readOnly }
            }
            $0.retries = .init(task.retries)
            if let timeout = task.timeoutSeconds { $0.timeoutSeconds = timeout }
            $0.depends = task.depends
            if let items = task.foreach { $0.foreach.items = items }
            $0.outputs = task.outputs
            $0.inputs = task.inputs.map { input in
                .with { $0.variable = input.variable; $0.step = input.step; $0.key = input.key }
            }
        }
    }
}

extension TaskSpec {
    init(wire: Specola_V1_JobTask) throws(ReplicatedFormError) {
        let driver: TaskDriver
        switch wire.driver {
        case .podman(let podman): driver = .podman(image: podman.image, command: podman.hasCommand ? podman.command : nil, args: podman.args)
        case .exec(let exec): driver = .exec(command: exec.command, args: exec.args)
        case nil: throw ReplicatedFormError("task \(wire.name) names no driver this build knows; upgrade this replica")
        }
        var constraints: [Constraint] = []
        for constraint in wire.constraints { constraints.append(try Constraint(wire: constraint)) }
        var affinities: [Affinity] = []
        for affinity in wire.affinities {
            affinities.append(Affinity(try Constraint(wire: affinity.constraint), weight: Int(affinity.weight)))
        }
        var array: TaskArray?
        if wire.hasArray {
            guard wire.array.first <= wire.array.last else {
                throw ReplicatedFormError("task \(wire.name): array \(wire.array.first)...\(wire.array.last) is empty")
            }
            array = TaskArray(indices: Int(wire.array.first)...Int(wire.array.last))
        }
        let resources = Resources(
            cpuMillicores: wire.resources.cpuMillicores, memoryBytes: wire.resources.memoryBytes,
            gpus: wire.resources.gpus, scratchBytes: wire.resources.scratchBytes)
        self.init(
            name: wire.name, driver: driver, resources: resources, constraints: constraints, affinities: affinities,
            count: Int(wire.count), array: array, env: wire.env.dictionary,
            mounts: wire.mounts.map { Mount(source: $0.source, target: $0.target, readOnly: $0.readOnly) },
            retries: RetryPolicy(wire: wire.retries), timeoutSeconds: wire.hasTimeoutSeconds ? wire.timeoutSeconds : nil,
            depends: wire.depends, foreach: wire.hasForeach ? wire.foreach.items : nil, outputs: wire.outputs,
            inputs: wire.inputs.map { StepInput(variable: $0.variable, step: $0.step, key: $0.key) })
    }
}

extension Specola_V1_LabelConstraint {
    init(_ constraint: Constraint) {
        self = .with {
            $0.label = constraint.label
            $0.values = constraint.values
            switch constraint.op {
            case .equal: $0.op = .equal
            case .notEqual: $0.op = .notEqual
            case .in: $0.op = .in
            case .notIn: $0.op = .notIn
            case .exists: $0.op = .exists
            }
        }
    }
}

extension Constraint {
    init(wire: Specola_V1_LabelConstraint) throws(ReplicatedFormError) {
        let op: Operator
        switch wire.op {
        case .equal: op = .equal
        case .notEqual: op = .notEqual
        case .in: op = .in
        case .notIn: op = .notIn
        case .exists: op = .exists
        default: throw .unknown("constraint operator", wire.op)
        }
        self.init(label: wire.label, op: op, values: wire.values)
    }
}

extension Specola_V1_JobRetryPolicy {
    init(_ policy: RetryPolicy) {
        self = .with {
            $0.attempts = Int64(policy.attempts)
            $0.backoffSeconds = policy.backoffSeconds
            $0.maxBackoffSeconds = policy.maxBackoffSeconds
        }
    }
}

extension RetryPolicy {
    init(wire: Specola_V1_JobRetryPolicy) {
        self.init(attempts: Int(wire.attempts), backoffSeconds: wire.backoffSeconds, maxBackoffSeconds: wire.maxBackoffSeconds)
    }
}
