import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// Specola repairs a real GlusterFS pool: three peers in namespaces (Tests/Fixtures/gluster/pool.sh),
/// one agent per peer on the host's loopback, each reaching its peer's glusterd through the
/// pool's namespaces as its gluster command, and a real coordinator.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct StorageHealingTests {
    @Test(.timeLimit(.minutes(3)))
    func aKilledBrickIsRestartedOnceAndHealedWithEveryChecksumIntact() async throws {
        let dir = try TempDir("specola-heal")
        let pool = GlusterPool(directory: dir.path, prefix: "shl", net: "10.77.203")
        await pool.down()
        let cluster = try LocalCluster(coordinatorHost: "127.0.5.11", suspectAfter: 2, downAfter: 6,
                                       extraConfig: "storage: {restartRetryAfter: 5}")
        let mount = dir.path + "/mnt"
        do {
            try await cluster.withCleanup(before: { pool.execIgnoringErrors(1, "umount", "-l", mount) }) {
                try await Self.killBrickAndExpectRepair(pool, cluster, mount: mount)
            }
        } catch {
            await pool.down()
            dir.remove()
            throw error
        }
        await pool.down()
        dir.remove()
    }

    static func killBrickAndExpectRepair(_ pool: GlusterPool, _ cluster: LocalCluster, mount: String) async throws {
        let started = ContinuousClock.now
        try await pool.up()
        let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/gv0" }
        try await pool.gluster(1, ["volume", "create", "gv0", "replica", "3"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "start", "gv0")

        try await cluster.startCoordinator()
        for peer in 1...3 {
            let command = try pool.glusterCommand(peer).map { "\"\($0)\"" }.joined(separator: ", ")
            try cluster.writeAgentConfig("n\(peer)", address: "127.0.5.\(peer)", extra: """
                bmc: {mode: none}
                libvirt: {uri: ""}
                podman: {enabled: false}
                gluster: {command: [\(command)], healInfoInterval: 1}
                """)
            try cluster.startAgent("n\(peer)")
        }
        var volume = try await waitUntilValue("every brick of gv0 online and hosted by n1...n3", timeout: .seconds(40)) {
            try await Self.volume(cluster).flatMap { view in
                view.bricks.map { $0.node } == ["n1", "n2", "n3"] && view.bricks.allSatisfy { $0.brick.online && $0.brick.pid > 0 } ? view : nil
            }
        }

        // Files before the kill, then the kill -9 of n2's brick, then more files while it is down.
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/gv0", mount)
        try await pool.exec(1, "sh", "-c", "for i in $(seq 1 30); do head -c $((4096 * i)) /dev/urandom > \(mount)/before$i; done")
        let killed = volume.bricks[1].brick.pid
        #expect(kill(killed, SIGKILL) == 0)
        try await waitUntil("brick process \(killed) gone") { !FileManager.default.fileExists(atPath: "/proc/\(killed)") }
        try await pool.exec(1, "sh", "-c", "for i in $(seq 1 30); do head -c $((4096 * i)) /dev/urandom > \(mount)/during$i; done")
        let written = try await Self.checksums(pool, directory: mount)
        #expect(written.count == 60)

        // Specola commits one restart, n2's agent carries it out, the heal drains.
        _ = try await waitUntilValue("a restart of n2's brick committed and succeeded", timeout: .seconds(40)) {
            let detail = try await Self.detail(cluster)
            return detail.actions.contains { $0.kind == .restartBrick && $0.state == .succeeded } ? detail : nil
        }
        volume = try await waitUntilValue("every brick online with nothing left to heal", timeout: .seconds(40)) {
            try await Self.volume(cluster).flatMap { view in
                // The pid comes from n2's own view, which can miss a cycle while glusterd's lock is held.
                view.bricks.count == 3 && view.bricks[1].brick.pid > 0 && view.bricks.allSatisfy {
                    $0.brick.online && $0.brick.hasHealPending && $0.brick.healPending == 0 && $0.brick.splitBrain == 0
                } ? view : nil
            }
        }
        let restarted = volume.bricks[1].brick
        #expect(restarted.pid != killed)

        // Every file reads back as written, through the mount and straight from the restarted brick.
        #expect(try await Self.checksums(pool, directory: mount) == written)
        let onBrick = try await Self.checksums(pool, directory: "\(pool.brickDirectory(2))/gv0")
        #expect(onBrick == written, "the restarted brick holds every file: missing \(Set(written.keys).subtracting(onBrick.keys).sorted())")

        // Exactly once: one restart action, started once by n2's agent.
        let detail = try await Self.detail(cluster)
        let restarts = detail.actions.filter { $0.kind == .restartBrick }
        let diagnosis = restarts.count == 1 ? "" : await cluster.diagnosis()
        #expect(restarts.count == 1, "\(detail.actions)\n\(diagnosis)")
        let id = try #require(restarts.first?.id)
        #expect(restarts.first?.node == "n2" && restarts.first?.brick == bricks[1])
        let starts = cluster.agents["n2"]!.log.components(separatedBy: "storage action starting").count - 1
        #expect(starts == 1, "n2's agent started the action \(starts) times")
        #expect(cluster.agents["n2"]!.log.contains(id))
        let shown = try await cluster.cli(["volume", "show", "gv0"])
        #expect(shown.status == 0 && shown.stdout.contains(id) && shown.stdout.contains("restart-brick"), "\(shown)")
        let unknown = try await cluster.cli(["volume", "show", "nope"])
        #expect(unknown.status == 4 && unknown.stderr.contains("specola volumes"), "\(unknown)")
        #expect(ContinuousClock.now - started < .seconds(90), "took \(ContinuousClock.now - started)")
    }

    static func volume(_ cluster: LocalCluster) async throws -> Specola_V1_GlusterVolumeView? {
        let result = try await cluster.cli(["volumes", "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_GlusterVolumeList(jsonString: result.stdout).volumes.first { $0.volume.name == "gv0" }
    }

    static func detail(_ cluster: LocalCluster) async throws -> Specola_V1_VolumeDetail {
        let result = try await cluster.cli(["volume", "show", "gv0", "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        // The output is {"volume": ..., "detail": ...}; the detail is the last member.
        guard let range = result.stdout.range(of: ",\"detail\":") else { throw CLIFailed(result: result) }
        let json = result.stdout[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines).dropLast()
        return try Specola_V1_VolumeDetail(jsonString: String(json))
    }

    /// sha256 of every regular file directly in `directory`, read inside peer 1's namespaces (where the mount is).
    static func checksums(_ pool: GlusterPool, directory: String) async throws -> [String: String] {
        let output = try await pool.exec(1, "sh", "-c", "cd \(directory) && find . -maxdepth 1 -type f -name '[bd]*' | sort | xargs sha256sum")
        var sums: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2 else { continue }
            sums[String(fields[1].dropFirst(2))] = String(fields[0])
        }
        return sums
    }
}
