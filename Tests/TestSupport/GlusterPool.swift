import Foundation
import SpecolaProtocol
import SpecolaProcesses

/// A real GlusterFS trusted pool for a test, made by the project's copy of the testbed's
/// `pool.sh` (Tests/Fixtures/gluster): one glusterd per peer, each in its own network and
/// mount namespaces, at `net`.1 ... `net`.N. Namespaces are named after `prefix`, so give
/// each concurrent pool its own prefix and subnet. Call `down()` even when the test fails.
public struct GlusterPool: Sendable {
    public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gluster/pool.sh").path

    public let directory: String
    public let prefix: String
    public let net: String

    public init(directory: String, prefix: String, net: String) {
        self.directory = directory
        self.prefix = prefix
        self.net = net
    }

    public func address(_ peer: Int) -> String { "\(net).\(peer)" }

    /// Where peer `peer`'s bricks go.
    public func brickDirectory(_ peer: Int) -> String { "\(directory)/p\(peer)/bricks" }

    /// The pid of peer `peer`'s glusterd, whose namespaces the peer's commands enter.
    public func glusterdPID(_ peer: Int) throws -> String {
        try String(contentsOfFile: "\(directory)/p\(peer)/glusterd.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The gluster CLI as peer `peer` (an agent on that node would run plain `gluster`).
    public func glusterCommand(_ peer: Int) throws -> [String] {
        ["nsenter", "-t", try glusterdPID(peer), "-m", "-n", "gluster"]
    }

    public func up(peers: Int = 3) async throws {
        try await pool(["up", directory, "\(peers)"], timeout: .seconds(90))
    }

    /// Ends every process in the pool's namespaces and deletes them, a killed run's included.
    public func down() async {
        _ = try? await pool(["down", directory], timeout: .seconds(60))
    }

    /// `gluster --mode=script ARGS` as peer `peer`; throws when it fails.
    @discardableResult
    public func gluster(_ peer: Int, _ args: String...) async throws -> String {
        try await gluster(peer, args)
    }

    @discardableResult
    public func gluster(_ peer: Int, _ args: [String], timeout: Duration = .seconds(60)) async throws -> String {
        try await pool(["gluster", directory, "\(peer)"] + args, timeout: timeout)
    }

    /// A command inside peer `peer`'s namespaces; throws when it fails.
    @discardableResult
    public func exec(_ peer: Int, _ args: String...) async throws -> String {
        try await exec(peer, args)
    }

    @discardableResult
    public func exec(_ peer: Int, _ args: [String], timeout: Duration = .seconds(60)) async throws -> String {
        try await pool(["exec", directory, "\(peer)"] + args, timeout: timeout)
    }

    /// `exec` for cleanup in synchronous code (a `defer`); errors are ignored.
    public func execIgnoringErrors(_ peer: Int, _ args: String...) {
        _ = try? runProcessBlocking(
            "bash", [Self.script, "exec", directory, "\(peer)"] + args,
            environment: ["SPECOLA_GPOOL": prefix, "SPECOLA_GPOOL_NET": net], timeout: .seconds(20))
    }

    @discardableResult
    private func pool(_ args: [String], timeout: Duration) async throws -> String {
        let result = try await runProcess(
            "bash", [Self.script] + args, environment: ["SPECOLA_GPOOL": prefix, "SPECOLA_GPOOL_NET": net], timeout: timeout)
        let stdout = String(decoding: result.stdout, as: UTF8.self)
        guard result.status == 0 else {
            throw PoolError(description: "pool.sh \(args.joined(separator: " ")) exited \(result.status): \(stdout) \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return stdout
    }

    public struct PoolError: Error, CustomStringConvertible {
        public var description: String
    }
}
