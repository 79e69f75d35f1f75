import Foundation
import Logging
import SpecolaProtocol
import SpecolaRaft
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// A single-voter group on real SQLite files: what is acknowledged survives a restart.
@Suite(.watchesCooperativePool) struct ReplicaTests {
    func makeReplica(_ dir: TempDir, snapshotEvery: UInt64 = 20_000, storage: RaftStorage? = nil) throws -> Replica {
        var settings = Replica.Settings(id: 1, name: "c1")
        settings.tick = .milliseconds(5)
        settings.snapshotEvery = snapshotEvery
        let logger = Logger(label: "test")
        return try Replica(
            settings: settings, storage: storage ?? RaftStorage(path: dir.file("raft.sqlite")),
            peers: [.with { $0.id = 1; $0.name = "c1"; $0.address = "127.0.0.1:1" }], initialVoters: [1],
            transport: PeerTransport(selfID: 1, tls: TLSFiles(ca: "", cert: "", key: ""), logger: logger),
            thresholds: .init(), logger: logger)
    }

    func put(_ key: String, _ value: String) -> Specola_V1_Command {
        .with { $0.kvPut = .with { $0.key = key; $0.value = Data(value.utf8) } }
    }

    @Test(arguments: [20_000, 7] as [UInt64])
    func acknowledgedWritesSurviveARestart(snapshotEvery: UInt64) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let replica = try makeReplica(dir, snapshotEvery: snapshotEvery)
            let ticker = Task { await replica.runTicker() }
            defer { ticker.cancel() }
            try await waitUntil("a single voter to lead") { await replica.isLeader }
            for i in 0..<25 {
                let outcome = try await replica.propose(put("k\(i)", "v\(i)"))
                guard case .kvWrite(let response) = outcome else { Issue.record("\(outcome)"); return }
                #expect(response.succeeded)
            }
            _ = try await replica.propose(.registerNode(name: "n1", address: "x", agentVersion: "v", labels: [:], autoAccept: true, atUnixMs: 1))
        }
        let restarted = try makeReplica(dir, snapshotEvery: snapshotEvery)
        let ticker = Task { await restarted.runTicker() }
        defer { ticker.cancel() }
        try await waitUntil("the restarted replica to lead and replay its log") {
            let leading = await restarted.isLeader
            let last = await restarted.kvGet("k24")
            return leading && last != nil
        }
        try await restarted.readBarrier()
        for i in 0..<25 {
            #expect(await restarted.kvGet("k\(i)")?.value == Data("v\(i)".utf8))
        }
        #expect(await restarted.node("n1") != nil)
        #expect(await restarted.kvRevision == 25)
    }

    @Test func aReplicaWhoseLogCannotBeWrittenStopsLeadingAtOnce() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        let replica = try makeReplica(dir, storage: storage)
        let ticker = Task { await replica.runTicker() }
        defer { ticker.cancel() }
        try await waitUntil("a single voter to lead") { await replica.isLeader }
        _ = try await replica.propose(put("before", "1"))

        // The next write fails as a broken disk would make it fail.
        try await storage.queue.write { db in try db.execute(sql: "DROP TABLE raft_entry") }
        do {
            _ = try await replica.propose(put("after", "2"))
            Issue.record("a write was acknowledged although the log could not be written")
        } catch let error as ReplicaError {
            guard case .outcomeUnknown = error else { Issue.record("expected an unknown outcome, got: \(error)"); return }
        }
        #expect(await replica.isLeader == false)
        #expect(await replica.leaderHint == nil, "a stopped replica must not send clients to itself")
        await #expect(throws: ReplicaError.self) { try await replica.requireLeader() }
        do {
            _ = try await replica.propose(put("later", "3"))
            Issue.record("a stopped replica accepted a write")
        } catch ReplicaError.stopped {}
    }

    @Test func concurrentReadsShareReadIndexRounds() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let replica = try makeReplica(dir)
        let ticker = Task { await replica.runTicker() }
        defer { ticker.cancel() }
        try await waitUntil("a single voter to lead") { await replica.isLeader }
        _ = try await replica.propose(put("k", "v"))
        let before = await replica.readRoundsStarted
        let reads = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<reads { group.addTask { try await replica.readBarrier() } }
            try await group.waitForAll()
        }
        let rounds = await replica.readRoundsStarted - before
        #expect(rounds >= 1 && rounds < reads, "\(reads) concurrent reads took \(rounds) ReadIndex rounds")
        #expect(await replica.kvGet("k")?.value == Data("v".utf8))
    }

    @Test func compareAndSwapAppliesOnlyOnMatch() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let replica = try makeReplica(dir)
        let ticker = Task { await replica.runTicker() }
        defer { ticker.cancel() }
        try await waitUntil("leader") { await replica.isLeader }
        _ = try await replica.propose(put("lock", "free"))
        let cas = { (expected: String, new: String) in
            Specola_V1_Command.with { $0.kvCas = .with { $0.key = "lock"; $0.expectedValue = Data(expected.utf8); $0.newValue = Data(new.utf8) } }
        }
        guard case .kvWrite(let won) = try await replica.propose(cas("free", "taken")),
            case .kvWrite(let lost) = try await replica.propose(cas("free", "again"))
        else { Issue.record("unexpected outcome"); return }
        #expect(won.succeeded)
        #expect(!lost.succeeded)
        #expect(lost.kv.value == Data("taken".utf8))
    }

    @Test func aCorruptedLogGivesAClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("raft.sqlite", String(repeating: "garbage, not sqlite ", count: 500))
        do {
            _ = try RaftStorage(path: dir.file("raft.sqlite"))
            Issue.record("a corrupted file must not open")
        } catch {
            let text = "\(error)"
            #expect(text.contains(dir.file("raft.sqlite")))
            #expect(text.contains("corrupted"))
        }
    }
}
