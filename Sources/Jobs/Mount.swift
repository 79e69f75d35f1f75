/// A host path made visible inside the task, for example the archive volume.
public struct Mount: Sendable, Hashable, Codable {
    /// Absolute path on the node; the node's agent mounts it only under a prefix its configuration allows.
    public var source: String
    /// Absolute path inside the task.
    public var target: String
    /// Whether the task may only read it: true unless the spec says `readOnly: false`.
    public var readOnly: Bool

    /// Creates a mount.
    public init(source: String, target: String, readOnly: Bool = true) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    /// Why `path` is not a plain absolute path, or nil when it is one. Plain means no '.', '..',
    /// empty component or trailing '/', so a prefix comparison means what it says.
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "must be an absolute path" }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if path != "/" && components.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
            return "must be written plainly: no '.', '..', '//' or trailing '/'"
        }
        return nil
    }

    /// Why `path` cannot be an allowed prefix of host paths in a configuration, or nil.
    public static func prefixProblem(_ path: String) -> String? {
        if let problem = pathProblem(path) { return problem }
        return path == "/" ? "would allow the whole host; list the directories that are needed" : nil
    }

    /// Whether plain path `path` is `prefix` itself or lies under it.
    public static func path(_ path: String, isUnder prefix: String) -> Bool {
        path == prefix || path.hasPrefix(prefix + "/")
    }
}
