import CooperativePoolWatch
import Foundation
import SpecolaRaft
import TestSupport
import SeededRandom
import Testing
@testable import SpecolaCoordinator

/// The SQLite store holds what the shared model (`PersistedState.persist` / `compact`, which
/// the Raft simulation runs on) says it holds, after random sequences of writes and restarts.
@Suite(.runsOffThePool, .watchesCooperativePool) struct RaftStorageModelTests {
    @Test(arguments: [UInt64(1), 2, 3]) func theStoreMatchesTheSimulationsModel(seed: UInt64) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var rng = SeededRandom(seed: seed)
        var storage = try RaftStorage(path: dir.file("raft.sqlite"))
        var model = PersistedState()
        var term: Term = 1
        let members = ConfigState(voters: [1, 2, 3])
        for step in 0..<40 {
            let last = model.entries.last?.index ?? model.snapshot?.meta.index ?? 0
            let first = model.snapshot?.meta.index ?? 0
            switch rng.next() % 4 {
            case 0, 1:
                // New entries, sometimes overwriting a suffix (a new leader's log).
                if rng.next() % 3 == 0 { term += 1 }
                let from = max(first + 1, last + 1 - rng.next() % 3)
                let entries = (from...(from + rng.next() % 5)).map { Entry(term: term, index: $0, data: [UInt8(step)]) }
                let hard = HardState(term: term, vote: rng.next() % 2 == 0 ? 1 : nil, commit: first)
                try storage.persist(hardState: hard, entries: entries, snapshot: nil)
                model.persist(hardState: hard, entries: entries, snapshot: nil)
            case 2 where last > first:
                let index = first + 1 + rng.next() % (last - first)
                let snapshot = Snapshot(meta: SnapshotMeta(index: index, term: term, config: members), data: [UInt8(step)])
                try storage.compact(to: snapshot)
                model.compact(to: snapshot)
            case 2, 3:
                // A snapshot from the leader, maybe with entries after it.
                term += 1
                let index = last + rng.next() % 4
                let snapshot = Snapshot(meta: SnapshotMeta(index: index, term: term, config: members), data: [UInt8(step)])
                let entries = rng.next() % 2 == 0 ? [] : [Entry(term: term, index: index + 1)]
                try storage.persist(hardState: HardState(term: term, commit: index), entries: entries, snapshot: snapshot)
                model.persist(hardState: HardState(term: term, commit: index), entries: entries, snapshot: snapshot)
            default:
                break
            }
            if rng.next() % 5 == 0 { storage = try RaftStorage(path: dir.file("raft.sqlite")) }
            let loaded = try #require(try storage.load())
            #expect(loaded == model, "seed \(seed), step \(step)")
        }
    }
}
