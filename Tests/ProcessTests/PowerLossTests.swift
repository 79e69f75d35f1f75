import Foundation
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// Power cuts, not just crashes: the replicas run on the power-loss VFS
/// (`SPECOLA_TEST_POWER_LOSS_VFS=1`), which keeps every SQLite write in the process's
/// memory until it is synced, so kill -9 loses exactly what a power cut would. A plain
/// kill -9 keeps the page cache and could not tell a missing fsync from a present one.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct PowerLossTests {

    /// With the real settings (`synchronous=FULL`), no acknowledged write is lost when a
    /// follower, then the leader, then every replica at once loses power.
    @Test func acknowledgedWritesSurvivePowerCuts() async throws {
        let outcome = try await Self.runPowerCuts(synchronousOff: false, singleReplicaCuts: true)
        #expect(outcome.acknowledged >= 150)
        #expect(outcome.lost.isEmpty, "acknowledged writes lost or changed by power cuts: \(outcome.lost.prefix(10))")
        #expect(outcome.phantom.isEmpty, "writes refused before execution are present: \(outcome.phantom.prefix(10))")
    }

    /// With `synchronous=OFF` (SQLite never syncs) the group's power cut must lose
    /// acknowledged writes: proof that the test above can fail, and that the VFS does cut
    /// the power. (Single-replica cuts are left out here: a follower that lost its log
    /// stops at the leader's next heartbeat, as etcd does, and the group loses its quorum.)
    @Test func withSynchronousOffPowerCutsLoseAcknowledgedWrites() async throws {
        let outcome = try await Self.runPowerCuts(synchronousOff: true, singleReplicaCuts: false)
        #expect(outcome.acknowledged >= 150)
        #expect(!outcome.lost.isEmpty, "synchronous=OFF lost nothing: the power-loss VFS does not drop unsynced writes")
        print("synchronous=OFF: \(outcome.lost.count) of \(outcome.acknowledged) acknowledged writes lost, as expected")
    }

    struct Outcome {
        var acknowledged = 0
        var lost: [(key: String, value: String)] = []
        var phantom: [String] = []
    }

    /// Writers put fresh keys throughout; the power is cut on one follower, then on the
    /// leader, then on the whole group; after the group is back, every key is read.
    static func runPowerCuts(synchronousOff: Bool, singleReplicaCuts: Bool) async throws -> Outcome {
        var environment = ["SPECOLA_TEST_POWER_LOSS_VFS": "1"]
        if synchronousOff { environment["SPECOLA_TEST_SYNCHRONOUS_OFF"] = "1" }
        return try await ReplicaGroup.with(size: 3, environment: environment) { group in
            for id in group.ids {
                let log = try #require(group.process(id)).log
                try #require(log.contains("SPECOLA_TEST_POWER_LOSS_VFS=1"), "c\(id) does not run on the power-loss VFS:\n\(log)")
            }
            let kv = group.kvClient()
            let ledger = WriteLedger()
            let writers = ledger.startWriters(8, kv: kv, prefix: "power/", deadline: .seconds(3)) { writer, n in
                "v\(writer)-\(n)-\(UUID().uuidString.prefix(6))"
            }
            try await waitUntil("60 acknowledged writes", timeout: .seconds(30)) { ledger.acknowledged >= 60 }

            if singleReplicaCuts { try await Self.cutOneFollowerThenTheLeader(group, ledger) }
            try await waitUntil("150 acknowledged writes", timeout: .seconds(30)) { ledger.acknowledged >= 150 }

            // The whole group loses power at once, with writes in flight.
            try await group.killAll(group.ids)
            await ledger.stopWriters(writers)
            try await group.startAll()

            let (acked, refused) = ledger.outcomes.withLock { ($0.acked, $0.refused) }
            guard case .ok(let stored) = await kv.list(prefix: "power/", deadline: .seconds(20)) else {
                throw PowerLossTestFailed(what: "cannot list the keys after the power came back")
            }
            var outcome = Outcome(acknowledged: acked.count)
            outcome.lost = acked.filter { stored[$0.key] != $0.value }.sorted { $0.key < $1.key }
            outcome.phantom = refused.filter { stored[$0] != nil }.sorted()
            print("power cuts (synchronous \(synchronousOff ? "OFF" : "FULL")): \(acked.count) acknowledged, \(outcome.lost.count) lost, \(stored.count) stored")
            return outcome
        }
    }

    /// One follower loses power and comes back; then the leader does, while the others go on.
    static func cutOneFollowerThenTheLeader(_ group: ReplicaGroup, _ ledger: WriteLedger) async throws {
        let leader = try await group.waitForLeader()
        let follower = group.ids.first { $0 != leader }!
        try await group.kill(follower)
        try await group.start(follower)
        let afterFollower = ledger.acknowledged
        try await waitUntil("writes after the follower's power cut", timeout: .seconds(30)) { ledger.acknowledged >= afterFollower + 40 }

        // The leader loses power; the others go on.
        let secondLeader = try await group.waitForLeader()
        try await group.kill(secondLeader)
        _ = try await group.waitForLeader(excluding: [secondLeader])
        let afterLeader = ledger.acknowledged
        try await waitUntil("writes after the leader's power cut", timeout: .seconds(30)) { ledger.acknowledged >= afterLeader + 40 }
        try await group.start(secondLeader)
    }
}

struct PowerLossTestFailed: Error, CustomStringConvertible {
    var what: String
    var description: String { what }
}
