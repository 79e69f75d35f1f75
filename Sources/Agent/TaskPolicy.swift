import Foundation
import SpecolaJobs
import SpecolaProtocol
import SpecolaDaemon

/// What tasks may do on this node: `tasks:` in agent.yaml. Every default is the
/// locked-down one; an operator opens what the site's pipelines need.
public struct TaskPolicy: Decodable, Sendable {
    /// podman's `--user` for every task container (uid or uid:gid); "" keeps the image's own USER.
    public var containerUser = "65534:65534"
    /// Capabilities given back after `--cap-drop=ALL`, without the CAP_ prefix (e.g. CHOWN).
    public var capabilities: [String] = []
    /// Host directories tasks may mount: each one and everything under it.
    public var mountPrefixes: [String] = []
    public var exec = ExecPolicy()

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case containerUser, capabilities, mountPrefixes, exec }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        containerUser = try c.decodeIfPresent(String.self, forKey: .containerUser) ?? containerUser
        if !containerUser.isEmpty && !Self.isNumericUser(containerUser) {
            throw DecodingError.dataCorruptedError(
                forKey: .containerUser, in: c,
                debugDescription: "'\(containerUser)' is not a uid or uid:gid; write e.g. 65534:65534, or \"\" for the image's own user")
        }
        capabilities = try (c.decodeIfPresent([String].self, forKey: .capabilities) ?? []).map { name in
            let bare = name.uppercased().hasPrefix("CAP_") ? String(name.uppercased().dropFirst(4)) : name.uppercased()
            guard !bare.isEmpty, bare.allSatisfy({ $0 == "_" || ("A"..."Z").contains($0) }) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .capabilities, in: c, debugDescription: "'\(name)' is not a capability name; write e.g. CHOWN or NET_BIND_SERVICE")
            }
            return bare
        }
        mountPrefixes = try c.decodeIfPresent([String].self, forKey: .mountPrefixes) ?? []
        for prefix in mountPrefixes {
            if let problem = Mount.prefixProblem(prefix) {
                throw DecodingError.dataCorruptedError(forKey: .mountPrefixes, in: c, debugDescription: "'\(prefix)' \(problem)")
            }
        }
        exec = try c.decodeIfPresent(ExecPolicy.self, forKey: .exec) ?? ExecPolicy()
    }

    static func isNumericUser(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return (1...2).contains(parts.count) && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && UInt32($0) != nil }
    }

    /// Why this node refuses to mount `source`, or nil when a prefix allows it. Symbolic links
    /// are resolved first, so a link under an allowed prefix cannot lead elsewhere.
    public func mountRefusal(_ source: String) -> String? {
        if let problem = Mount.pathProblem(source) { return "mount source '\(source)' \(problem)" }
        guard let resolved = HostPath.resolved(source) else {
            return "mount source '\(source)' does not exist on this node"
        }
        let allowed = mountPrefixes.contains { prefix in
            Mount.path(resolved, isUnder: HostPath.resolved(prefix) ?? prefix)
        }
        if allowed { return nil }
        let listed = mountPrefixes.isEmpty ? "none" : mountPrefixes.joined(separator: ", ")
        let via = resolved == source ? "" : " (a link to '\(resolved)')"
        return "mount source '\(source)'\(via) is not under a host path this node allows; add its directory to tasks.mountPrefixes in the agent's configuration (allowed now: \(listed))"
    }
}

/// Whether and as whom `driver: exec` tasks run on this node.
public struct ExecPolicy: Decodable, Sendable {
    /// Off by default: an exec task runs on the host itself, outside any container.
    public var enabled = false
    /// The account exec tasks run as (a name or a uid); never the agent's root.
    public var user = "nobody"

    public init(enabled: Bool = false, user: String = "nobody") {
        self.enabled = enabled
        self.user = user
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, user }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
        user = try c.decodeIfPresent(String.self, forKey: .user) ?? "nobody"
        if user.isEmpty { throw DecodingError.dataCorruptedError(forKey: .user, in: c, debugDescription: "name the account exec tasks run as, e.g. nobody") }
    }
}

/// Host paths as they are on this node.
enum HostPath {
    /// The path with every symbolic link resolved, nil when it does not exist.
    static func resolved(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
