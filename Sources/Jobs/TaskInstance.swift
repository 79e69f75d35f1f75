/// One runnable instance of a task after count, array and foreach expansion: the unit the scheduler places.
///
/// IDs are `JOB/TASK` (in the cluster JOB is `PROJECT/NAME`), with `[i]` for a foreach item, `#k` for an array index and `.r` for a replica when
/// count > 1, e.g. `reduce/calibrate[3]` or `sim/run#17.1`. They are stable across versions of a spec, which is
/// what lets `specola job plan` diff a new version against what runs.
public struct TaskInstance: Sendable, Hashable, Codable {
    /// Unique within the cluster while the job exists.
    public var id: String
    /// The step or task name with its foreach suffix, e.g. `calibrate[3]`: what other steps' fan-in waits for.
    public var stepInstance: String
    /// The task as written, shared by all its instances.
    public var task: TaskSpec
    /// The environment the instance starts with: the task's env plus `SPECOLA_*` variables.
    public var env: [String: String]
    /// Instance IDs that must succeed before this one may be placed.
    public var waitsFor: [String]

    /// Creates an instance.
    public init(id: String, stepInstance: String, task: TaskSpec, env: [String: String], waitsFor: [String]) {
        self.id = id
        self.stepInstance = stepInstance
        self.task = task
        self.env = env
        self.waitsFor = waitsFor
    }
}

extension JobSpec {
    /// All instances of the job, in pipeline order. Fan-in: a step that depends on a foreach step waits for
    /// every instance of it; a foreach step that depends on another foreach step waits for all of them too
    /// (no item-wise zip yet).
    /// `jobID` prefixes the instance IDs (the cluster passes `PROJECT/NAME`); by default the job's name.
    public func instances(jobID: String? = nil) -> [TaskInstance] {
        let prefix = jobID ?? metadata.name
        let byName = Dictionary(tasks.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let graph = PipelineGraph(steps: tasks.map(\.name), depends: Dictionary(tasks.map { ($0.name, $0.depends) }, uniquingKeysWith: { a, _ in a }))
        var idsByStep: [String: [String]] = [:]
        var result: [TaskInstance] = []
        for name in graph.order() {
            guard let task = byName[name] else { continue }
            let waitsFor = task.depends.flatMap { idsByStep[$0, default: []] }
            let items: [(suffix: String, item: String?)] =
                task.foreach.map { $0.enumerated().map { ("[\($0.offset)]", $0.element) } } ?? [("", nil)]
            let indices: [Int?] = task.array.map { Array($0.indices) } ?? [nil]
            for (suffix, item) in items {
                for index in indices {
                    for replica in 0..<task.count {
                        var id = "\(prefix)/\(task.name)\(suffix)"
                        if let index { id += "#\(index)" }
                        if task.count > 1 { id += ".\(replica)" }
                        var env = task.env
                        if let item { env[TaskSpec.itemEnvironmentKey] = item }
                        if let index { env[TaskArray.environmentKey] = String(index) }
                        result.append(
                            TaskInstance(id: id, stepInstance: task.name + suffix, task: task, env: env, waitsFor: waitsFor))
                        idsByStep[name, default: []].append(id)
                    }
                }
            }
        }
        return result
    }

    /// Scheduler requests for the instances that wait for nothing, i.e. what can be queued right away.
    public func initialRequests(submitIndex: UInt64, jobID: String? = nil) -> [TaskRequest] {
        instances(jobID: jobID).filter(\.waitsFor.isEmpty).map { TaskRequest(instance: $0, job: self, jobID: jobID, submitIndex: submitIndex) }
    }
}
