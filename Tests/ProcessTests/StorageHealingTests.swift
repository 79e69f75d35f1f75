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
    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only; the test times its own work inside.
    @Test(.timeLimit(.minutes(10)))
    func aKilledBrickIsRestartedOnceAndHealedWithEveryChecksumIntact() async throws {
        try await GlusterFixture.withPool("specola-heal", prefix: "shl", net: "10.77.203", mounts: { ["\($0)/mnt"] }) { pool in
            let cluster = try LocalCluster(coordinatorHost: "127.0.5.11", suspectAfter: 2, downAfter: 6,
                                           extraConfig: "storage: {restartRetryAfter: 5}")
            try await cluster.withCleanup(before: { pool.execIgnoringErrors(1, "umount", "-l", pool.directory + "/mnt") }) {
                try await Self.killBrickAndExpectRepair(pool, cluster, mount: pool.directory + "/mnt")
            }
        }
    }

    static func killBrickAndExpectRepair(_ pool: GlusterPool, _ cluster: LocalCluster, mount: String) async throws {
        let started = ContinuousClock.now
        try await pool.up()
        let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/gv0" }
        try await pool.gluster(1, ["volume", "create", "gv0", "replica", "3"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "start", "gv0")

        try await cluster.startCoordinator()
        try cluster.startGlusterAgents(pool, peers: 1...3, address: { "127.0.5.\($0)" })
        var volume = try await waitUntilValue("every brick of gv0 online and hosted by n1...n3", timeout: .seconds(40)) {
            try await GlusterFixture.volume(cluster.glusterCLI, "gv0").flatMap { view in
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
        let written = try await GlusterFixture.checksums(pool, directory: mount, matching: "[bd]*")
        #expect(written.count == 60)

        // Specola commits one restart, n2's agent carries it out, the heal drains.
        _ = try await waitUntilValue("a restart of n2's brick committed and succeeded", timeout: .seconds(40)) {
            let detail = try await GlusterFixture.detail(cluster.glusterCLI, "gv0")
            return detail.actions.contains { $0.kind == .restartBrick && $0.state == .succeeded } ? detail : nil
        }
        volume = try await waitUntilValue("every brick online with nothing left to heal", timeout: .seconds(40)) {
            try await GlusterFixture.volume(cluster.glusterCLI, "gv0").flatMap { view in
                // The pid comes from n2's own view, which can miss a cycle while glusterd's lock is held.
                view.bricks.count == 3 && view.bricks[1].brick.pid > 0 && view.bricks.allSatisfy {
                    $0.brick.online && $0.brick.hasHealPending && $0.brick.healPending == 0 && $0.brick.splitBrain == 0
                } ? view : nil
            }
        }
        let restarted = volume.bricks[1].brick
        #expect(restarted.pid != killed)

        // Every file reads back as written, through the mount and straight from the restarted brick.
        #expect(try await GlusterFixture.checksums(pool, directory: mount, matching: "[bd]*") == written)
        let onBrick = try await GlusterFixture.checksums(pool, directory: "\(pool.brickDirectory(2))/gv0", matching: "[bd]*")
        #expect(onBrick == written, "the restarted brick holds every file: missing \(Set(written.keys).subtracting(onBrick.keys).sorted())")

        // Exactly once: one restart action, started once by n2's agent.
        let detail = try await GlusterFixture.detail(cluster.glusterCLI, "gv0")
        let restarts = detail.actions.filter { $0.kind == .restartBrick }
        let diagnosis = restarts.count == 1 ? "" : await cluster.diagnosis()
        #expect(restarts.count == 1, "\(detail.actions)\n\(diagnosis)")
        let id = try #require(restarts.first?.id)
        #expect(restarts.first?.node == "n2" && restarts.first?.brick == bricks[1])
        // Only this action's starts: n2 may also have run the planner's `volume set` of the heal priority.
        let starts = cluster.agents["n2"]!.log.split(separator: "\n")
            .filter { $0.contains("storage action starting") && $0.contains(id) }.count
        #expect(starts == 1, "n2's agent started \(id) \(starts) times")
        let shown = try await cluster.cli(["volume", "show", "gv0"])
        #expect(shown.status == 0 && shown.stdout.contains(id) && shown.stdout.contains("restart-brick"), "\(shown)")
        let unknown = try await cluster.cli(["volume", "show", "nope"])
        #expect(unknown.status == 4 && unknown.stderr.contains("specola volumes"), "\(unknown)")
        #expect(ContinuousClock.now - started < .seconds(90), "took \(ContinuousClock.now - started)")
    }
}
