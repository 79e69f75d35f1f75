/// Which part of the KV store a node's certificate may reach: its own `nodes/NAME/` prefix.
/// Step outputs are written by the coordinator from the agent's task event, so no node
/// needs to write under `jobs/`, and none may touch another node's or job's keys.
public enum KVScope {
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
