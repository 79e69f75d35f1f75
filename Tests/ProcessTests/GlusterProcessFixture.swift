import Foundation
@testable import SpecolaAgent
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// What the GlusterFS process tests (StorageHealingTests, StorageRepairTests) share: the pool's
/// lifetime, agents that reach their peer's glusterd, and reading volumes back through the CLI.
enum GlusterFixture {
    typealias CLI = @Sendable ([String]) async throws -> (status: Int32, stdout: String, stderr: String)

    /// gluster wrapper that holds `replace-brick` calls until `replace-go` exists (Tests/Fixtures/gluster).
    static let holdReplace = URL(fileURLWithPath: GlusterPool.script).deletingLastPathComponent().appendingPathComponent("hold-replace.sh").path
    /// smartctl stand-in reporting the disks listed in `smart-failing` beside it as failing (Tests/Fixtures/smart).
    static let smartctlStandIn = URL(fileURLWithPath: GlusterPool.script).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("smart/smartctl-standin.sh").path

    /// Runs `body` with a fresh pool in a temp dir; afterwards unmounts `mounts` (inside peer 1),
    /// runs `cleanUp`, ends the pool's processes and namespaces and removes the dir, whether `body` threw or not.
    static func withPool(
        _ name: String, prefix: String, net: String, mounts: @escaping @Sendable (String) -> [String] = { _ in [] },
        cleanUp: @Sendable (String) async -> Void = { _ in }, _ body: (GlusterPool) async throws -> Void
    ) async throws {
        let dir = try TempDir(name)
        let pool = GlusterPool(directory: dir.path, prefix: prefix, net: net)
        await pool.down()
        let result: Result<Void, any Error>
        do { result = .success(try await body(pool)) } catch { result = .failure(error) }
        for mount in mounts(dir.path) { pool.execIgnoringErrors(1, "umount", "-l", mount) }
        await pool.down()
        await cleanUp(dir.path)
        dir.remove()
        try result.get()
    }

    /// The agent config lines for peer `peer`: its glusterd through `wrapper` (if any) and the pool's namespaces.
    /// `interval` and `healInfoInterval` are short (1 s) so tests see gluster's state and heal counts at
    /// once; the production defaults are 10 s and 30 s.
    static func agentLines(_ pool: GlusterPool, peer: Int, wrapper: [String] = [], extra: String = "bmc: {mode: none}",
                           interval: Double = 1, healInfoInterval: Double = 1) throws -> String {
        let command = (wrapper + (try pool.glusterCommand(peer))).map { "\"\($0)\"" }.joined(separator: ", ")
        return """
            \(extra)
            libvirt: {uri: ""}
            podman: {enabled: false}
            gluster: {command: [\(command)], interval: \(interval), healInfoInterval: \(healInfoInterval)}
            """
    }

    static func volumeList(_ cli: CLI) async throws -> Specola_V1_GlusterVolumeList {
        let result = try await cli(["volumes", "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_GlusterVolumeList(jsonString: result.stdout)
    }

    static func volume(_ cli: CLI, _ name: String) async throws -> Specola_V1_GlusterVolumeView? {
        try await volumeList(cli).volumes.first { $0.volume.name == name }
    }

    static func detail(_ cli: CLI, _ volume: String) async throws -> Specola_V1_VolumeDetail {
        let result = try await cli(["volume", "show", volume, "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        // The output is {"volume": ..., "detail": ...}; the detail is the last member.
        guard let range = result.stdout.range(of: ",\"detail\":") else { throw CLIFailed(result: result) }
        let json = result.stdout[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines).dropLast()
        return try Specola_V1_VolumeDetail(jsonString: String(json))
    }

    /// sha256 of every regular file directly in `directory` whose name matches `pattern`, read inside peer 1's namespaces.
    static func checksums(_ pool: GlusterPool, directory: String, matching pattern: String) async throws -> [String: String] {
        let output = try await pool.exec(1, "sh", "-c", "cd \(directory) && find . -maxdepth 1 -type f -name '\(pattern)' | sort | xargs sha256sum")
        var sums: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2 else { continue }
            sums[String(fields[1].dropFirst(2))] = String(fields[0])
        }
        return sums
    }

    /// The bricks of `volume` as gluster lists them (`volume info`).
    static func brickNames(_ pool: GlusterPool, volume: String = "gv0") async throws -> [String] {
        let info = try await pool.gluster(1, ["volume", "info", volume, "--xml"])
        return info.components(separatedBy: "<name>").dropFirst().compactMap { part in
            guard let end = part.range(of: "</name>") else { return nil }
            let name = String(part[..<end.lowerBound])
            return name.contains(":/") ? name : nil
        }
    }

    /// Gluster carried out exactly one `replace-brick` (hold-replace.sh's log); any other call was
    /// refused on glusterd's lock, which the agent retries, so it replaced nothing.
    static func expectOneReplaceBrick(in pool: GlusterPool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let calls = try String(contentsOfFile: "\(pool.directory)/replace.log", encoding: .utf8).split(separator: "\n")
        let ran = calls.filter { $0.hasPrefix("ok: ") }
        #expect(ran.count == 1, "replace-brick ran \(ran.count) times: \(calls)", sourceLocation: sourceLocation)
        let otherRefusals = calls.filter { call in
            !call.hasPrefix("ok: ") && !GlusterCLI.lockContention.contains { call.contains($0) }
        }
        #expect(otherRefusals.isEmpty, "replace-brick was refused other than on glusterd's lock: \(otherRefusals)", sourceLocation: sourceLocation)
    }

    /// How often an agent's log says it started storage action `id`.
    static func starts(of id: String, in log: String) -> Int {
        log.split(separator: "\n").filter { $0.contains("storage action starting") && $0.contains(id) }.count
    }

    static func run(_ program: String, _ args: [String]) async throws {
        let result = try await runProcess(program, args, timeout: .seconds(30))
        guard result.status == 0 else {
            throw SetupFailed(description: "\(program) \(args.joined(separator: " ")) exited \(result.status): \(String(decoding: result.stderr, as: UTF8.self))")
        }
    }

    static func output(_ program: String, _ args: [String]) async throws -> String {
        let result = try await runProcess(program, args, timeout: .seconds(30))
        guard result.status == 0 else {
            throw SetupFailed(description: "\(program) \(args.joined(separator: " ")) exited \(result.status): \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension LocalCluster {
    /// Agents n`peer` for each of `peers`, at `address(peer)`, each reaching its own peer's glusterd.
    func startGlusterAgents(_ pool: GlusterPool, peers: ClosedRange<Int>, address: (Int) -> String, wrapper: [String] = [],
                            extra: (Int) -> String = { _ in "bmc: {mode: none}" }, reportInterval: Double = 1,
                            interval: Double = 1, healInfoInterval: Double = 1) throws {
        for peer in peers {
            try writeAgentConfig("n\(peer)", address: address(peer), reportInterval: reportInterval,
                                 extra: try GlusterFixture.agentLines(pool, peer: peer, wrapper: wrapper, extra: extra(peer),
                                                                      interval: interval, healInfoInterval: healInfoInterval))
            try startAgent("n\(peer)")
        }
    }

    var glusterCLI: GlusterFixture.CLI { { try await self.cli($0) } }
}

struct SetupFailed: Error, CustomStringConvertible {
    var description: String
}
