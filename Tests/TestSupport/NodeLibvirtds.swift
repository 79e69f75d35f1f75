import Foundation

/// One private libvirtd per simulated node, each with a client that keeps its
/// test-driver domains alive (see `PrivateLibvirtd.holdConnection`), stopped together.
public final class NodeLibvirtds: @unchecked Sendable {
    private let lock = NSLock()
    private var daemons: [String: PrivateLibvirtd] = [:]
    private var keepers: [ChildProcess] = []

    public init() {}

    /// Starts the libvirtd of `node`, its files under `directory`.
    @discardableResult
    public func start(_ node: String, in directory: String) async throws -> PrivateLibvirtd {
        let daemon = try await PrivateLibvirtd.start(workDir: directory)
        lock.withLock { daemons[node] = daemon }
        let keeper = try daemon.holdConnection(logDirectory: directory, name: "virsh-\(node)")
        lock.withLock { keepers.append(keeper) }
        return daemon
    }

    public subscript(node: String) -> PrivateLibvirtd? { lock.withLock { daemons[node] } }

    /// Each node's libvirt URI, for its agent's config.
    public var uris: [String: String] { lock.withLock { daemons.mapValues(\.uri) } }

    /// The nodes whose libvirtd has `domain` active, asked one after another (by name, or reversed).
    public func hosts(of domain: String, askingInReverse: Bool = false) async throws -> [String] {
        var hosts: [String] = []
        let ordered = lock.withLock({ daemons }).sorted(by: { $0.key < $1.key })
        for (node, daemon) in askingInReverse ? ordered.reversed() : ordered
        where try await daemon.domainState(domain) == "running" {
            hosts.append(node)
        }
        return hosts.sorted()
    }

    /// The nodes `domain` was active on at the same moment, or nil if it was never on two. The
    /// daemons are asked one after another, then again in the reverse order: a move from one node
    /// to the next between two questions shows in one pass only, a double start in both.
    public func doubleStart(of domain: String) async throws -> [String]? {
        let forward = try await hosts(of: domain)
        guard forward.count > 1 else { return nil }
        let backward = try await hosts(of: domain, askingInReverse: true)
        let both = forward.filter(backward.contains)
        return both.count > 1 ? both : nil
    }

    public func stop() async {
        let (daemons, keepers) = lock.withLock { (self.daemons, self.keepers) }
        for keeper in keepers { try? await keeper.stop() }
        for daemon in daemons.values { try? await daemon.stop() }
    }
}
