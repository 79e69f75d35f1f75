import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

#if canImport(Glibc)
    import Glibc
#endif

/// The collector against a real 3-peer GlusterFS pool (glusterd per peer in its own
/// namespaces). Serialized: each pool costs three glusterds and their bricks.
@Suite(.serialized, .processTest, .runsOffThePool, .watchesCooperativePool) struct GlusterPoolTests {
    static func collector(_ pool: GlusterPool, peer: Int) throws -> GlusterCollector {
        var settings = GlusterCollector.Settings()
        settings.command = try pool.glusterCommand(peer)
        settings.healInfoInterval = .zero
        return GlusterCollector(settings: settings, logger: Logger(label: "test.gluster.p\(peer)"))
    }

    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only; the test times its own work inside.
    @Test(.timeLimit(.minutes(10)))
    func aKilledBrickIsReportedOfflineWithABacklogAndHealsAfterStartForce() async throws {
        let dir = try TempDir("specola-gpool")
        let pool = GlusterPool(directory: dir.path, prefix: "sgt", net: "10.77.201")
        await pool.down()
        do {
            try await Self.killBrickAndHeal(pool)
        } catch {
            await pool.down()
            dir.remove()
            throw error
        }
        await pool.down()
        dir.remove()
    }

    static func killBrickAndHeal(_ pool: GlusterPool) async throws {
        let started = ContinuousClock.now
        try await pool.up()
        let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/gv0" }
        try await pool.gluster(1, ["volume", "create", "gv0", "replica", "3"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "start", "gv0")
        let first = try collector(pool, peer: 1)
        let second = try collector(pool, peer: 2)
        let brickPath = "\(pool.brickDirectory(2))/gv0"

        // Peer 2 sees the pool, the volume and its own brick online.
        var section = Specola_V1_GlusterSection()
        try await waitUntil("peer 2 reports gv0 with every brick online", timeout: .seconds(30), explain: { "\(section)" }) {
            section = await second.collect()
            let gv0 = section.volumes.first { $0.name == "gv0" }
            return gv0.map { $0.bricks.count == 3 && $0.bricks.allSatisfy { $0.online } } ?? false
        }
        #expect(section.available && section.errors.isEmpty, "\(section.errors)")
        #expect(section.peers.count == 3 && section.peers.allSatisfy { $0.connected })
        let gv0 = try #require(section.volumes.first { $0.name == "gv0" })
        #expect(gv0.replicaCount == 3 && gv0.status == "Started")
        #expect(gv0.options["cluster.quorum-type"] == "auto")
        #expect(gv0.options["cluster.self-heal-daemon"] == "on")
        #expect(gv0.bricks.filter { $0.local }.map { $0.path } == [brickPath])
        let local = try #require(gv0.bricks.first { $0.local })
        #expect(local.pid > 0 && local.port > 0 && local.sizeBytes > 0 && local.freeBytes > 0)
        #expect(!local.mountPoint.isEmpty && !local.fsType.isEmpty)
        #expect(local.healPending == 0 && local.splitBrain == 0)
        #expect(gv0.selfHealDaemon.expected)
        let killed = local.pid

        // kill -9 the brick, then write through a FUSE mount on peer 1.
        let mount = pool.directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/gv0", mount)
        defer { pool.execIgnoringErrors(1, "umount", "-l", mount) }
        #expect(kill(killed, SIGKILL) == 0)
        try await waitUntil("brick process \(killed) gone") { !FileManager.default.fileExists(atPath: "/proc/\(killed)") }
        try await pool.exec(1, "sh", "-c", "for i in $(seq 1 40); do echo file$i > \(mount)/f$i; done")

        try await waitUntil("peer 2 reports its brick offline", explain: { "\(section)" }) {
            section = await second.collect()
            let brick = section.volumes.first { $0.name == "gv0" }?.bricks.first { $0.local }
            return brick.map { !$0.online && $0.pid == 0 } ?? false
        }
        var firstView = Specola_V1_GlusterSection()
        try await waitUntil("peer 1 reports a heal backlog on its brick", explain: { "\(firstView)" }) {
            firstView = await first.collect()
            let brick = firstView.volumes.first { $0.name == "gv0" }?.bricks.first { $0.local }
            return (brick?.healPending ?? 0) > 0
        }
        let downBrick = try #require(firstView.volumes.first { $0.name == "gv0" }?.bricks.first { $0.path == brickPath })
        #expect(!downBrick.online)
        #expect(!downBrick.hasHealPending, "a brick that is down has no counters: \(downBrick)")

        // Restart it; it comes back and the backlog drains.
        try await pool.gluster(1, "volume", "start", "gv0", "force")
        try await waitUntil("peer 2 reports its brick online again", explain: { "\(section)" }) {
            section = await second.collect()
            let brick = section.volumes.first { $0.name == "gv0" }?.bricks.first { $0.local }
            return brick.map { $0.online && $0.pid > 0 && $0.pid != killed } ?? false
        }
        try await waitUntil("the heal backlog drains on every brick", timeout: .seconds(40), explain: { "\(firstView)" }) {
            firstView = await first.collect()
            let bricks = firstView.volumes.first { $0.name == "gv0" }?.bricks ?? []
            return bricks.count == 3 && bricks.allSatisfy { $0.hasHealPending && $0.healPending == 0 && $0.splitBrain == 0 }
        }
        let contents = try await pool.exec(1, "sh", "-c", "cat \(mount)/f1 \(mount)/f40")
        #expect(contents == "file1\nfile40\n")
        #expect(ContinuousClock.now - started < .seconds(90))
    }
}
