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

    /// The nodes whose libvirtd has `domain` active, by name.
    public func hosts(of domain: String) async throws -> [String] {
        var hosts: [String] = []
        for (node, daemon) in lock.withLock({ daemons }).sorted(by: { $0.key < $1.key })
        where try await daemon.domainState(domain) == "running" {
            hosts.append(node)
        }
        return hosts
    }

    public func stop() async {
        let (daemons, keepers) = lock.withLock { (self.daemons, self.keepers) }
        for keeper in keepers { try? await keeper.stop() }
        for daemon in daemons.values { try? await daemon.stop() }
    }
}
