/// What submitting a new version of a job would do to what runs now: the output of `specola job plan`.
public struct JobDiff: Sendable, Hashable {
    /// One instance that would start, stop or be replaced.
    public struct Entry: Sendable, Hashable {
        /// The instance ID.
        public var taskID: String
        /// Where it runs now, if it runs.
        public var currentNode: String?
        /// Where the plan would put it, if placed.
        public var plannedNode: String?
        /// Why the plan could not place it, if it could not.
        public var reason: PlacementFailure?
        /// Spec fields that differ, for replaced instances: `driver`, `resources`, `env`, ...
        public var changedFields: [String]
    }

    /// Instances the new version adds.
    public var added: [Entry]
    /// Instances the new version no longer has; they would be stopped.
    public var removed: [Entry]
    /// Instances whose definition changed; they would be stopped and placed again.
    public var changed: [Entry]
    /// Instance IDs that stay as they are.
    public var unchanged: [String]

    /// True when submitting would change nothing.
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
}

extension Plan {
    /// Compares the running version of a job with the instances of a new version, reading this plan (made for
    /// the added and changed instances) for where they would go.
    public func diff(running: [RunningTask], proposed: [TaskInstance]) -> JobDiff {
        let nodes = nodeByTask
        let reasons = reasonByTask
        let current = Dictionary(running.map { ($0.instance.id, $0) }, uniquingKeysWith: { first, _ in first })
        let next = Set(proposed.map(\.id))
        var diff = JobDiff(added: [], removed: [], changed: [], unchanged: [])
        for instance in proposed {
            let planned = JobDiff.Entry(
                taskID: instance.id, currentNode: current[instance.id]?.node, plannedNode: nodes[instance.id],
                reason: reasons[instance.id], changedFields: [])
            guard let old = current[instance.id] else {
                diff.added.append(planned)
                continue
            }
            let fields = Self.changedFields(old.instance, instance)
            if fields.isEmpty {
                diff.unchanged.append(instance.id)
            } else {
                var entry = planned
                entry.changedFields = fields
                diff.changed.append(entry)
            }
        }
        for task in running where !next.contains(task.instance.id) {
            diff.removed.append(
                JobDiff.Entry(taskID: task.instance.id, currentNode: task.node, plannedNode: nil, reason: nil, changedFields: []))
        }
        return diff
    }

    /// The spec fields in which two versions of one instance differ, by their spec names.
    private static func changedFields(_ old: TaskInstance, _ new: TaskInstance) -> [String] {
        let a = old.task
        let b = new.task
        let checks: [(String, Bool)] = [
            ("driver", a.driver != b.driver), ("resources", a.resources != b.resources),
            ("constraints", a.constraints != b.constraints), ("affinities", a.affinities != b.affinities),
            ("env", old.env != new.env), ("mounts", a.mounts != b.mounts), ("retries", a.retries != b.retries),
            ("timeout", a.timeoutSeconds != b.timeoutSeconds), ("depends", old.waitsFor != new.waitsFor),
            ("inputs", a.inputs != b.inputs), ("outputs", a.outputs != b.outputs),
        ]
        return checks.filter(\.1).map(\.0)
    }
}
