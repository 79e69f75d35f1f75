/// Which part of the KV store a node's certificate may reach: its own `nodes/NAME/` prefix.
/// Step outputs are written by the coordinator from the agent's task event, so no node
/// needs to write under `jobs/`, and none may touch another node's or job's keys.
/// Keys under `jobs/PROJECT/` (step outputs: `jobs/PROJECT/NAME/outputs/...`) belong to that
/// project, and `Authorization` decides on them as on its jobs.
public enum KVScope {
    public static let jobsPrefix = "jobs/"

    /// The project owning `key` (or a listing's prefix) when it lies under `jobs/PROJECT/`.
    public static func project(ofKey key: String) -> String? {
        guard key.hasPrefix(jobsPrefix) else { return nil }
        let rest = key.dropFirst(jobsPrefix.count)
        guard let slash = rest.firstIndex(of: "/"), slash > rest.startIndex else { return nil }
        return String(rest[..<slash])
    }

    /// Whether a listing shows `key` to a caller who reads the jobs of `readable` (nil: every project).
    public static func isListed(_ key: String, readable: Set<String>?) -> Bool {
        guard let readable, let project = project(ofKey: key) else { return true }
        return readable.contains(project)
    }

    /// The prefix a node owns, e.g. `nodes/node1/`.
    public static func nodePrefix(_ node: String) -> String { "nodes/\(node)/" }

    /// Nil when `node` may use `key` (or list `prefix`), else the refusal naming the allowed prefix.
    public static func refusal(node: String, key: String, listing: Bool = false) -> String? {
        let allowed = nodePrefix(node)
        guard !key.hasPrefix(allowed) else { return nil }
        let what = listing ? "list prefix" : "key"
        return "node/\(node) may only use KV keys under '\(allowed)'; \(what) '\(key)' is outside it"
    }
}
