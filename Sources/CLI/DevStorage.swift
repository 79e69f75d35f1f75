import Foundation
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// The dev cluster's GlusterFS: a trusted pool made by the project's gluster fixture
/// (`Tests/Fixtures/gluster/pool.sh`, one glusterd per agent in its own network and mount
/// namespaces) and one replicated volume, `devgv`, with a brick on each of the first agents.
/// Each of those agents reaches its own peer's glusterd through `pool.sh exec DIR I gluster`.
/// When gluster cannot run here, `unavailableReason` says why and dev goes on without storage.
struct DevStorage {
    static let volume = "devgv"
    /// Namespace prefix and subnet of the dev pool; the tests' pools use other ones.
    static let namespacePrefix = "sdev"
    static let subnet = "10.77.100"

    let directory: String
    let agents: Int
    let poolScript: String?

    init(root: String, agents: Int) {
        directory = root + "/gluster"
        self.agents = agents
        poolScript = DevCluster.findFixture("Tests/Fixtures/gluster/pool.sh")
    }

    /// Replica 3 over the first three agents, or replica 2 with two agents.
    var peers: Int { min(agents, 3) }

    /// Why this machine cannot run the dev pool, or nil when it can.
    var unavailableReason: String? {
        if agents < 2 { return "a replicated volume needs at least 2 agents (--agents 2 or more)" }
        if geteuid() != 0 { return "the dev pool's network namespaces need root (run specola dev as root)" }
        for tool in ["glusterd", "gluster", "ip", "nsenter", "unshare"] where resolveExecutable(tool) == nil {
            return "\(tool) not found (apt-get install glusterfs-server glusterfs-client iproute2 util-linux)"
        }
        if poolScript == nil { return "Tests/Fixtures/gluster/pool.sh not found (run specola dev from a source checkout)" }
        return nil
    }

    /// The agent config line for agent `index`: its peer's gluster CLI, or collection off.
    func agentConfigLine(_ index: Int) -> String {
        guard let poolScript, unavailableReason == nil, index <= peers else { return "gluster: {enabled: false}" }
        return "gluster: {command: [bash, \(poolScript), exec, \(directory), \"\(index)\", gluster], healInfoInterval: 2}"
    }

    func brick(_ peer: Int) -> String { "\(Self.subnet).\(peer):\(directory)/p\(peer)/bricks/\(Self.volume)" }

    /// Starts the pool and the volume from scratch (a dev volume holds no data worth keeping).
    /// Throws with what failed; the caller prints it and goes on without storage.
    func start() throws {
        guard let poolScript else { return }
        stop(removingBricks: true)
        try pool(poolScript, ["up", directory, "\(peers)"], timeout: 120)
        let bricks = (1...peers).map(brick)
        try pool(poolScript, ["gluster", directory, "1", "volume", "create", Self.volume, "replica", "\(peers)"] + bricks + ["force"])
        try pool(poolScript, ["gluster", directory, "1", "volume", "start", Self.volume])
    }

    /// Ends every process in the pool's namespaces and deletes them, and the bricks and logs if asked.
    func stop(removingBricks: Bool) {
        guard let poolScript else { return }
        _ = try? pool(poolScript, ["down", directory], timeout: 60)
        if removingBricks { try? FileManager.default.removeItem(atPath: directory) }
    }

    private func pool(_ script: String, _ arguments: [String], timeout: Int = 60) throws {
        let result = try runProcessBlocking(
            "bash", [script] + arguments,
            environment: ["SPECOLA_GPOOL": Self.namespacePrefix, "SPECOLA_GPOOL_NET": Self.subnet], timeout: .seconds(Int64(timeout)))
        guard result.status == 0 else {
            let output = String(decoding: result.stderr + result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw CLIError("pool.sh \(arguments.prefix(5).joined(separator: " ")) exited with \(result.status): \(output.suffix(400))")
        }
    }
}
