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
            let last = await restarted.kvGet("k24").entry
            return leading && last != nil
        }
        try await restarted.readBarrier()
        for i in 0..<25 {
            #expect(await restarted.kvGet("k\(i)").entry?.value == Data("v\(i)".utf8))
        }
        #expect(await restarted.node("n1") != nil)
        #expect(await restarted.kvGet("k24").revision == 25)
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
        #expect(await replica.kvGet("k").entry?.value == Data("v".utf8))
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

/// A leader deposed while its clients wait, then caught up from the new leader's snapshot:
/// the snapshot's proposal ledger, not a guess, tells each client whether its write happened.
@Suite(.runsOffThePool, .watchesCooperativePool) struct DeposedLeaderTests {
    enum SnapshotKind: String, CaseIterable { case holdsTheWrite, replacedTheWrite, predatesTheLedger }

    @Test(arguments: SnapshotKind.allCases)
    func aWaitingClientLearnsFromTheSnapshotWhetherItsWriteHappened(kind: SnapshotKind) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var settings = Replica.Settings(id: 1, name: "c1")
        settings.tick = .milliseconds(5)
        let logger = Logger(label: "test")
        // Peers 2 and 3 have no address: nothing is sent; the test plays their part.
        let replica = try Replica(
            settings: settings, storage: RaftStorage(path: dir.file("raft.sqlite")),
            peers: [.with { $0.id = 1; $0.name = "c1"; $0.address = "127.0.0.1:1" }], initialVoters: [1, 2, 3],
            transport: PeerTransport(selfID: 1, tls: TLSFiles(ca: "", cert: "", key: ""), logger: logger),
            thresholds: .init(), logger: logger)
        await replica.receive([Message(from: 2, to: 1, term: 1, payload: .timeoutNow)])
        await replica.receive([Message(from: 2, to: 1, term: 2, payload: .voteResponse(granted: true))])
        #expect(await replica.isLeader)

        let write = Task {
            try await replica.propose(.with { $0.kvPut = .with { $0.key = "k"; $0.value = Data("v".utf8) } })
        }
        try await waitUntil("the write to wait for a quorum") { await !replica.pendingProposalIDs.isEmpty }
        let (index, id) = try #require(await replica.pendingProposalIDs.first)

        // Replica 2 led term 3, committed up to index + 1 and compacted its log into a snapshot.
        var state = ClusterState()
        switch kind {
        case .holdsTheWrite:
            _ = state.apply(.with { $0.proposalID = id; $0.kvPut = .with { $0.key = "k"; $0.value = Data("v".utf8) } }, at: index)
        case .replacedTheWrite, .predatesTheLedger:
            _ = state.apply(.with { $0.proposalID = Data("other".utf8); $0.kvPut = .with { $0.key = "x"; $0.value = Data("y".utf8) } }, at: index)
        }
        var image = state.snapshot()
        image.appliedIndex = index + 1
        image.appliedTerm = 3
        if kind == .predatesTheLedger {
            image.appliedProposals = []
            image.appliedProposalsCompleteFrom = 0
        }
        let snapshot = Snapshot(meta: SnapshotMeta(index: index + 1, term: 3, config: ConfigState(voters: [1, 2, 3])),
                                data: try image.serializedBytes())
        await replica.receive([Message(from: 2, to: 1, term: 3, payload: .installSnapshot(snapshot))])
        #expect(await replica.isLeader == false)
        // The writer stores the snapshot first; the replica applies it once it is durable.
        try await waitUntil("the snapshot to be stored and applied") { await replica.appliedIndex == index + 1 }

        do {
            let outcome = try await write.value
            Issue.record("the deposed leader's write was acknowledged: \(outcome)")
        } catch let error as ReplicaError {
            switch (kind, error) {
            case (.holdsTheWrite, .appliedResultUnknown(let at)):
                #expect(at == index)
                #expect("\(error)".contains("do not retry"))
            case (.replacedTheWrite, .superseded(let at)):
                #expect(at == index)
                #expect("\(error)".contains("did not happen"))
            case (.predatesTheLedger, .outcomeUnknown(let at, _)):
                #expect(at == index)
            default:
                Issue.record("\(kind): unexpected answer \(error)")
            }
        }
    }
}
